//! scheduled-backup: event → plan → effects → report.
//!
//! One AMI per node and schedule slot, named `<node>-<YYYYMMDD>-<HHMM>` after
//! the slot. The name is the idempotency key: EC2 refuses a second image of
//! the same name (`InvalidAMIName.Duplicate`), so a redelivered event finds
//! its backup already made and reports it as such.

use crate::config::Config;
pub use crate::event::{EventError, Trigger};
use crate::event::{Scheduled, parse_scheduled};
use crate::model::{Attachment, CloudError, Instance, InstanceState, Tags, tag};
use crate::ports::{Ec2, ImageSpec};
use crate::spec::LaunchSpec;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Images created at once; CreateImage is cheap to call but rate limited.
const CONCURRENCY: usize = 8;
/// The error code EC2 answers a second CreateImage of the same name with.
const DUPLICATE_NAME: &str = "InvalidAMIName.Duplicate";
/// `-YYYYMMDD-HHMM`, appended to the node name.
const SLOT_SUFFIX_LEN: usize = 14;
/// EC2 limits AMI names to 128 characters.
const MAX_AMI_NAME: usize = 128;

/// What an invocation asks for, whatever shape the event had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupRequest {
    /// The schedule slot the AMI names are derived from.
    pub slot: DateTime<Utc>,
    /// Only this node (manual invocations); every node when `None`.
    pub node: Option<String>,
    pub dry_run: bool,
    pub trigger: Trigger,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualRequest {
    node: Option<String>,
    dry_run: Option<bool>,
}

/// Parses what scheduled-backup was invoked with. `now` is the slot of
/// invocations that carry no time of their own.
pub fn parse_event(event: &Value, now: DateTime<Utc>) -> Result<BackupRequest, EventError> {
    let scheduled: Scheduled<ManualRequest> =
        parse_scheduled(event, now, "scheduled-backup", "{\"node\": \"<name>\", \"dry_run\": true}")?;
    let ManualRequest { node, dry_run } = scheduled.request;
    if let Some(node) = &node {
        check_node_name(node).map_err(|reason| EventError::NodeName { node: node.clone(), reason })?;
    }
    Ok(BackupRequest { slot: scheduled.time, node, dry_run: dry_run.unwrap_or(false), trigger: scheduled.trigger })
}

/// A node name must make a valid AMI name once the slot is appended:
/// 1 to 114 characters from letters, digits and `()[] ./-'@_`.
pub fn check_node_name(node: &str) -> Result<(), String> {
    if node.is_empty() {
        return Err("is empty".into());
    }
    if node.len() + SLOT_SUFFIX_LEN > MAX_AMI_NAME {
        return Err(format!("is longer than {} characters", MAX_AMI_NAME - SLOT_SUFFIX_LEN));
    }
    if let Some(c) = node.chars().find(|c| !(c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(*c))) {
        return Err(format!("character {c:?} is not allowed in an AMI name"));
    }
    Ok(())
}

/// `<node>-<YYYYMMDD>-<HHMM>` of the slot in UTC.
pub fn image_name(node: &str, slot: DateTime<Utc>) -> String {
    format!("{node}-{}", slot.format("%Y%m%d-%H%M"))
}

/// The tags of a scheduled backup, for the image and for its snapshots.
pub fn backup_tags(node_tag: &str, node: &str, instance_id: &str, name: &str) -> Tags {
    Tags::from([
        (tag::NAME.to_string(), name.to_string()),
        (node_tag.to_string(), node.to_string()),
        (tag::SOURCE_INSTANCE.to_string(), instance_id.to_string()),
        (tag::KIND.to_string(), "scheduled".to_string()),
        (tag::AUTO_BACKUP.to_string(), "true".to_string()),
    ])
}

/// What to do for one tagged instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBackup {
    pub node: String,
    pub instance_id: String,
    pub action: Action,
    /// The primary interface, whatever its DeleteOnTermination: preparing the
    /// node means making sure it survives the instance (see [`prepare`]).
    pub interface: Option<Attachment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create(ImageSpec),
    Skip(String),
}

/// Decides which instances to back up: every instance carrying the node tag
/// (restricted to `only_node` when given) that is running or stopped, one per
/// node. When a node has several candidates (a replacement beside an old
/// instance that was stopped, say) the running one launched last is backed up
/// and the others are skipped with the reason.
pub fn plan(
    instances: &[Instance],
    node_tag: &str,
    only_node: Option<&str>,
    slot: DateTime<Utc>,
) -> Vec<PlannedBackup> {
    let mut planned = Vec::new();
    let mut candidates: BTreeMap<&str, Vec<&Instance>> = BTreeMap::new();
    for instance in instances {
        let Some(node) = instance.tags.get(node_tag) else { continue };
        if only_node.is_some_and(|only| only != node) {
            continue;
        }
        let skip = |reason: String| PlannedBackup {
            node: node.clone(),
            instance_id: instance.id.clone(),
            action: Action::Skip(reason),
            interface: None,
        };
        if let Err(reason) = check_node_name(node) {
            planned.push(skip(format!("node name {reason}")));
        } else if !matches!(instance.state, InstanceState::Running | InstanceState::Stopped) {
            planned.push(skip(format!("instance is {}", instance.state)));
        } else {
            candidates.entry(node).or_default().push(instance);
        }
    }
    for (node, mut instances) in candidates {
        // Running before stopped, then the newest launch, then the id for a stable order.
        instances.sort_by(|a, b| {
            (b.state == InstanceState::Running)
                .cmp(&(a.state == InstanceState::Running))
                .then(b.launch_time.cmp(&a.launch_time))
                .then(a.id.cmp(&b.id))
        });
        let chosen = instances[0];
        let name = image_name(node, slot);
        planned.push(PlannedBackup {
            node: node.to_string(),
            instance_id: chosen.id.clone(),
            action: Action::Create(ImageSpec {
                instance_id: chosen.id.clone(),
                description: format!(
                    "lifeboat backup of node {node} ({}) for slot {}",
                    chosen.id,
                    slot.to_rfc3339_opts(SecondsFormat::Secs, true)
                ),
                tags: backup_tags(node_tag, node, &chosen.id, &name),
                image_tags: LaunchSpec::from_instance(chosen)
                    .map(|mut spec| {
                        // This run keeps the interface (see `prepare`), so the
                        // image records it even when the description predates that.
                        spec.interface_id = chosen.primary_interface.as_ref().map(|a| a.interface_id.clone());
                        spec.to_tags()
                    })
                    .unwrap_or_default(),
                name,
            }),
            interface: chosen.primary_interface.clone(),
        });
        for other in &instances[1..] {
            planned.push(PlannedBackup {
                node: node.to_string(),
                instance_id: other.id.clone(),
                action: Action::Skip(format!("node {node} is backed up from {} instead", chosen.id)),
                interface: None,
            });
        }
    }
    planned.sort_by(|a, b| (&a.node, &a.instance_id).cmp(&(&b.node, &b.instance_id)));
    planned
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    pub slot: DateTime<Utc>,
    pub trigger: Trigger,
    pub dry_run: bool,
    pub node_tag: String,
    pub nodes: Vec<NodeResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeResult {
    pub node: String,
    pub instance: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What preparing the node's primary interface for a relaunch did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<InterfaceResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceResult {
    pub interface_id: String,
    pub outcome: Prepared,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prepared {
    /// DeleteOnTermination was true and is now false.
    Kept,
    AlreadyKept,
    WouldKeep,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Created,
    AlreadyExisted,
    WouldCreate,
    Skipped,
    Failed,
}

impl BackupReport {
    /// EMF lines for the nodes whose backup for this slot exists
    /// (`BackupSucceeded`): the "no backup in 26 hours" alarm watches them.
    pub fn metrics(&self, at: DateTime<Utc>) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.outcome, Outcome::Created | Outcome::AlreadyExisted))
            .map(|n| crate::metrics::count("BackupSucceeded", &n.node, at))
            .collect()
    }

    /// Nodes whose backup or preparation failed.
    pub fn failures(&self) -> impl Iterator<Item = &NodeResult> {
        self.nodes.iter().filter(|n| {
            n.outcome == Outcome::Failed || n.interface.as_ref().is_some_and(|i| i.outcome == Prepared::Failed)
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("listing the tagged instances failed: {0}")]
    Describe(CloudError),
    #[error("no instance carries the tag {tag}={node}")]
    NodeNotFound { tag: String, node: String },
    #[error("{} of {} backups failed: {}", .0.failures().count(), .0.nodes.len(),
        .0.failures().map(|f| format!("{} ({}): {}", f.node, f.instance,
            f.reason.as_deref().or(f.interface.as_ref().and_then(|i| i.error.as_deref())).unwrap_or(""))).collect::<Vec<_>>().join("; "))]
    Failed(Box<BackupReport>),
}

impl BackupError {
    /// The report of an invocation that ran (and failed on some nodes).
    pub fn report(&self) -> Option<&BackupReport> {
        match self {
            BackupError::Failed(report) => Some(report),
            _ => None,
        }
    }
}

/// Parses the event and runs the backup. An invalid event fails before any
/// AWS call.
pub async fn handle(
    ec2: &impl Ec2,
    config: &Config,
    event: &Value,
    now: DateTime<Utc>,
) -> Result<BackupReport, BackupError> {
    let request = parse_event(event, now)?;
    run(ec2, config, &request).await
}

/// Lists the tagged instances, plans, creates the images, and reports. A
/// failure to create one image does not stop the others; the invocation then
/// returns [`BackupError::Failed`] with the whole report, so Lambda's retry and
/// the alarms see it, and the retry redoes only what failed.
pub async fn run(ec2: &impl Ec2, config: &Config, request: &BackupRequest) -> Result<BackupReport, BackupError> {
    let instances = ec2.instances_with_tag(&config.node_tag).await.map_err(BackupError::Describe)?;
    let planned = plan(&instances, &config.node_tag, request.node.as_deref(), request.slot);
    if let Some(node) = &request.node
        && planned.is_empty()
    {
        return Err(BackupError::NodeNotFound { tag: config.node_tag.clone(), node: node.clone() });
    }
    let dry_run = request.dry_run || config.dry_run;
    let nodes = stream::iter(planned).map(|p| execute(ec2, p, dry_run)).buffered(CONCURRENCY).collect::<Vec<_>>().await;
    let report = BackupReport {
        slot: request.slot,
        trigger: request.trigger,
        dry_run,
        node_tag: config.node_tag.clone(),
        nodes,
    };
    if report.failures().next().is_some() {
        return Err(BackupError::Failed(Box::new(report)));
    }
    Ok(report)
}

async fn execute(ec2: &impl Ec2, planned: PlannedBackup, dry_run: bool) -> NodeResult {
    let interface = match &planned.interface {
        Some(attachment) => Some(prepare(ec2, attachment, dry_run).await),
        None => None,
    };
    let mut result = match planned.action {
        Action::Skip(reason) => NodeResult {
            node: planned.node,
            instance: planned.instance_id,
            outcome: Outcome::Skipped,
            image_id: None,
            name: None,
            reason: Some(reason),
            interface: None,
        },
        Action::Create(spec) if dry_run => NodeResult {
            node: planned.node,
            instance: planned.instance_id,
            outcome: Outcome::WouldCreate,
            image_id: None,
            name: Some(spec.name),
            reason: None,
            interface: None,
        },
        Action::Create(spec) => create(ec2, &planned.node, &planned.instance_id, &spec).await,
    };
    result.interface = interface;
    result
}

/// CreateImage, where an image of the same name means this backup was made
/// before (a redelivered event): reported as such with its id.
pub async fn create(ec2: &impl Ec2, node: &str, instance: &str, spec: &ImageSpec) -> NodeResult {
    let mut result = NodeResult {
        node: node.to_string(),
        instance: instance.to_string(),
        outcome: Outcome::Failed,
        image_id: None,
        name: Some(spec.name.clone()),
        reason: None,
        interface: None,
    };
    match ec2.create_image(spec).await {
        Ok(image_id) => {
            tracing::info!(node, instance, image = %image_id, name = %spec.name, "backup image created");
            result.outcome = Outcome::Created;
            result.image_id = Some(image_id);
        }
        Err(e) if e.has_code(DUPLICATE_NAME) => match ec2.image_named(&spec.name).await {
            Ok(existing) => {
                result.outcome = Outcome::AlreadyExisted;
                result.image_id = existing.map(|i| i.id);
                result.reason =
                    Some(format!("an image named {} exists already: this slot was backed up before", spec.name));
            }
            Err(e) => result.reason = Some(e.to_string()),
        },
        Err(e) => {
            tracing::error!(node, instance, error = %e, "backup failed");
            result.reason = Some(e.to_string());
        }
    }
    result
}

/// Makes the node's primary interface outlive the instance
/// (DeleteOnTermination=false), so its private IP, security groups and any
/// Elastic IP association can be handed to the replacement. Idempotent.
pub async fn prepare(ec2: &impl Ec2, attachment: &Attachment, dry_run: bool) -> InterfaceResult {
    let (outcome, error) = if !attachment.delete_on_termination {
        (Prepared::AlreadyKept, None)
    } else if dry_run {
        (Prepared::WouldKeep, None)
    } else {
        match ec2.keep_interface_on_termination(attachment).await {
            Ok(()) => (Prepared::Kept, None),
            Err(e) => (Prepared::Failed, Some(e.to_string())),
        }
    };
    InterfaceResult { interface_id: attachment.interface_id.clone(), outcome, error }
}
