//! What lifeboat knows of the cloud: instances, images and snapshots, as the
//! ports describe them. Plain data, no SDK types.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

pub type Tags = BTreeMap<String, String>;

/// Tag keys lifeboat writes besides the node tag.
pub mod tag {
    pub const NAME: &str = "Name";
    pub const SOURCE_INSTANCE: &str = "lifeboat:source-instance";
    pub const KIND: &str = "lifeboat:kind";
    /// The tag the original cron script put on its images; kept so existing
    /// tooling still recognises lifeboat's backups.
    pub const AUTO_BACKUP: &str = "AutoBackup";
}

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
    pub subnet_id: Option<String>,
    pub private_ip: Option<String>,
    pub security_group_ids: Vec<String>,
    /// The interface at device index 0.
    pub primary_interface: Option<Attachment>,
    pub key_name: Option<String>,
    pub instance_profile_arn: Option<String>,
    /// `required` (IMDSv2 only) or `optional`.
    pub http_tokens: Option<String>,
    pub http_put_response_hop_limit: Option<i32>,
    pub spot: bool,
}

/// A network interface as attached to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub interface_id: String,
    pub attachment_id: String,
    pub delete_on_termination: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInterface {
    pub id: String,
    /// `available`, `in-use`, `attaching`, `detaching`, ...
    pub status: String,
    pub subnet_id: String,
    pub private_ip: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageState {
    Pending,
    Available,
    Failed,
    /// Any other state (`invalid`, `deregistered`, `transient`, `error`,
    /// `disabled`): never deleted by lifeboat, never counted as good.
    Other,
}

impl ImageState {
    pub fn parse(s: &str) -> ImageState {
        match s {
            "pending" => ImageState::Pending,
            "available" => ImageState::Available,
            "failed" => ImageState::Failed,
            _ => ImageState::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub state: ImageState,
    pub creation_date: Option<DateTime<Utc>>,
    pub snapshot_ids: Vec<String>,
    pub tags: Tags,
}

/// An error from the cloud, as the adapters report it: the operation, the
/// AWS error code when there is one, and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{operation} failed: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct CloudError {
    pub operation: String,
    pub code: Option<String>,
    pub message: String,
}

impl CloudError {
    pub fn new(operation: &str, code: Option<&str>, message: impl Into<String>) -> CloudError {
        CloudError { operation: operation.to_string(), code: code.map(str::to_string), message: message.into() }
    }

    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
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
