//! What the command-line tool reads and does in AWS, as small traits: the
//! commands decide, the adapters in [`crate::aws`] only translate, and the
//! unit tests fake each trait.
//!
//! Errors are the core's [`CloudError`]s, with the kind the adapter set.

use chrono::{DateTime, Utc};
use lifeboat_core::model::{CloudError, Image, Instance, RootTaskState};
use lifeboat_core::ports::CommandState;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::future::Future;

/// A CloudFormation stack as DescribeStacks shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stack {
    pub name: String,
    /// `CREATE_COMPLETE`, `UPDATE_ROLLBACK_COMPLETE`, ...
    pub status: String,
    pub outputs: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
}

/// The stack: its outputs, and its resources of one type.
pub trait Stacks: Send + Sync {
    /// `None` when no stack of this name exists in the region.
    fn stack(&self, name: &str) -> impl Future<Output = Result<Option<Stack>, CloudError>> + Send;

    /// The physical ids of the stack's resources of this type
    /// (`AWS::CloudWatch::Alarm`: the alarm names).
    fn resources_of_type(
        &self,
        stack: &str,
        resource_type: &str,
    ) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alarm {
    pub name: String,
    /// `OK`, `ALARM`, `INSUFFICIENT_DATA`.
    pub state: String,
    pub reason: String,
    pub since: Option<DateTime<Utc>>,
}

/// CloudWatch DescribeAlarms.
pub trait Alarms: Send + Sync {
    fn alarms(&self, names: &[String]) -> impl Future<Output = Result<Vec<Alarm>, CloudError>> + Send;
}

/// What a synchronous invocation returned.
#[derive(Debug, Clone, PartialEq)]
pub enum Invoked {
    /// The function's response (its report).
    Response(Value),
    /// A function error: `{"errorType", "errorMessage"}` as the runtime
    /// reported it.
    FunctionError { error_type: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AccountConcurrency {
    pub limit: i32,
    pub unreserved: i32,
}

/// Lambda: Invoke (RequestResponse) and GetAccountSettings.
pub trait Functions: Send + Sync {
    fn invoke(&self, function: &str, payload: &Value) -> impl Future<Output = Result<Invoked, CloudError>> + Send;

    fn account_concurrency(&self) -> impl Future<Output = Result<AccountConcurrency, CloudError>> + Send;
}

/// What an experiment template selects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExperimentTarget {
    pub resource_type: String,
    pub resource_arns: Vec<String>,
    pub resource_tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Experiment {
    pub id: String,
    /// `pending`, `initiating`, `running`, `completed`, `stopping`,
    /// `stopped`, `failed`, `cancelled`.
    pub status: String,
    pub reason: Option<String>,
    pub start_time: Option<DateTime<Utc>>,
}

/// AWS Fault Injection Service.
pub trait Experiments: Send + Sync {
    fn template_targets(
        &self,
        template_id: &str,
    ) -> impl Future<Output = Result<Vec<ExperimentTarget>, CloudError>> + Send;

    /// StartExperiment; `client_token` makes a retried call start it once.
    fn start(
        &self,
        template_id: &str,
        client_token: &str,
    ) -> impl Future<Output = Result<Experiment, CloudError>> + Send;

    fn experiment(&self, id: &str) -> impl Future<Output = Result<Experiment, CloudError>> + Send;
}

/// A spot request as DescribeSpotInstanceRequests shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpotRequest {
    pub id: String,
    /// `one-time` or `persistent`.
    pub request_type: String,
    /// `terminate`, `stop` or `hibernate`.
    pub interruption_behavior: String,
}

/// What EC2 says about a node beyond the core's [`Instance`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InstanceExtras {
    pub vpc_id: Option<String>,
    /// `ebs` or `instance-store`.
    pub root_device_type: Option<String>,
    pub spot_request_id: Option<String>,
    /// The account that owns the instance (its reservation's owner).
    pub owner_id: Option<String>,
}

/// An EBS volume's encryption and type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeCrypto {
    pub id: String,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
}

/// A KMS key as DescribeKey shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KmsKey {
    pub arn: String,
    /// `AWS` (an AWS managed key such as aws/ebs) or `CUSTOMER`.
    pub manager: String,
}

impl KmsKey {
    pub fn is_customer_managed(&self) -> bool {
        self.manager.eq_ignore_ascii_case("CUSTOMER")
    }
}

/// A grant of a KMS key as ListGrants shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyGrant {
    pub grantee: String,
    /// `Decrypt`, `CreateGrant`, ...
    pub operations: Vec<String>,
    /// Whether the grant allows its operations only under an encryption
    /// context constraint.
    pub constrained: bool,
}

/// AWS KMS: what preflight reads of the keys of the node's volumes.
pub trait Keys: Send + Sync {
    /// DescribeKey: the key's ARN and who manages it.
    fn key(&self, key_id: &str) -> impl Future<Output = Result<KmsKey, CloudError>> + Send;

    /// GetKeyPolicy: the key policy (a key has one, named `default`).
    fn key_policy(&self, key_id: &str) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// ListGrants: every grant of the key.
    fn grants(&self, key_id: &str) -> impl Future<Output = Result<Vec<KeyGrant>, CloudError>> + Send;
}

/// A route of the subnet's route table (its own, else the VPC's main one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub destination: String,
    /// `igw-...`, `nat-...`, `tgw-...`, `eni-...`, `pcx-...`, `local`, ...
    pub target: String,
}

/// Whether the caller may make an EC2 call, as a DryRun tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum Permission {
    Allowed,
    Denied {
        message: String,
    },
    /// The call failed otherwise: not a permission answer.
    Unknown {
        message: String,
    },
}

/// The EC2 reads preflight makes besides the core's [`Describe`](lifeboat_core::ports::Describe).
pub trait NodeNetwork: Send + Sync {
    fn instance_extras(&self, instance_id: &str) -> impl Future<Output = Result<InstanceExtras, CloudError>> + Send;

    fn spot_request(&self, request_id: &str) -> impl Future<Output = Result<Option<SpotRequest>, CloudError>> + Send;

    /// The Elastic IP associated with this interface, if any.
    fn elastic_ip(&self, interface_id: &str) -> impl Future<Output = Result<Option<String>, CloudError>> + Send;

    fn routes(&self, subnet_id: &str, vpc_id: &str) -> impl Future<Output = Result<Vec<Route>, CloudError>> + Send;

    /// The service names of the VPC's interface endpoints that are available.
    fn vpc_endpoints(&self, vpc_id: &str) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;

    fn volume_crypto(&self, ids: &[String]) -> impl Future<Output = Result<Vec<VolumeCrypto>, CloudError>> + Send;

    /// A DryRun of one read-only EC2 call preflight makes.
    fn dry_run(&self, operation: &'static str) -> impl Future<Output = Permission> + Send;
}

/// Runs preflight's read-only script on the node and returns its output.
pub trait Probe: Send + Sync {
    fn is_online(&self, instance_id: &str) -> impl Future<Output = Result<bool, CloudError>> + Send;

    /// Sends the script and waits (at most `timeout_seconds`) for its result.
    fn run(&self, instance_id: &str, timeout_seconds: u64) -> impl Future<Output = Result<String, CloudError>> + Send;

    /// Sends the stack's repair document with `--dry-run` and waits (at most
    /// `timeout_seconds`) for it to end: its output, whether the repair
    /// exited 0 or not (its last line, the result, says how it ended).
    fn repair_dry_run(
        &self,
        instance_id: &str,
        document: &str,
        timeout_seconds: u64,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
}

/// What `lifeboat status` and `lifeboat interrupt` read of the nodes.
pub trait Nodes: Send + Sync {
    fn instances(&self, node_tag: &str) -> impl Future<Output = Result<Vec<Instance>, CloudError>> + Send;

    /// Every image this account owns carrying the node tag.
    fn images(&self, node_tag: &str) -> impl Future<Output = Result<Vec<Image>, CloudError>> + Send;
}

/// EC2 GetConsoleOutput: what the instance printed to its serial console.
pub trait Consoles: Send + Sync {
    /// The console output, decoded (`None` when EC2 has none yet).
    fn console_output(&self, instance_id: &str) -> impl Future<Output = Result<Option<String>, CloudError>> + Send;
}

/// Following a relaunch through AWS.
pub trait Recovery: Send + Sync {
    /// The instance tagged `lifeboat:replaces=<old>`, newest first.
    fn replacement(&self, old: &str) -> impl Future<Output = Result<Option<Instance>, CloudError>> + Send;

    fn instance(&self, id: &str) -> impl Future<Output = Result<Option<Instance>, CloudError>> + Send;

    /// The newest root-volume replacement task of the instance.
    fn root_task(&self, instance_id: &str) -> impl Future<Output = Result<Option<RootTaskState>, CloudError>> + Send;

    /// The state of the newest command with this comment on the instance.
    fn command(
        &self,
        instance_id: &str,
        comment: &str,
    ) -> impl Future<Output = Result<Option<CommandState>, CloudError>> + Send;
}
