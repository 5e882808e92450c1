//! An in-memory EC2 and SSM that behave as lifeboat relies on AWS behaving,
//! as strictly as the emulator in tests/emulator (whose patches cite the AWS
//! documentation): unique AMI names and images `pending` until told
//! otherwise; snapshots in use while an image (even a disabled one) uses
//! them; interfaces and volumes kept on termination as their
//! DeleteOnTermination says, and released a few seconds after it; a
//! terminated instance described without its network, volumes and instance
//! profile, and forgotten after an hour; ClientTokens bound to their launch;
//! launches that take time to boot and to register with SSM; root-volume
//! replacement tasks that reboot the instance; commands that are not visible
//! for a moment and time out. Every call goes through one funnel that
//! records it, applies what is due on tokio's clock (flow tests run on a
//! paused clock) and answers injected faults.
//!
//! Test support: built only with the `memory` feature, never in a Lambda.

mod controls;
mod ec2;
mod launch;
mod lifecycle;
mod ssm;
mod tag_audit;

use crate::model::{
    Attachment, CloudError, ErrorKind, Image, Instance, InstanceState, NetworkInterface, RootTask, Snapshot, Tags,
    Volume, VolumeState,
};
use crate::ports::{CommandState, Market, RootSource, Script};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// How long AWS takes for what takes it time.
pub mod delays {
    use std::time::Duration;
    /// RunInstances to `running`.
    pub const BOOT: Duration = Duration::from_secs(20);
    /// `running` (or the end of a reboot) to the SSM agent Online.
    pub const AGENT: Duration = Duration::from_secs(40);
    /// SendCommand to its result.
    pub const COMMAND: Duration = Duration::from_secs(30);
    /// SendCommand to GetCommandInvocation knowing it.
    pub const INVOCATION_VISIBLE: Duration = Duration::from_secs(1);
    /// A root-volume replacement task, reboot included.
    pub const ROOT_TASK: Duration = Duration::from_secs(30);
    /// CreateVolume to `available`.
    pub const VOLUME: Duration = Duration::from_secs(5);
    /// Termination to a kept interface and volumes being `available`, and
    /// to a deleted interface's address being free.
    pub const RELEASE: Duration = Duration::from_secs(5);
    /// Termination to EC2 no longer describing the instance.
    pub const FORGET: Duration = Duration::from_secs(3600);
    /// RunInstances to `shutting-down`, for a launch EC2 ends; then to
    /// `terminated`.
    pub const LAUNCH_FAILURE: Duration = Duration::from_secs(2);
}

pub const ZONE: &str = "eu-west-1a";
/// The one VPC of every subnet (its interfaces get 10.0.1.x).
pub const VPC_BLOCK: &str = "10.0.0.0/16";

#[derive(Debug, Default)]
pub struct MemoryCloud {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    instances: BTreeMap<String, Machine>,
    volumes: BTreeMap<String, Volume>,
    interfaces: BTreeMap<String, Nic>,
    images: BTreeMap<String, Image>,
    snapshots: BTreeMap<String, Snapshot>,
    tasks: Vec<Task>,
    commands: Vec<Command>,
    notifications: Vec<Notification>,
    /// RunInstances' ClientTokens: the instance each made, and the request.
    tokens: BTreeMap<String, (String, String)>,
    /// CreateVolume's ClientTokens: the volume each made.
    volume_tokens: BTreeMap<String, String>,
    refusals: Vec<Refusal>,
    /// Errors to answer the next calls of an operation with, in order.
    faults: BTreeMap<String, VecDeque<CloudError>>,
    calls: Vec<String>,
    /// Addresses of interfaces deleted by a termination, in use until then.
    releasing_ips: Vec<(String, Instant)>,
    due: Vec<(Instant, Due)>,
    /// Instances launched from now on never register with SSM.
    agents_offline: bool,
    /// This many of the next root-volume replacement tasks end `failed`
    /// (say, a KMS key the role cannot use).
    root_tasks_failing: usize,
    /// How the next root-volume replacement tasks fail slowly, before the
    /// count above applies.
    slow_root_failures: VecDeque<SlowFailure>,
    /// Spot launches are ended by EC2 before they run.
    spot_launches_fail: bool,
    encrypt_new_volumes: bool,
    /// DeregisterImage leaves the snapshots behind even when asked to delete
    /// them (as AWS does when the caller may not DeleteSnapshot).
    keep_snapshots_on_deregister: bool,
    command_results: VecDeque<CommandState>,
    /// How long commands run (default delays::COMMAND).
    command_duration: Option<Duration>,
    /// Tag filters do not show instances launched less than this ago
    /// (DescribeInstances by tag is eventually consistent).
    tag_filter_lag: Duration,
    next_id: u64,
    next_ip: u8,
}

/// An instance and what EC2 keeps about it beyond its description.
#[derive(Debug)]
struct Machine {
    launched_at: Instant,
    instance: Instance,
    user_data: String,
    client_token: Option<String>,
    online_at: Option<Instant>,
    terminated_at: Option<Instant>,
}

#[derive(Debug)]
struct Nic {
    eni: NetworkInterface,
    tags: Tags,
    delete_on_termination: bool,
    attached_to: Option<String>,
}

#[derive(Debug)]
struct Task {
    task: RootTask,
    source: RootSource,
    token: String,
}

#[derive(Debug)]
struct Command {
    id: String,
    instance_id: String,
    comment: String,
    script: Script,
    args: Vec<String>,
    sent_at: Instant,
    ready_at: Instant,
    timeout: Duration,
    result: CommandState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub topic_arn: String,
    pub subject: String,
    pub message: String,
}

#[derive(Debug)]
struct Refusal {
    instance_type: Option<String>,
    market: Option<Market>,
    code: String,
}

/// A root-volume replacement task that fails through `failing` (or
/// `failing-detached`, the instance left without a root) for a while.
#[derive(Debug, Clone, Copy)]
struct SlowFailure {
    detached: bool,
    failing_for: Duration,
}

/// Something AWS does later.
#[derive(Debug, Clone)]
enum Due {
    State(String, InstanceState),
    /// EC2 ends the instance during its launch.
    FailLaunch(String),
    TaskDone(String),
    VolumeReady(String),
    Release(Vec<String>),
}

/// (instance, comment, script, arguments) of a command sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCommand {
    pub instance_id: String,
    pub comment: String,
    pub script: Script,
    pub args: Vec<String>,
}

fn stamp() -> Option<DateTime<Utc>> {
    Some(Utc::now())
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn error(operation: &str, kind: ErrorKind, code: &str, message: impl Into<String>) -> CloudError {
    CloudError::new(operation, kind, Some(code), message)
}

fn not_found(operation: &str, code: &str, id: &str) -> CloudError {
    error(operation, ErrorKind::NotFound, code, id)
}

impl State {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{:017x}", self.next_id)
    }

    fn later(&mut self, after: Duration, due: Due) {
        self.due.push((Instant::now() + after, due));
    }

    /// A new volume, attached or not.
    fn new_volume(&mut self, size_gib: i32, tags: Tags, attached_to: Option<&str>) -> String {
        let id = self.id("vol");
        let state = if attached_to.is_some() { VolumeState::InUse } else { VolumeState::Creating };
        self.volumes.insert(
            id.clone(),
            Volume {
                id: id.clone(),
                state,
                availability_zone: ZONE.into(),
                encrypted: self.encrypt_new_volumes,
                size_gib,
                create_time: stamp(),
                attached_to: attached_to.map(str::to_string),
                tags,
            },
        );
        id
    }

    fn new_interface(&mut self, instance_id: &str, subnet_id: &str, ip: Option<String>) -> Attachment {
        let ip = ip.unwrap_or_else(|| {
            self.next_ip += 1;
            format!("10.0.1.{}", 10 + self.next_ip)
        });
        let eni = self.id("eni");
        self.interfaces.insert(
            eni.clone(),
            Nic {
                eni: NetworkInterface {
                    id: eni.clone(),
                    status: "in-use".into(),
                    subnet_id: subnet_id.into(),
                    availability_zone: Some(ZONE.into()),
                    private_ip: Some(ip),
                },
                delete_on_termination: true,
                attached_to: Some(instance_id.to_string()),
                tags: Tags::new(),
            },
        );
        Attachment { interface_id: eni.clone(), attachment_id: format!("{eni}-attach"), delete_on_termination: true }
    }

    fn attach_interface(&mut self, instance: &mut Instance, attachment: Attachment, groups: Vec<String>) {
        let nic = self.interfaces.get_mut(&attachment.interface_id).expect("the interface exists");
        nic.attached_to = Some(instance.id.clone());
        nic.eni.status = "in-use".into();
        instance.subnet_id = Some(nic.eni.subnet_id.clone());
        instance.private_ip = nic.eni.private_ip.clone();
        instance.availability_zone = nic.eni.availability_zone.clone();
        instance.security_group_ids = groups;
        instance.primary_interface =
            Some(Attachment { delete_on_termination: nic.delete_on_termination, ..attachment });
    }

    /// The instance as DescribeInstances shows it, if it still does.
    fn described(&self, id: &str) -> Option<Instance> {
        let machine = self.instances.get(id)?;
        match machine.terminated_at {
            Some(at) if Instant::now() >= at + delays::FORGET => None,
            _ => Some(machine.instance.clone()),
        }
    }

    fn online(&self, id: &str) -> bool {
        self.instances.get(id).is_some_and(|m| {
            m.instance.state == InstanceState::Running && m.online_at.is_some_and(|at| at <= Instant::now())
        })
    }
}

impl MemoryCloud {
    pub fn new() -> MemoryCloud {
        MemoryCloud::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        let mut s = self.state.lock().unwrap();
        s.advance();
        s
    }

    /// The funnel every port call goes through: applies what is due,
    /// records the call, answers an injected fault.
    fn call(&self, operation: &str) -> Result<MutexGuard<'_, State>, CloudError> {
        let mut s = self.lock();
        s.calls.push(operation.to_string());
        match s.faults.get_mut(operation).and_then(VecDeque::pop_front) {
            Some(err) => Err(err),
            None => Ok(s),
        }
    }
}
