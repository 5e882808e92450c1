//! Preparing a node so that a relaunch keeps everything: its primary
//! interface (private IP, security groups, Elastic IP association) and every
//! EBS volume outlive the instance (DeleteOnTermination=false), and each
//! volume is tagged with its node, instance, device and role, because EC2
//! describes a terminated instance without its volumes. Done by every backup
//! run, and by a relaunch on the replacement as soon as it has its disks.
//! Idempotent: what is already so is left alone (no call).

use crate::model::{Attachment, Instance, Volume};
use crate::node::NodeName;
use crate::ports::Preparing;
use crate::tags;
use serde::Serialize;

/// What preparing one instance takes. Pure data, made by [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparePlan {
    pub instance_id: String,
    /// The primary interface, whatever its DeleteOnTermination.
    pub interface: Option<Attachment>,
    /// Devices whose volume would be deleted with the instance.
    pub keep_devices: Vec<String>,
    /// Every EBS volume, with the tags it must carry.
    pub volumes: Vec<PreparedVolume>,
    /// The volumes whose tags differ from those.
    pub retag: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PreparedVolume {
    pub volume_id: String,
    pub device: String,
    pub root: bool,
}

/// Decides what preparing `instance` takes; `volumes` are its volumes as
/// DescribeVolumes shows them (with their tags).
pub fn plan(instance: &Instance, node_tag: &str, node: &NodeName, volumes: &[Volume]) -> PreparePlan {
    let root = instance.root_device.as_deref();
    let mut plan = PreparePlan {
        instance_id: instance.id.clone(),
        interface: instance.primary_interface.clone(),
        keep_devices: Vec::new(),
        volumes: Vec::new(),
        retag: Vec::new(),
    };
    for attached in &instance.volumes {
        if attached.delete_on_termination {
            plan.keep_devices.push(attached.device.clone());
        }
        let is_root = root == Some(attached.device.as_str());
        let wanted = tags::volume(node_tag, node.as_str(), &instance.id, &attached.device, is_root);
        let current = volumes.iter().find(|v| v.id == attached.volume_id).map(|v| &v.tags);
        if current.is_none_or(|current| wanted.iter().any(|(k, v)| current.get(k) != Some(v))) {
            plan.retag.push(attached.volume_id.clone());
        }
        plan.volumes.push(PreparedVolume {
            volume_id: attached.volume_id.clone(),
            device: attached.device.clone(),
            root: is_root,
        });
    }
    plan
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prepared {
    /// Changed now: it would have been deleted with the instance (or the
    /// volumes' tags were not yet right).
    Kept,
    AlreadyKept,
    WouldKeep,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceResult {
    pub interface_id: String,
    pub outcome: Prepared,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumesResult {
    pub outcome: Prepared,
    pub volumes: Vec<PreparedVolume>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What preparing a node did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preparation {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<InterfaceResult>,
    pub volumes: VolumesResult,
}

impl Preparation {
    pub fn failed(&self) -> bool {
        self.volumes.outcome == Prepared::Failed
            || self.interface.as_ref().is_some_and(|i| i.outcome == Prepared::Failed)
    }

    /// The first error, for a report's reason.
    pub fn error(&self) -> Option<&str> {
        self.interface.as_ref().and_then(|i| i.error.as_deref()).or(self.volumes.error.as_deref())
    }
}

/// Carries out the plan (or, on a dry run, says what it would do).
pub async fn execute(
    ec2: &impl Preparing,
    plan: &PreparePlan,
    node_tag: &str,
    node: &NodeName,
    dry_run: bool,
) -> Preparation {
    let interface = match &plan.interface {
        Some(attachment) => Some(keep_interface(ec2, attachment, node_tag, node, dry_run).await),
        None => None,
    };
    let volumes = keep_volumes(ec2, plan, node_tag, node, dry_run).await;
    Preparation { interface, volumes }
}

/// Tags the interface as the node's first (the stack's IAM lets the
/// functions change only a node's interface), then keeps it.
async fn keep_interface(
    ec2: &impl Preparing,
    attachment: &Attachment,
    node_tag: &str,
    node: &NodeName,
    dry_run: bool,
) -> InterfaceResult {
    let (outcome, error) = if !attachment.delete_on_termination {
        (Prepared::AlreadyKept, None)
    } else if dry_run {
        (Prepared::WouldKeep, None)
    } else {
        let tag = crate::model::Tags::from([(node_tag.to_string(), node.to_string())]);
        let kept = match ec2.tag(std::slice::from_ref(&attachment.interface_id), &tag).await {
            Ok(()) => ec2.keep_interface_on_termination(attachment).await,
            Err(e) => Err(e),
        };
        match kept {
            Ok(()) => (Prepared::Kept, None),
            Err(e) => (Prepared::Failed, Some(e.to_string())),
        }
    };
    InterfaceResult { interface_id: attachment.interface_id.clone(), outcome, error }
}

async fn keep_volumes(
    ec2: &impl Preparing,
    plan: &PreparePlan,
    node_tag: &str,
    node: &NodeName,
    dry_run: bool,
) -> VolumesResult {
    let result = |outcome, error| VolumesResult { outcome, volumes: plan.volumes.clone(), error };
    if plan.keep_devices.is_empty() && plan.retag.is_empty() {
        return result(Prepared::AlreadyKept, None);
    }
    if dry_run {
        return result(Prepared::WouldKeep, None);
    }
    if !plan.keep_devices.is_empty()
        && let Err(e) = ec2.set_delete_on_termination(&plan.instance_id, &plan.keep_devices, false).await
    {
        return result(Prepared::Failed, Some(e.to_string()));
    }
    for volume in plan.volumes.iter().filter(|v| plan.retag.contains(&v.volume_id)) {
        let tags = tags::volume(node_tag, node.as_str(), &plan.instance_id, &volume.device, volume.root);
        if let Err(e) = ec2.tag(std::slice::from_ref(&volume.volume_id), &tags).await {
            return result(Prepared::Failed, Some(e.to_string()));
        }
    }
    result(Prepared::Kept, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttachedVolume, VolumeState};

    fn node() -> Instance {
        Instance {
            id: "i-1".into(),
            root_device: Some("/dev/xvda".into()),
            volumes: vec![
                AttachedVolume {
                    device: "/dev/xvda".into(),
                    volume_id: "vol-root".into(),
                    delete_on_termination: true,
                },
                AttachedVolume {
                    device: "/dev/sdf".into(),
                    volume_id: "vol-data".into(),
                    delete_on_termination: false,
                },
            ],
            ..Instance::default()
        }
    }

    fn described(id: &str, tags: crate::model::Tags) -> Volume {
        Volume {
            id: id.into(),
            state: VolumeState::InUse,
            availability_zone: "eu-west-1a".into(),
            encrypted: false,
            size_gib: 8,
            create_time: None,
            attached_to: Some("i-1".into()),
            tags,
        }
    }

    #[test]
    fn a_fresh_node_needs_its_root_kept_and_every_volume_tagged() {
        let name = NodeName::new("k8s-master").unwrap();
        let plan = plan(&node(), "lifeboat:node", &name, &[]);
        assert_eq!(plan.keep_devices, ["/dev/xvda"]);
        assert_eq!(plan.retag, ["vol-root", "vol-data"]);
        assert!(plan.volumes[0].root && !plan.volumes[1].root);
    }

    #[test]
    fn a_prepared_node_needs_nothing() {
        let name = NodeName::new("k8s-master").unwrap();
        let mut instance = node();
        instance.volumes[0].delete_on_termination = false;
        let volumes = [
            described("vol-root", tags::volume("lifeboat:node", "k8s-master", "i-1", "/dev/xvda", true)),
            described("vol-data", tags::volume("lifeboat:node", "k8s-master", "i-1", "/dev/sdf", false)),
        ];
        let plan = plan(&instance, "lifeboat:node", &name, &volumes);
        assert!(plan.keep_devices.is_empty() && plan.retag.is_empty(), "{plan:?}");
    }

    #[test]
    fn a_volume_tagged_for_the_previous_instance_is_retagged() {
        let name = NodeName::new("k8s-master").unwrap();
        let volumes = [described("vol-root", tags::volume("lifeboat:node", "k8s-master", "i-0", "/dev/xvda", true))];
        let plan = plan(&node(), "lifeboat:node", &name, &volumes);
        assert!(plan.retag.contains(&"vol-root".to_string()));
    }
}
