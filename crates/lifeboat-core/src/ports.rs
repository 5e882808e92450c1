//! The cloud as lifeboat needs it: small traits the adapters crate implements
//! with the AWS SDK, and the tests with the in-memory cloud.
//!
//! The traits follow what each function may do, so a function's bounds are
//! its permissions: scheduled-backup is `Describe + Imaging + Preparing`,
//! retention-pruner `Describe + Pruning + DeleteVolume`, interruption-handler
//! `Describe + Imaging + Preparing + Launching + DeleteVolume` with `Ssm` and
//! `Notifier`. The IAM test reads the adapters' impl blocks per trait.
//!
//! Errors are [`CloudError`]s whose [`ErrorKind`](crate::model::ErrorKind)
//! the adapter sets; each method says which kinds it returns besides
//! `Throttled` and `Other`.

use crate::model::{Attachment, CloudError, Image, Instance, NetworkInterface, RootTask, Snapshot, Tags, Volume};
use std::future::Future;

/// What a backup image is made of: the source instance, the AMI name, and the
/// tags put on the image and on each of its snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub instance_id: String,
    pub name: String,
    pub description: String,
    /// Tags for the image and for its snapshots (one TagSpecification each).
    pub tags: Tags,
    /// Tags for the image only (the launch spec a relaunch reads back).
    pub image_tags: Tags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Market {
    Spot,
    OnDemand,
}

/// Where the new instance's primary interface comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Network {
    /// The old instance's interface, kept on termination: same IP, same
    /// security groups, same Elastic IP association.
    Interface(String),
    /// A new interface, with this private IP or one EC2 picks.
    Address { subnet_id: String, private_ip: Option<String>, security_group_ids: Vec<String> },
}

/// How a launch treats one device of the image's block device mapping.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceOverride {
    pub device: String,
    /// `None`: not attached at all (`NoDevice`), because a preserved volume
    /// takes its place; otherwise the DeleteOnTermination it gets.
    pub delete_on_termination: Option<bool>,
}

/// One RunInstances call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchRequest {
    /// Makes retries of this very launch return the same instance.
    pub client_token: String,
    pub image_id: String,
    pub instance_type: String,
    pub market: Market,
    pub network: Network,
    pub key_name: Option<String>,
    pub instance_profile_arn: Option<String>,
    pub http_tokens: Option<String>,
    pub http_put_response_hop_limit: Option<i32>,
    /// One entry per device of the image: images remember the
    /// DeleteOnTermination of the instance they were made from.
    pub devices: Vec<DeviceOverride>,
    /// cloud-init user data, as text (the adapter encodes it).
    pub user_data: String,
    pub tags: Tags,
    /// Tags for the volumes the launch creates, and for its new interface
    /// when it makes one ([`Network::Address`]).
    pub volume_tags: Tags,
}

/// One CreateVolume call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRequest {
    pub client_token: String,
    pub snapshot_id: String,
    pub availability_zone: String,
    pub tags: Tags,
}

/// What a root-volume replacement task swaps in: a given volume (a node's
/// own old root, a drill's volume made from a snapshot) or a new volume
/// EC2 restores from an image of the same instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSource {
    Volume(String),
    Image(String),
}

impl RootSource {
    /// The volume or image id.
    pub fn id(&self) -> &str {
        match self {
            RootSource::Volume(id) | RootSource::Image(id) => id,
        }
    }
}

/// What every function reads: instances, images, volumes.
pub trait Describe: Send + Sync {
    /// Every instance (any state) that carries the tag key `tag_key`.
    fn instances_with_tag(&self, tag_key: &str) -> impl Future<Output = Result<Vec<Instance>, CloudError>> + Send;

    /// The instance with this id, in any state; `None` once EC2 forgot it.
    fn instance(&self, instance_id: &str) -> impl Future<Output = Result<Option<Instance>, CloudError>> + Send;

    /// The instance RunInstances made with this ClientToken, if EC2 still
    /// describes it.
    fn instance_by_client_token(
        &self,
        client_token: &str,
    ) -> impl Future<Output = Result<Option<Instance>, CloudError>> + Send;

    /// Every image this account owns, tagged or not, disabled ones included
    /// (a snapshot in use by any of them must survive a prune).
    fn own_images(&self) -> impl Future<Output = Result<Vec<Image>, CloudError>> + Send;

    /// The image of this account with exactly this name, if any.
    fn image_named(&self, name: &str) -> impl Future<Output = Result<Option<Image>, CloudError>> + Send;

    /// The volumes carrying the tag `key` (with this value, if given).
    fn volumes_tagged(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Volume>, CloudError>> + Send;

    /// The volumes with these ids (missing ones are absent).
    fn volumes_by_id(&self, ids: &[String]) -> impl Future<Output = Result<Vec<Volume>, CloudError>> + Send;

    /// The volumes attached to these instances.
    fn volumes_attached_to(
        &self,
        instance_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Volume>, CloudError>> + Send;
}

/// CreateImage.
pub trait Imaging: Send + Sync {
    /// CreateImage with NoReboot and the spec's tags on the image and its
    /// snapshots. Returns the new image id. `AlreadyExists` for a name in use.
    fn create_image(&self, spec: &ImageSpec) -> impl Future<Output = Result<String, CloudError>> + Send;
}

/// Preparing a node so that its interface and disks outlive its instance.
pub trait Preparing: Send + Sync {
    /// Sets the attachment's DeleteOnTermination to false.
    fn keep_interface_on_termination(
        &self,
        attachment: &Attachment,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Sets DeleteOnTermination of these devices of the instance.
    fn set_delete_on_termination(
        &self,
        instance_id: &str,
        devices: &[String],
        delete: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Adds (or overwrites) these tags on these resources.
    fn tag(&self, resource_ids: &[String], tags: &Tags) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// Deleting old backups.
pub trait Pruning: Send + Sync {
    /// The snapshots this account owns that carry the tag key `tag_key`.
    fn snapshots_with_tag(&self, tag_key: &str) -> impl Future<Output = Result<Vec<Snapshot>, CloudError>> + Send;

    /// Those of `ids` that still exist (missing ones are simply absent).
    fn snapshots_by_id(&self, ids: &[String]) -> impl Future<Output = Result<Vec<Snapshot>, CloudError>> + Send;

    /// DeregisterImage with DeleteAssociatedSnapshots as asked.
    fn deregister_image(
        &self,
        image_id: &str,
        delete_snapshots: bool,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// `NotFound` if gone, `InUse` if a registered (or disabled) image uses it.
    fn delete_snapshot(&self, snapshot_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// DeleteVolume: preserved volumes past retention (retention-pruner), a
/// drill's own volumes (interruption-handler).
pub trait DeleteVolume: Send + Sync {
    /// `NotFound` if gone, `InUse` if attached.
    fn delete_volume(&self, volume_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// Launching a replacement (or a drill clone) and giving it its disks.
pub trait Launching: Send + Sync {
    fn network_interface(
        &self,
        interface_id: &str,
    ) -> impl Future<Output = Result<Option<NetworkInterface>, CloudError>> + Send;

    /// The CIDR blocks of the subnet's VPC (DescribeSubnets, DescribeVpcs):
    /// its primary IPv4 block first, then its other associated IPv4 and IPv6
    /// blocks. A drill clone's fence keeps it off all of them.
    fn vpc_blocks(&self, subnet_id: &str) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;

    /// RunInstances for one instance; returns it as launched. `NoCapacity`
    /// to try another type or market, `InUse` while the old address or
    /// interface is still being released, `AlreadyExists` when the token was
    /// used with other parameters.
    fn run_instance(&self, request: &LaunchRequest) -> impl Future<Output = Result<Instance, CloudError>> + Send;

    /// TerminateInstances for one instance (restore drill clones only).
    fn terminate_instance(&self, instance_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// AttachVolume at this device name.
    fn attach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
        device: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// CreateVolume from a snapshot; returns the volume id.
    fn create_volume(&self, request: &VolumeRequest) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// CreateReplaceRootVolumeTask from this source, the replaced root
    /// deleted by the task. Idempotent by `client_token`: the same token
    /// answers the task it started. Returns the task id.
    fn replace_root_volume(
        &self,
        instance_id: &str,
        source: &RootSource,
        client_token: &str,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// The instance's root-volume replacement tasks, any state.
    fn root_tasks(&self, instance_id: &str) -> impl Future<Output = Result<Vec<RootTask>, CloudError>> + Send;
}

/// The scripts lifeboat runs on a node over SSM Run Command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Script {
    /// scripts/lifeboat-repair.sh: repairs and releases the boot guard.
    Repair,
    /// scripts/lifeboat-repair.sh --health: checks a restored control
    /// plane with the repair's own verification, changing nothing.
    Health,
}

impl Script {
    pub const fn name(self) -> &'static str {
        match self {
            Script::Repair => "repair",
            Script::Health => "health",
        }
    }

    /// The script itself.
    pub const fn text(self) -> &'static str {
        match self {
            Script::Repair => include_str!("../scripts/lifeboat-repair.sh"),
            Script::Health => include_str!("../scripts/lifeboat-repair.sh"),
        }
    }

    /// The script as lifeboat sends it to a node: its comment lines emptied
    /// (the shebang and every line of a here-document kept, line numbers
    /// unchanged), for an SSM
    /// document holds at most 64 KB and the repair's comments alone are a
    /// quarter of that. The bats tests run this text; read the commented
    /// source in crates/lifeboat-core/scripts/.
    pub fn sent_text(self) -> String {
        let mut out = String::with_capacity(self.text().len());
        let mut heredoc: Option<String> = None;
        for (i, line) in self.text().lines().enumerate() {
            if let Some(end) = &heredoc {
                if line.trim_start_matches('\t') == end {
                    heredoc = None;
                }
            } else if i > 0 && line.trim_start().starts_with('#') {
                // An empty line in its place: the line numbers bash reports
                // ("line N") stay those of the source.
                out.push('\n');
                continue;
            } else {
                heredoc = heredoc_delimiter(line);
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// The script's own arguments, before lifeboat's: the stack's health
    /// document runs `bash -s -- --health {{ args }}`.
    pub const fn mode(self) -> &'static [&'static str] {
        match self {
            Script::Repair => &[],
            Script::Health => &["--health"],
        }
    }
}

/// The delimiter of a here-document a line opens (`<<WORD`, `<<-'WORD'`,
/// `<<"WORD"`; not a here-string, `<<<`).
fn heredoc_delimiter(line: &str) -> Option<String> {
    let mut rest = line;
    while let Some(at) = rest.find("<<") {
        let after = &rest[at + 2..];
        if after.starts_with('<') {
            rest = after.trim_start_matches('<');
            continue;
        }
        let word = after.trim_start_matches('-').trim_start().trim_start_matches(['\'', '"']);
        let end = word.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(word.len());
        if end > 0 && !word.as_bytes()[0].is_ascii_digit() {
            return Some(word[..end].to_string());
        }
        rest = after;
    }
    None
}

/// One SendCommand to one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRequest {
    pub instance_id: String,
    pub script: Script,
    /// Arguments of lifeboat's own making (flags, node names checked by the
    /// core).
    pub args: Vec<String>,
    /// At most 100 characters (SSM's limit); how a retry finds the command.
    pub comment: String,
    /// The command's executionTimeout.
    pub timeout_seconds: u32,
}

/// The state of a Run Command invocation on one instance.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum CommandState {
    /// Sent, not finished (or not yet visible).
    InProgress,
    Success {
        output: String,
    },
    /// Failed, TimedOut, Cancelled, ...: the status as SSM names it.
    Failed {
        ssm_status: String,
        exit_code: i32,
        output: String,
        error: String,
    },
}

/// The SSM operations lifeboat calls.
pub trait Ssm: Send + Sync {
    /// Whether the instance's agent reports `Online`.
    fn is_online(&self, instance_id: &str) -> impl Future<Output = Result<bool, CloudError>> + Send;

    /// Sends the script to the instance; returns the command id.
    fn send_command(&self, request: &CommandRequest) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// `NotYetVisible` for a moment after the command was sent.
    fn command_state(
        &self,
        command_id: &str,
        instance_id: &str,
    ) -> impl Future<Output = Result<CommandState, CloudError>> + Send;

    /// The newest command sent to the instance with exactly this comment.
    fn last_command(
        &self,
        instance_id: &str,
        comment: &str,
    ) -> impl Future<Output = Result<Option<String>, CloudError>> + Send;
}

/// Notifications to the operators (SNS).
pub trait Notifier: Send + Sync {
    fn publish(
        &self,
        topic_arn: &str,
        subject: &str,
        message: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// A port as IAM sees it: the AWS operations (`service:Operation`) its
/// implementation in lifeboat-aws may call, so what the role of a function
/// using it must grant. The contract manifest carries them to
/// infra/check_stack.py; the emulator records every call each function
/// makes, and a test holds the calls to these lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Port {
    Describe,
    Imaging,
    Preparing,
    Pruning,
    DeleteVolume,
    Launching,
    Ssm,
    Notifier,
}

impl Port {
    pub const fn name(self) -> &'static str {
        match self {
            Port::Describe => "Describe",
            Port::Imaging => "Imaging",
            Port::Preparing => "Preparing",
            Port::Pruning => "Pruning",
            Port::DeleteVolume => "DeleteVolume",
            Port::Launching => "Launching",
            Port::Ssm => "Ssm",
            Port::Notifier => "Notifier",
        }
    }

    pub const fn operations(self) -> &'static [&'static str] {
        match self {
            Port::Describe => &["ec2:DescribeImages", "ec2:DescribeInstances", "ec2:DescribeVolumes"],
            Port::Imaging => &["ec2:CreateImage"],
            Port::Preparing => {
                &["ec2:CreateTags", "ec2:ModifyInstanceAttribute", "ec2:ModifyNetworkInterfaceAttribute"]
            }
            Port::Pruning => &["ec2:DeleteSnapshot", "ec2:DeregisterImage", "ec2:DescribeSnapshots"],
            Port::DeleteVolume => &["ec2:DeleteVolume"],
            Port::Launching => &[
                "ec2:AttachVolume",
                "ec2:CreateReplaceRootVolumeTask",
                "ec2:CreateVolume",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeReplaceRootVolumeTasks",
                "ec2:DescribeSubnets",
                "ec2:DescribeVpcs",
                "ec2:RunInstances",
                "ec2:TerminateInstances",
            ],
            Port::Ssm => {
                &["ssm:DescribeInstanceInformation", "ssm:GetCommandInvocation", "ssm:ListCommands", "ssm:SendCommand"]
            }
            Port::Notifier => &["sns:Publish"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_script_keeps_its_code_and_here_documents_and_drops_comment_lines() {
        let text = Script::Repair.sent_text();
        assert!(text.starts_with("#!/usr/bin/env bash\n"), "the shebang stays");
        assert!(!text.lines().skip(1).any(|l| l.trim_start().starts_with('#') && !l.contains("<<")), "no comment line");
        assert!(text.len() < Script::Repair.text().len() * 9 / 10, "{} of {}", text.len(), Script::Repair.text().len());
        // Every line of code is there, on its own line number.
        let source: Vec<&str> = Script::Repair.text().lines().collect();
        let sent: Vec<&str> = text.lines().collect();
        assert_eq!(sent.len(), source.len());
        for (sent, source) in sent.iter().zip(&source).skip(1) {
            let comment = source.trim_start().starts_with('#');
            assert_eq!(*sent, if comment { "" } else { *source });
        }
    }

    #[test]
    fn here_documents_are_found_and_here_strings_are_not() {
        assert_eq!(heredoc_delimiter("  cat <<YAML"), Some("YAML".into()));
        assert_eq!(heredoc_delimiter("bash -s -- <<'LIFEBOAT_SCRIPT'"), Some("LIFEBOAT_SCRIPT".into()));
        assert_eq!(heredoc_delimiter("cat <<-\"EOF\" >file"), Some("EOF".into()));
        assert_eq!(heredoc_delimiter("base64 -d <<<\"$data\""), None);
        assert_eq!(heredoc_delimiter("echo $((1 << 2))"), None);
        assert_eq!(heredoc_delimiter("echo done"), None);
    }
}
