//! The cloud as lifeboat needs it: small traits the adapters crate implements
//! with the AWS SDK, and the tests with in-memory fakes.

use crate::model::{Attachment, CloudError, Image, Instance, NetworkInterface, Snapshot, Tags};
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
    /// A new interface with the old private IP.
    Address { subnet_id: String, private_ip: Option<String>, security_group_ids: Vec<String> },
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
    pub tags: Tags,
}

/// The EC2 operations lifeboat calls.
pub trait Ec2: Send + Sync {
    /// Every instance (any state) that carries the tag key `tag_key`.
    fn instances_with_tag(&self, tag_key: &str) -> impl Future<Output = Result<Vec<Instance>, CloudError>> + Send;

    /// CreateImage with NoReboot and the spec's tags on the image and its
    /// snapshots. Returns the new image id.
    fn create_image(&self, spec: &ImageSpec) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// The image of this account with exactly this name, if any.
    fn image_named(&self, name: &str) -> impl Future<Output = Result<Option<Image>, CloudError>> + Send;

    /// Every image this account owns, tagged or not (a snapshot in use by any
    /// of them must survive a prune).
    fn own_images(&self) -> impl Future<Output = Result<Vec<Image>, CloudError>> + Send;

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

    fn delete_snapshot(&self, snapshot_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// The instance with this id, in any state; `None` once EC2 forgot it.
    fn instance(&self, instance_id: &str) -> impl Future<Output = Result<Option<Instance>, CloudError>> + Send;

    fn network_interface(
        &self,
        interface_id: &str,
    ) -> impl Future<Output = Result<Option<NetworkInterface>, CloudError>> + Send;

    /// Sets the attachment's DeleteOnTermination to false.
    fn keep_interface_on_termination(
        &self,
        attachment: &Attachment,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// RunInstances for one instance; returns it as launched.
    fn run_instance(&self, request: &LaunchRequest) -> impl Future<Output = Result<Instance, CloudError>> + Send;

    /// TerminateInstances for one instance (restore drill clones only).
    fn terminate_instance(&self, instance_id: &str) -> impl Future<Output = Result<(), CloudError>> + Send;
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

    /// AWS-RunShellScript with `script` (run by bash with `args`) on this one
    /// instance; returns the command id.
    fn send_script(
        &self,
        instance_id: &str,
        comment: &str,
        script: &str,
        args: &[String],
        timeout_seconds: i32,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;

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
