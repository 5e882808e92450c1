//! `lifeboat preflight`: everything a relaunch of the node needs, checked
//! read-only, each check with the exact fix. [`gather`] reads the facts
//! (Describe calls, DryRun permission checks, one read-only SSM command);
//! [`checks`] decides, as a pure function of them.

mod gather;
mod network;
pub mod probe;
pub mod spot_kms;

pub use gather::gather;
use network::network_path;

use crate::ports::{
    AccountConcurrency, InstanceExtras, KeyGrant, KmsKey, Permission, Route, SpotRequest, Stack, VolumeCrypto,
};
use crate::stack;
use lifeboat_core::model::{Instance, InstanceState};
use probe::NodeProbe;
use serde::Serialize;

/// A fact that could not be read carries why.
pub type Read<T> = Result<T, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(id: &'static str, detail: impl Into<String>) -> Check {
        Check { id, status: Status::Pass, detail: detail.into(), fix: None }
    }
    fn warn(id: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { id, status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }
    fn fail(id: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { id, status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// The EC2 calls whose DryRun tells whether the operator's credentials may
/// make them (EC2 answers DryRunOperation or UnauthorizedOperation).
pub const DRY_RUN_CALLS: &[&str] = &[
    "DescribeInstances",
    "DescribeImages",
    "DescribeVolumes",
    "DescribeSpotInstanceRequests",
    "DescribeAddresses",
    "DescribeRouteTables",
    "DescribeVpcEndpoints",
];

/// A KMS key that encrypts some of the node's volumes.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyFacts {
    /// The key as the volumes name it (their KmsKeyId).
    pub id: String,
    pub volumes: Vec<String>,
    pub key: Read<KmsKey>,
    /// Read for a customer managed key when a relaunch may run on spot.
    pub policy: Option<Read<String>>,
    pub grants: Option<Read<Vec<KeyGrant>>>,
}

/// What EC2, SSM and the node say about the node's one running instance.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFacts {
    pub instance: Instance,
    pub extras: Read<InstanceExtras>,
    pub spot_request: Read<Option<SpotRequest>>,
    pub ssm_online: Read<bool>,
    /// `None` when the agent is not online (nothing could be sent).
    pub probe: Option<Read<NodeProbe>>,
    pub elastic_ip: Read<Option<String>>,
    pub routes: Read<Vec<Route>>,
    pub endpoints: Read<Vec<String>>,
    pub volumes: Read<Vec<VolumeCrypto>>,
    /// The keys of the encrypted volumes, one entry per key.
    pub keys: Vec<KeyFacts>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub node: String,
    pub region: String,
    pub node_tag: String,
    pub permissions: Vec<(&'static str, Permission)>,
    /// The instances carrying the node tag with this node's name, any state.
    pub instances: Read<Vec<Instance>>,
    pub stack_name: String,
    pub stack: Read<Option<Stack>>,
    pub concurrency: Read<AccountConcurrency>,
    /// Read when exactly one instance of the node runs.
    pub node_facts: Option<NodeFacts>,
}

/// Every check, in the order a person fixes them.
pub fn checks(f: &Facts) -> Vec<Check> {
    let mut all = vec![credentials(&f.permissions), node_tag(f)];
    if let Some(n) = &f.node_facts {
        let stack = f.stack.as_ref().ok().and_then(Option::as_ref);
        all.push(market(n));
        all.push(instance_profile(n, stack));
        all.push(ssm_agent(n));
        all.push(interface_kept(n, &f.node));
        all.push(network_path(n, &f.region));
        all.extend(on_node(n));
        all.push(ebs_only(n));
        all.push(bare_metal(n, stack));
        all.push(kms(n, stack));
        all.push(spot_kms(n, stack, &f.region));
    }
    all.push(stack_deployed(f));
    all.push(concurrency(f));
    all
}

fn credentials(permissions: &[(&'static str, Permission)]) -> Check {
    let denied: Vec<&str> =
        permissions.iter().filter(|(_, p)| matches!(p, Permission::Denied { .. })).map(|(op, _)| *op).collect();
    let unknown: Vec<String> = permissions
        .iter()
        .filter_map(|(op, p)| match p {
            Permission::Unknown { message } => Some(format!("{op}: {message}")),
            _ => None,
        })
        .collect();
    if !denied.is_empty() {
        let actions: Vec<String> = denied.iter().map(|op| format!("ec2:{op}")).collect();
        return Check::fail(
            "credentials",
            format!("your credentials may not call {} (DryRun)", denied.join(", ")),
            format!("allow {} to the identity running lifeboat", actions.join(", ")),
        );
    }
    if !unknown.is_empty() {
        return Check::warn(
            "credentials",
            format!("DryRun gave no permission answer: {}", unknown.join("; ")),
            "check the region and the network path to EC2, then run preflight again",
        );
    }
    Check::pass("credentials", format!("DryRun: {} allowed", permissions.len()))
}

fn node_tag(f: &Facts) -> Check {
    let tag = format!("{}={}", f.node_tag, f.node);
    let instances = match &f.instances {
        Ok(i) => i,
        Err(e) => {
            return Check::fail("node-tag", format!("could not list instances tagged {tag}: {e}"), "see the error");
        }
    };
    let running: Vec<&Instance> = instances.iter().filter(|i| i.state == InstanceState::Running).collect();
    match running.as_slice() {
        [one] => Check::pass("node-tag", format!("{} is the one running instance tagged {tag}", one.id)),
        [] => Check::fail(
            "node-tag",
            format!("no running instance is tagged {tag} ({} in other states)", instances.len()),
            format!("aws ec2 create-tags --resources <instance id> --tags Key={},Value={}", f.node_tag, f.node),
        ),
        many => {
            let ids: Vec<&str> = many.iter().map(|i| i.id.as_str()).collect();
            Check::fail(
                "node-tag",
                format!("{} running instances are tagged {tag}: {}", many.len(), ids.join(", ")),
                format!(
                    "keep the tag on the control-plane instance only: aws ec2 delete-tags --resources <other id> --tags Key={}",
                    f.node_tag
                ),
            )
        }
    }
}

const MARKET_FIX: &str = "relaunch the node as on-demand, or as spot with --instance-market-options \
     'MarketType=spot,SpotOptions={SpotInstanceType=one-time,InstanceInterruptionBehavior=terminate}'";

fn market(n: &NodeFacts) -> Check {
    if !n.instance.spot {
        return Check::pass("market", "on-demand: never interrupted by EC2");
    }
    match &n.spot_request {
        Err(e) => Check::warn(
            "market",
            format!("spot; the spot request could not be read: {e}"),
            "allow ec2:DescribeSpotInstanceRequests",
        ),
        Ok(None) => Check::warn(
            "market",
            "spot, with no spot request EC2 describes",
            "look at the instance's spot request in the console",
        ),
        Ok(Some(r)) if r.request_type == "one-time" && r.interruption_behavior == "terminate" => {
            Check::pass("market", format!("spot, one-time request {} that terminates", r.id))
        }
        Ok(Some(r)) => Check::fail(
            "market",
            format!(
                "spot request {} is {} and its interruption behaviour is {}: EC2 would stop the node and start it \
                 again itself, and lifeboat relaunches only a terminated node",
                r.id, r.request_type, r.interruption_behavior
            ),
            MARKET_FIX,
        ),
    }
}

/// The name of a role from its ARN (`arn:aws:iam::1:role/path/name`).
fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The role's ARN in the partition and account of the instance profile
/// (`arn:<partition>:iam::<account>:instance-profile/...`).
fn role_arn(profile: &str, role: &str) -> String {
    let mut parts = profile.split(':');
    let partition = parts.nth(1).filter(|p| !p.is_empty()).unwrap_or("aws");
    let account = parts.nth(2).filter(|a| !a.is_empty()).unwrap_or("<account>");
    format!("arn:{partition}:iam::{account}:role/{role}")
}

fn instance_profile(n: &NodeFacts, stack: Option<&Stack>) -> Check {
    let Some(profile) = &n.instance.instance_profile_arn else {
        return Check::fail(
            "instance-profile",
            "the node has no instance profile: its SSM agent cannot register, so no repair can reach a replacement",
            "attach an instance profile whose role has the AmazonSSMManagedInstanceCore policy \
             (aws ec2 associate-iam-instance-profile), and deploy the stack with NodeRoleArn set to that role",
        );
    };
    let allowed = stack.and_then(|s| s.output(stack::NODE_ROLE));
    let role = match &n.probe {
        Some(Ok(p)) => p.iam_role.clone(),
        _ => None,
    };
    match (role, allowed) {
        (None, _) => Check::warn(
            "instance-profile",
            format!("{profile}; its role could not be read from the node (the check runs over SSM)"),
            format!("make sure the stack's NodeRoleArn ({}) is this profile's role", allowed.unwrap_or("not set")),
        ),
        (Some(role), None) => Check::fail(
            "instance-profile",
            format!("{profile} with role {role}, but the stack may pass no role to a replacement"),
            format!("deploy the stack with NodeRoleArn={}", role_arn(profile, &role)),
        ),
        (Some(role), Some(arn)) if role_name(arn) == role => {
            Check::pass("instance-profile", format!("{profile} with role {role}, the stack's NodeRoleArn"))
        }
        (Some(role), Some(arn)) => Check::fail(
            "instance-profile",
            format!("the node's role is {role}, but the stack may pass only {arn}"),
            format!("deploy the stack with NodeRoleArn={}", role_arn(profile, &role)),
        ),
    }
}

fn ssm_agent(n: &NodeFacts) -> Check {
    match &n.ssm_online {
        Ok(true) => Check::pass("ssm-agent", format!("{} is an Online managed node", n.instance.id)),
        Ok(false) => Check::fail(
            "ssm-agent",
            format!("{} is not an Online managed node", n.instance.id),
            "install and start amazon-ssm-agent, give the instance profile AmazonSSMManagedInstanceCore, \
             and let it reach ssm, ssmmessages and ec2messages (see network-path)",
        ),
        Err(e) => Check::fail(
            "ssm-agent",
            format!("DescribeInstanceInformation failed: {e}"),
            "allow ssm:DescribeInstanceInformation",
        ),
    }
}

fn interface_kept(n: &NodeFacts, node: &str) -> Check {
    match &n.instance.primary_interface {
        Some(a) if !a.delete_on_termination => Check::pass(
            "interface-kept",
            format!("{} is kept on termination (same private IP for the replacement)", a.interface_id),
        ),
        Some(a) => Check::fail(
            "interface-kept",
            format!(
                "{} is deleted with the instance (DeleteOnTermination=true): a replacement gets a new interface",
                a.interface_id
            ),
            format!("run lifeboat backup --node {node} (every backup keeps it)"),
        ),
        None => Check::fail(
            "interface-kept",
            "the instance has no primary interface EC2 describes",
            "look at the instance in the console",
        ),
    }
}

fn on_node(n: &NodeFacts) -> Vec<Check> {
    let probe = match &n.probe {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            return vec![Check::warn(
                "on-node",
                format!("the read-only check on the node failed: {e}"),
                "run preflight again once the agent is Online",
            )];
        }
        None => {
            return vec![Check::warn(
                "on-node",
                "not checked: the node is not an Online managed node (kubelet, crictl, kubeadm, cloud-init, IMDSv2, NVMe serials)",
                "fix ssm-agent, then run preflight again",
            )];
        }
    };
    let one = |id: &'static str, ok: bool, yes: &str, no: &str, fix: &str| {
        if ok { Check::pass(id, yes) } else { Check::fail(id, no, fix) }
    };
    vec![
        one(
            "kubelet",
            probe.kubelet_unit,
            "kubelet.service is a systemd unit",
            "no kubelet.service unit: lifeboat's boot guard holds kubelet through a systemd drop-in",
            "install kubelet from the Kubernetes packages (it ships kubelet.service)",
        ),
        one(
            "crictl",
            probe.crictl,
            "crictl is installed",
            "crictl is missing: the repair stops the control-plane containers with it",
            "install cri-tools",
        ),
        one(
            "kubeadm",
            probe.kubeadm,
            "kubeadm is installed",
            "kubeadm is missing: the repair regenerates certificates with it",
            "install kubeadm of the cluster's version",
        ),
        one(
            "cloud-init",
            probe.cloud_init,
            "cloud-init is installed",
            "cloud-init is missing: a replacement would boot without lifeboat's boot guard",
            "install cloud-init (Ubuntu, Debian and Amazon Linux images have it)",
        ),
        cloud_init_enabled(probe),
        cloud_init_cache(probe),
        kubelet_after(probe),
        one(
            "imdsv2",
            probe.imdsv2,
            "IMDSv2 answers on the node",
            "IMDSv2 did not answer: the repair reads the new private IP from it",
            "aws ec2 modify-instance-metadata-options --instance-id <id> --http-endpoint enabled --http-tokens required --http-put-response-hop-limit 2",
        ),
        nvme_serials(n, probe),
    ]
}

/// cloud-init's systemd generator leaves cloud-init.target out of the boot
/// when /etc/cloud/cloud-init.disabled exists or the kernel command line has
/// `cloud-init=disabled` (cloud-init docs, "Boot stages", Generator;
/// canonical/cloud-init systemd/cloud-init-generator.tmpl and
/// tools/ds-identify, "cloud-init is disabled by kernel command line or
/// etc_file").
fn cloud_init_enabled(probe: &NodeProbe) -> Check {
    const ID: &str = "cloud-init-enabled";
    if !probe.cloud_init {
        return Check::warn(ID, "not checked: cloud-init is not installed", "see the cloud-init check");
    }
    let consequence = "a replacement would boot without running lifeboat's user data, so without its boot guard";
    if probe.cloud_init_cmdline_disabled {
        return Check::fail(
            ID,
            format!("the kernel command line (/proc/cmdline) has cloud-init=disabled: {consequence}"),
            "remove cloud-init=disabled from the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, \
             then sudo update-grub or sudo grub2-mkconfig -o /boot/grub2/grub.cfg)",
        );
    }
    if probe.cloud_init_disabled_file {
        return Check::fail(
            ID,
            format!("/etc/cloud/cloud-init.disabled exists: {consequence}"),
            "sudo rm /etc/cloud/cloud-init.disabled",
        );
    }
    Check::pass(
        ID,
        "cloud-init is enabled (no /etc/cloud/cloud-init.disabled, no cloud-init=disabled on the kernel command line)",
    )
}

/// With manual_cache_clean true (or its marker left in the instance
/// directory), cloud-init's local stage trusts its cached datasource instead
/// of checking the instance id (cloudinit/cmd/main.py main_init: `existing =
/// "trust"`; stages.py _restore_from_checked_cache; cloud-init docs, base
/// config: "By default, cloud-init searches for a datasource on every boot.
/// Setting this to true will disable this behaviour"): a replacement booting
/// from the old root would keep the old instance's id and user data.
fn cloud_init_cache(probe: &NodeProbe) -> Check {
    const ID: &str = "cloud-init-cache";
    if !probe.cloud_init {
        return Check::warn(ID, "not checked: cloud-init is not installed", "see the cloud-init check");
    }
    let consequence = "cloud-init would not see a replacement's new instance id: it would keep the old instance's \
                       user data and id, not lifeboat's boot guard";
    if let Some(file) = probe.manual_cache_clean_in() {
        return Check::fail(
            ID,
            format!("{file} sets manual_cache_clean true: {consequence}"),
            format!(
                "remove manual_cache_clean from {file} (or set it false), then sudo rm -f \
                 /var/lib/cloud/instance/manual-clean"
            ),
        );
    }
    if probe.manual_clean_marker {
        return Check::fail(
            ID,
            format!("/var/lib/cloud/instance/manual-clean exists (manual_cache_clean was set): {consequence}"),
            "sudo rm /var/lib/cloud/instance/manual-clean",
        );
    }
    Check::pass(ID, "cloud-init checks the instance id on every boot (manual_cache_clean is not set)")
}

/// The boothook makes kubelet wait for the guard from cloud-init's network
/// stage, which runs before network-online.target: only a kubelet ordered
/// after it is held on every boot.
fn kubelet_after(probe: &NodeProbe) -> Check {
    const ID: &str = "kubelet-after";
    if !probe.kubelet_unit {
        return Check::warn(ID, "not checked: there is no kubelet.service", "see the kubelet check");
    }
    let after = probe.kubelet_after.as_deref().unwrap_or_default();
    if after.split_whitespace().any(|u| u == "network-online.target") {
        return Check::pass(ID, "kubelet.service is ordered after network-online.target");
    }
    Check::fail(
        ID,
        format!(
            "kubelet.service is not ordered after network-online.target (After={after}): kubelet could start \
             before cloud-init runs lifeboat's user data, so before the boot guard holds it"
        ),
        "sudo mkdir -p /etc/systemd/system/kubelet.service.d && printf '[Unit]\\nWants=network-online.target\\n\
         After=network-online.target\\n' | sudo tee /etc/systemd/system/kubelet.service.d/10-network-online.conf \
         && sudo systemctl daemon-reload",
    )
}

/// The guard tells which volumes this boot runs on from the NVMe serials
/// (on Nitro, the EBS volume id): without them it cannot release kubelet
/// itself, and kubelet waits for lifeboat's repair over SSM.
fn nvme_serials(n: &NodeFacts, probe: &NodeProbe) -> Check {
    const ID: &str = "nvme-serials";
    let named = probe.serial_volumes();
    let consequence = "the boot guard cannot tell which volumes a replacement booted from, so it never releases \
                       kubelet itself: kubelet stays held until lifeboat's repair releases it over SSM";
    if named.is_empty() && probe.nvme_serials.is_empty() && probe.is_xen() {
        return Check::warn(
            ID,
            format!("{} is a Xen instance type without NVMe: {consequence}", n.instance.instance_type),
            "relaunch on Nitro instance types (deploy the stack with InstanceTypes listing Nitro types), or keep \
             the node reachable over SSM for the repair",
        );
    }
    if named.is_empty() {
        let seen = if probe.nvme_serials.is_empty() {
            "no /sys/class/nvme/*/serial could be read".to_string()
        } else {
            format!("no NVMe serial names an EBS volume ({})", probe.nvme_serials.join(", "))
        };
        return Check::fail(
            ID,
            format!("{seen}: {consequence}"),
            "run the node on a Nitro instance type with the kernel's nvme driver (EBS volumes are NVMe devices \
             whose serial is the volume id); check with: cat /sys/class/nvme/*/serial",
        );
    }
    let missing: Vec<&str> =
        n.instance.volumes.iter().map(|v| v.volume_id.as_str()).filter(|id| !named.iter().any(|v| v == id)).collect();
    if !missing.is_empty() {
        return Check::fail(
            ID,
            format!(
                "no NVMe serial names {} (the serials name {}): {consequence}",
                missing.join(", "),
                named.join(", ")
            ),
            "check with: cat /sys/class/nvme/*/serial (each EBS volume's serial is its id without the hyphen)",
        );
    }
    Check::pass(ID, format!("the NVMe serials name every volume: {}", named.join(", ")))
}

fn ebs_only(n: &NodeFacts) -> Check {
    let root = n.extras.as_ref().ok().and_then(|e| e.root_device_type.clone());
    let mounted = match &n.probe {
        Some(Ok(p)) => p.mounted_instance_store().iter().map(|s| s.to_string()).collect(),
        _ => Vec::new(),
    };
    if root.as_deref() == Some("instance-store") {
        return Check::fail(
            "ebs",
            "the root device is instance store: it is gone with the instance",
            "move the node to an EBS-backed AMI",
        );
    }
    if !mounted.is_empty() {
        return Check::fail(
            "ebs",
            format!("instance store is mounted ({}): what is on it is lost at every interruption", mounted.join(", ")),
            "keep /var/lib/etcd, /etc/kubernetes and all state on EBS volumes; unmount the instance store",
        );
    }
    let ebs = n.instance.volumes.len();
    Check::pass("ebs", format!("root and {} data volume(s) on EBS", ebs.saturating_sub(1)))
}

/// Whether EC2 can replace the root volume of an instance of this type:
/// "You can replace the root volume for all virtualized instance types and
/// EC2 Mac bare metal instances. No other bare metal instance types are
/// supported." (EC2 User Guide, "Replace the root volume for an Amazon EC2
/// instance without stopping it", Considerations.)
pub fn root_swap_supported(instance_type: &str) -> bool {
    let (family, size) = instance_type.split_once('.').unwrap_or((instance_type, ""));
    !size.starts_with("metal") || family.starts_with("mac")
}

/// The relaunch swaps the old root volume in with CreateReplaceRootVolumeTask:
/// a bare-metal type it may launch cannot take it.
fn bare_metal(n: &NodeFacts, stack: Option<&Stack>) -> Check {
    let listed = stack.map(Stack::instance_types).unwrap_or_default();
    // The relaunch's types: the stack's InstanceTypes, else the node's own.
    let (types, whose) = if listed.is_empty() {
        (vec![n.instance.instance_type.clone()], "the node's own type (the stack's InstanceTypes is empty)")
    } else {
        (listed, "the stack's InstanceTypes")
    };
    let metal: Vec<&str> = types.iter().map(String::as_str).filter(|t| !root_swap_supported(t)).collect();
    if metal.is_empty() {
        return Check::pass(
            "bare-metal",
            format!("a relaunch on {} ({whose}) can take the old root volume back", types.join(", ")),
        );
    }
    Check::warn(
        "bare-metal",
        format!(
            "{} in {whose} is bare metal: EC2 replaces the root volume of virtualized and EC2 Mac bare-metal \
             instances only, so a replacement of that type cannot come back on the old root volume; it keeps \
             the root of the image it was launched from (the data volumes are attached as usual)",
            metal.join(", ")
        ),
        "relaunch on virtualized types: deploy the stack with InstanceTypes listing no *.metal type",
    )
}

/// The keys of the volumes, where DescribeKey answered.
fn described(n: &NodeFacts) -> impl Iterator<Item = (&KeyFacts, &KmsKey)> {
    n.keys.iter().filter_map(|k| k.key.as_ref().ok().map(|key| (k, key)))
}

fn kms(n: &NodeFacts, stack: Option<&Stack>) -> Check {
    let volumes = match &n.volumes {
        Ok(v) => v,
        Err(e) => return Check::warn("kms", format!("could not read the volumes: {e}"), "allow ec2:DescribeVolumes"),
    };
    let keys = stack.map(Stack::kms_keys).unwrap_or_default();
    // An AWS managed key (aws/ebs) needs no place in EbsKmsKeyArns: the
    // stack's grants are for customer managed keys.
    let aws_managed = |id: &str| described(n).any(|(k, key)| k.id == id && !key.is_customer_managed());
    let listed = |id: &str| {
        keys.iter().any(|allowed| allowed == id || described(n).any(|(k, key)| k.id == id && *allowed == key.arn))
    };
    let foreign: Vec<(&str, &str)> = volumes
        .iter()
        .filter(|v| v.encrypted)
        .filter_map(|v| v.kms_key_id.as_deref().map(|k| (v.id.as_str(), k)))
        .filter(|(_, k)| !listed(k) && !aws_managed(k))
        .collect();
    if foreign.is_empty() {
        let encrypted = volumes.iter().filter(|v| v.encrypted).count();
        return Check::pass(
            "kms",
            format!(
                "{} volume(s), {encrypted} encrypted, every key AWS managed or among the stack's EbsKmsKeyArns",
                volumes.len()
            ),
        );
    }
    // Keys DescribeKey did not describe may be AWS managed.
    let unknown = foreign.iter().any(|(_, k)| !described(n).any(|(key, _)| key.id == *k));
    let foreign: Vec<String> = foreign.iter().map(|(v, k)| format!("{v} ({k})")).collect();
    Check::warn(
        "kms",
        format!("encrypted with a key the stack does not list: {}", foreign.join(", ")),
        if unknown {
            "if it is a customer managed key, add its ARN to the stack's EbsKmsKeyArns parameter and redeploy; \
             the AWS-managed aws/ebs key needs nothing (allow kms:DescribeKey for preflight to tell them apart)"
        } else {
            "add its ARN to the stack's EbsKmsKeyArns parameter and redeploy"
        },
    )
}

/// The partition and account of the spot service-linked role: the node's.
fn node_account(n: &NodeFacts, key_arn: &str) -> (String, String) {
    let field = |arn: &str, i: usize| arn.split(':').nth(i).filter(|p| !p.is_empty()).map(str::to_string);
    let profile = n.instance.instance_profile_arn.as_deref().unwrap_or_default();
    let partition = field(key_arn, 1).or_else(|| field(profile, 1)).unwrap_or_else(|| "aws".into());
    let account = n
        .extras
        .as_ref()
        .ok()
        .and_then(|e| e.owner_id.clone())
        .or_else(|| field(profile, 4))
        .or_else(|| field(key_arn, 4))
        .unwrap_or_else(|| "<account>".into());
    (partition, account)
}

/// A spot replacement on volumes under a customer managed key the spot
/// service-linked role may not use is terminated at once (the module
/// `spot_kms` cites the EC2 User Guide): the key policy is the customer's,
/// so preflight reads it.
fn spot_kms(n: &NodeFacts, stack: Option<&Stack>, region: &str) -> Check {
    let capacity = stack.map_or(stack::DEFAULT_CAPACITY, Stack::capacity);
    if capacity == "on-demand" {
        return Check::pass(
            "spot-kms",
            "relaunches are on-demand only (CapacityStrategy=on-demand): EC2 Spot uses none of the keys",
        );
    }
    if let Err(e) = &n.volumes {
        return Check::warn("spot-kms", format!("could not read the volumes: {e}"), "allow ec2:DescribeVolumes");
    }
    let mut failed = Vec::new();
    let mut undecided = Vec::new();
    let mut allowed = Vec::new();
    let mut customer = Vec::new();
    for k in &n.keys {
        let volumes = k.volumes.join(", ");
        let key = match &k.key {
            Err(e) => {
                undecided.push(format!("could not tell who manages {} ({volumes}): {e}", k.id));
                customer.push(k.id.clone());
                continue;
            }
            Ok(key) if !key.is_customer_managed() => continue,
            Ok(key) => key,
        };
        customer.push(key.arn.clone());
        let (partition, account) = node_account(n, &key.arn);
        let role = spot_kms::spot_role_arn(&partition, &account);
        let caller = spot_kms::Caller { role_arn: &role, account: &account, region, key_arn: &key.arn };
        let policy = match &k.policy {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                undecided.push(format!("could not read the key policy of {} ({volumes}): {e}", key.arn));
                continue;
            }
            None => {
                undecided.push(format!("the key policy of {} ({volumes}) was not read", key.arn));
                continue;
            }
        };
        let grants = match &k.grants {
            Some(Ok(g)) => Some(g.as_slice()),
            _ => None,
        };
        match spot_kms::access(policy, grants, &caller) {
            Err(e) => undecided.push(format!("{} ({volumes}): {e}", key.arn)),
            Ok(a) if !a.denied.is_empty() => failed.push(format!(
                "the key policy of {} ({volumes}) denies {SPOT_ROLE} {}",
                key.arn,
                kms_actions(&a.denied)
            )),
            Ok(a) if !a.missing.is_empty() => failed.push(format!(
                "neither the key policy nor a grant of {} ({volumes}) allows {SPOT_ROLE} {}",
                key.arn,
                kms_actions(&a.missing)
            )),
            Ok(a) if !a.undecided.is_empty() => undecided.push(format!(
                "{} ({volumes}) allows {SPOT_ROLE} only under {}",
                key.arn,
                a.undecided.join("; ")
            )),
            Ok(a) => allowed.push(format!("{}{}", key.arn, if a.by_grant { " (by a grant)" } else { "" })),
        }
    }
    if customer.is_empty() {
        return Check::pass("spot-kms", "no volume is encrypted with a customer managed key");
    }
    if failed.is_empty() && undecided.is_empty() {
        return Check::pass("spot-kms", format!("{SPOT_ROLE} may use {}", allowed.join(", ")));
    }
    let (partition, account) = node_account(n, customer.first().map(String::as_str).unwrap_or_default());
    let fix = spot_kms_fix(&spot_kms::spot_role_arn(&partition, &account), &customer, region);
    let consequence = "a spot replacement on these volumes would be terminated at once";
    if failed.is_empty() {
        Check::warn(
            "spot-kms",
            format!("{}: if EC2 Spot may not use the key, {consequence}", undecided.join("; ")),
            fix,
        )
    } else {
        failed.extend(undecided);
        Check::fail("spot-kms", format!("{}: {consequence}", failed.join("; ")), fix)
    }
}

const SPOT_ROLE: &str = spot_kms::SPOT_ROLE_NAME;

fn kms_actions(ops: &[&str]) -> String {
    ops.iter().map(|op| format!("kms:{op}")).collect::<Vec<_>>().join(", ")
}

/// The statement to add to each key's policy, and the grant the EC2 User
/// Guide documents instead.
fn spot_kms_fix(role: &str, keys: &[String], region: &str) -> String {
    let statement = serde_json::to_string_pretty(&spot_kms::statement(role)).unwrap_or_default();
    let grants: Vec<String> = keys.iter().map(|k| spot_kms::grant_command(region, k, role)).collect();
    format!(
        "add this statement to the key policy of {} (aws kms get-key-policy --key-id KEY --policy-name default \
         --query Policy --output text > policy.json; add it to Statement; aws kms put-key-policy --key-id KEY \
         --policy-name default --policy file://policy.json):\n{statement}\nor give the role the grant the EC2 User \
         Guide documents:\n{}",
        keys.join(", "),
        grants.join("\n")
    )
}

fn stack_deployed(f: &Facts) -> Check {
    let name = &f.stack_name;
    match &f.stack {
        Err(e) => Check::fail("stack", format!("DescribeStacks failed: {e}"), "allow cloudformation:DescribeStacks"),
        Ok(None) => Check::fail(
            "stack",
            format!("no stack {name} in {}", f.region),
            format!(
                "deploy lifeboat: sam deploy --template-file packaged.yaml --stack-name {name} --region {} --capabilities CAPABILITY_IAM",
                f.region
            ),
        ),
        Ok(Some(s)) if !s.is_deployed() => {
            Check::fail("stack", format!("stack {name} is {}", s.status), "fix or delete the stack, then deploy again")
        }
        Ok(Some(s)) => match (s.output(stack::VERSION), s.missing_outputs()) {
            (Some(v), missing) if missing.is_empty() => {
                Check::pass("stack", format!("{name} {v} ({}) in {}", s.status, f.region))
            }
            (_, missing) => Check::warn(
                "stack",
                format!("{name} ({}) lacks the outputs {}", s.status, missing.join(", ")),
                "update the stack with this release's packaged template",
            ),
        },
    }
}

fn concurrency(f: &Facts) -> Check {
    let c = match &f.concurrency {
        Ok(c) => c,
        Err(e) => {
            return Check::warn(
                "lambda-concurrency",
                format!("GetAccountSettings failed: {e}"),
                "allow lambda:GetAccountSettings",
            );
        }
    };
    // The stack reserves none: its functions run from the account's
    // unreserved pool, a relaunch beside a backup and a prune at least.
    let needed = stack::CONCURRENT_AT_LEAST;
    let detail = format!(
        "{} unreserved of {} (lifeboat reserves none; a relaunch, a backup and a prune at once need {needed}, and one more per node interrupted together)",
        c.unreserved, c.limit
    );
    if c.unreserved >= needed {
        Check::pass("lambda-concurrency", detail)
    } else {
        Check::fail(
            "lambda-concurrency",
            detail,
            "ask for more Lambda concurrency: Service Quotas > AWS Lambda > Concurrent executions (L-B99A9384), e.g. 1000",
        )
    }
}

#[cfg(test)]
mod tests;
