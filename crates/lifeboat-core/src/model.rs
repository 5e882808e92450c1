//! What lifeboat knows of the cloud: instances, volumes, images and
//! snapshots, as the ports describe them. Plain data, no SDK types.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

pub type Tags = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    #[default]
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl InstanceState {
    pub fn parse(s: &str) -> Option<InstanceState> {
        Some(match s {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }

    /// Gone for good, or about to be.
    pub fn is_gone(self) -> bool {
        matches!(self, InstanceState::ShuttingDown | InstanceState::Terminated)
    }

    /// A state CreateImage accepts.
    pub fn can_be_imaged(self) -> bool {
        matches!(self, InstanceState::Running | InstanceState::Stopping | InstanceState::Stopped)
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub state: InstanceState,
    pub launch_time: Option<DateTime<Utc>>,
    pub tags: Tags,
    pub instance_type: String,
    pub image_id: Option<String>,
    pub availability_zone: Option<String>,
    pub subnet_id: Option<String>,
    pub private_ip: Option<String>,
    /// An Elastic IP or public address, if any.
    pub public_ip: Option<String>,
    pub security_group_ids: Vec<String>,
    /// The interface at device index 0.
    pub primary_interface: Option<Attachment>,
    /// The root device name (`/dev/xvda`, `/dev/sda1`).
    pub root_device: Option<String>,
    /// Its EBS volumes (EC2 no longer lists them once it is terminated).
    pub volumes: Vec<AttachedVolume>,
    pub key_name: Option<String>,
    pub instance_profile_arn: Option<String>,
    /// `required` (IMDSv2 only) or `optional`.
    pub http_tokens: Option<String>,
    pub http_put_response_hop_limit: Option<i32>,
    pub spot: bool,
    /// Why it last changed state, as EC2 tells (`StateReason`), once it has.
    pub state_reason: Option<StateReason>,
}

/// EC2's reason for an instance's last state change (API reference,
/// API_StateReason.html): a code such as `Client.InternalError` and a
/// message such as `Client.InternalError: Client error on launch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateReason {
    pub code: String,
    pub message: String,
}

/// The state reasons API_StateReason.html gives for an instance that
/// terminated during its launch, not after it ran.
const LAUNCH_FAILURES: &[&str] = &[
    "Server.InsufficientInstanceCapacity",
    "Server.InternalError",
    "Client.InternalError",
    "Client.InvalidSnapshot.NotFound",
    "Client.VolumeLimitExceeded",
];

impl Instance {
    /// Why the instance ended during its launch, when EC2 says it did: a
    /// spot launch whose volumes use a KMS key AWSServiceRoleForEC2Spot may
    /// not use is terminated at once with `Client.InternalError` (EC2 user
    /// guide, service-linked-roles-spot-instance-requests.html, "Grant
    /// access to customer managed keys for use with encrypted AMIs and EBS
    /// snapshots").
    pub fn launch_failure(&self) -> Option<&StateReason> {
        let reason = self.state_reason.as_ref()?;
        (self.state.is_gone() && LAUNCH_FAILURES.contains(&reason.code.as_str())).then_some(reason)
    }

    /// The volume at the root device, if EC2 describes it.
    pub fn root_volume(&self) -> Option<&AttachedVolume> {
        let root = self.root_device.as_deref()?;
        self.volumes.iter().find(|v| v.device == root)
    }
}

/// A network interface as attached to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub interface_id: String,
    pub attachment_id: String,
    pub delete_on_termination: bool,
}

/// An EBS volume as attached to an instance (its block device mapping).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttachedVolume {
    pub device: String,
    pub volume_id: String,
    pub delete_on_termination: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInterface {
    pub id: String,
    /// `available`, `in-use`, `attaching`, `detaching`, ...
    pub status: String,
    pub subnet_id: String,
    pub availability_zone: Option<String>,
    pub private_ip: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeState {
    Creating,
    Available,
    InUse,
    Deleting,
    Other,
}

impl VolumeState {
    pub fn parse(s: &str) -> VolumeState {
        match s {
            "creating" => VolumeState::Creating,
            "available" => VolumeState::Available,
            "in-use" => VolumeState::InUse,
            "deleting" => VolumeState::Deleting,
            _ => VolumeState::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub id: String,
    pub state: VolumeState,
    pub availability_zone: String,
    pub encrypted: bool,
    pub size_gib: i32,
    pub create_time: Option<DateTime<Utc>>,
    /// The instance it is attached to, if any.
    pub attached_to: Option<String>,
    pub tags: Tags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageState {
    Pending,
    Available,
    Failed,
    /// Disabled (DisableImage): not launchable, and its snapshots are still
    /// in use; never deleted by lifeboat.
    Disabled,
    /// Any other state (`invalid`, `deregistered`, `transient`, `error`):
    /// never deleted by lifeboat, never counted as good.
    Other,
}

impl ImageState {
    pub fn parse(s: &str) -> ImageState {
        match s {
            "pending" => ImageState::Pending,
            "available" => ImageState::Available,
            "failed" => ImageState::Failed,
            "disabled" => ImageState::Disabled,
            _ => ImageState::Other,
        }
    }
}

/// One device of an image's block device mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDevice {
    pub device: String,
    pub snapshot_id: Option<String>,
    pub size_gib: Option<i32>,
    /// As recorded from the instance when the image was made: an image of a
    /// prepared node says `false`, and anything launched from it as-is
    /// would leave its volumes behind.
    pub delete_on_termination: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub state: ImageState,
    pub creation_date: Option<DateTime<Utc>>,
    pub root_device: Option<String>,
    pub devices: Vec<ImageDevice>,
    pub tags: Tags,
}

impl Image {
    pub fn snapshot_ids(&self) -> impl Iterator<Item = &String> {
        self.devices.iter().filter_map(|d| d.snapshot_id.as_ref())
    }

    /// The mapping of the root device.
    pub fn root(&self) -> Option<&ImageDevice> {
        let root = self.root_device.as_deref()?;
        self.devices.iter().find(|d| d.device == root)
    }
}

/// What went wrong, as lifeboat needs to tell: the adapters (and the
/// in-memory cloud) set it from AWS's error code, so the core never matches
/// error-code strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The resource does not exist (or no longer).
    NotFound,
    /// A resource with this name or idempotency token exists already
    /// (`InvalidAMIName.Duplicate`, `IdempotentParameterMismatch`).
    AlreadyExists,
    /// No capacity for this instance type and market now.
    NoCapacity,
    /// The resource is used by another (`InvalidIPAddress.InUse`,
    /// `InvalidSnapshot.InUse`, `VolumeInUse`, ...).
    InUse,
    /// Made a moment ago and not yet visible (`InvocationDoesNotExist`).
    NotYetVisible,
    /// AWS refused the request itself, and says why (see [`Refusal`]).
    Refused(Refusal),
    /// Throttled after the SDK's own retries.
    Throttled,
    /// A `DryRun` request that would have succeeded (`DryRunOperation`):
    /// the caller may make it.
    DryRunPassed,
    /// Anything else: never the ground of a decision, only a failure.
    Other,
}

/// Why AWS refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    /// The caller may not do it (`UnauthorizedOperation`, `AccessDenied`,
    /// ...): IAM, a service control policy or a key policy says no. The
    /// stack's permissions are broken; never a reason to fall back quietly.
    Authorization,
    /// The request is not valid for the resources it names
    /// (`InvalidParameterValue`, `ValidationException`, ...).
    Validation,
    /// A resource is not in a state the request accepts (`IncorrectState`,
    /// `IncorrectInstanceState`, ...).
    State,
}

/// An error from the cloud, as the adapters report it: the operation, its
/// kind, the AWS error code when there is one, and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{operation} failed: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct CloudError {
    pub operation: String,
    pub kind: ErrorKind,
    pub code: Option<String>,
    pub message: String,
}

impl CloudError {
    pub fn new(operation: &str, kind: ErrorKind, code: Option<&str>, message: impl Into<String>) -> CloudError {
        CloudError { operation: operation.to_string(), kind, code: code.map(str::to_string), message: message.into() }
    }

    pub fn is(&self, kind: ErrorKind) -> bool {
        self.kind == kind
    }

    /// Why AWS refused the request, if it did.
    pub fn refusal(&self) -> Option<Refusal> {
        match self.kind {
            ErrorKind::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotState {
    Pending,
    Completed,
    Error,
    Other,
}

impl SnapshotState {
    pub fn parse(s: &str) -> SnapshotState {
        match s {
            "pending" => SnapshotState::Pending,
            "completed" => SnapshotState::Completed,
            "error" => SnapshotState::Error,
            _ => SnapshotState::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub id: String,
    pub state: SnapshotState,
    pub start_time: Option<DateTime<Utc>>,
    pub tags: Tags,
}

/// A root-volume replacement task (CreateReplaceRootVolumeTask).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootTask {
    pub id: String,
    pub instance_id: String,
    pub state: RootTaskState,
    pub start_time: Option<DateTime<Utc>>,
}

/// The states of a root-volume replacement task, as AWS documents them
/// (API reference, API_ReplaceRootVolumeTask.html, `taskState`; user guide,
/// replace-root.html): `failing` and `failing-detached` are on their way to
/// `failed` and `failed-detached`, not there yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootTaskState {
    Pending,
    InProgress,
    Succeeded,
    /// `failing`: "in the process of failing".
    Failing,
    /// `failed`: "the original root volume is still attached".
    Failed,
    /// `failing-detached`: failing, and "the instance might have no root
    /// volume attached".
    FailingDetached,
    /// `failed-detached`: "the instance has no root volume attached".
    FailedDetached,
}

impl RootTaskState {
    pub fn parse(s: &str) -> RootTaskState {
        match s {
            "pending" => RootTaskState::Pending,
            "in-progress" => RootTaskState::InProgress,
            "succeeded" => RootTaskState::Succeeded,
            "failing" => RootTaskState::Failing,
            "failed" => RootTaskState::Failed,
            "failing-detached" => RootTaskState::FailingDetached,
            "failed-detached" => RootTaskState::FailedDetached,
            // A state this version does not know: wait (within the bound)
            // rather than act on a guess.
            _ => RootTaskState::InProgress,
        }
    }

    /// A final state: `succeeded`, `failed` or `failed-detached`.
    pub fn is_done(self) -> bool {
        matches!(self, RootTaskState::Succeeded | RootTaskState::Failed | RootTaskState::FailedDetached)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_task_failing_is_not_done_until_it_failed() {
        for (text, state, done) in [
            ("pending", RootTaskState::Pending, false),
            ("in-progress", RootTaskState::InProgress, false),
            ("failing", RootTaskState::Failing, false),
            ("failing-detached", RootTaskState::FailingDetached, false),
            ("succeeded", RootTaskState::Succeeded, true),
            ("failed", RootTaskState::Failed, true),
            ("failed-detached", RootTaskState::FailedDetached, true),
            ("a-state-to-come", RootTaskState::InProgress, false),
        ] {
            assert_eq!((RootTaskState::parse(text), RootTaskState::parse(text).is_done()), (state, done), "{text}");
        }
    }

    #[test]
    fn only_an_end_during_the_launch_is_a_launch_failure() {
        let ended = |state, code: &str| Instance {
            state,
            state_reason: Some(StateReason { code: code.into(), message: format!("{code}: ...") }),
            ..Instance::default()
        };
        assert!(ended(InstanceState::Terminated, "Client.InternalError").launch_failure().is_some());
        assert!(ended(InstanceState::ShuttingDown, "Server.InternalError").launch_failure().is_some());
        assert!(ended(InstanceState::Terminated, "Server.SpotInstanceTermination").launch_failure().is_none());
        assert!(ended(InstanceState::Terminated, "Client.UserInitiatedShutdown").launch_failure().is_none());
        assert!(ended(InstanceState::Pending, "Client.InternalError").launch_failure().is_none());
    }
}
