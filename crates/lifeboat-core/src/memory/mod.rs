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
mod ssm;
mod tag_audit;

use crate::model::{
    Attachment, CloudError, ErrorKind, Image, Instance, InstanceState, NetworkInterface, RootTask, RootTaskState,
    Snapshot, StateReason, Tags, Volume, VolumeState,
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

    /// Applies what is due.
    fn advance(&mut self) {
        let now = Instant::now();
        let mut due: Vec<(Instant, Due)> = Vec::new();
        self.due.retain(|d| {
            if d.0 <= now {
                due.push(d.clone());
                false
            } else {
                true
            }
        });
        due.sort_by_key(|d| d.0);
        for (at, what) in due {
            match what {
                Due::State(id, state) => self.transition(&id, state, at),
                Due::FailLaunch(id) => self.fail_launch(&id, at),
                Due::TaskDone(task) => self.finish_task(&task, at),
                Due::VolumeReady(id) => {
                    if let Some(v) = self.volumes.get_mut(&id).filter(|v| v.state == VolumeState::Creating) {
                        v.state = VolumeState::Available;
                    }
                }
                Due::Release(ids) => {
                    for id in ids {
                        if let Some(nic) = self.interfaces.get_mut(&id).filter(|n| n.attached_to.is_none()) {
                            nic.eni.status = "available".into();
                        }
                        if let Some(v) = self.volumes.get_mut(&id).filter(|v| v.attached_to.is_none()) {
                            v.state = VolumeState::Available;
                        }
                    }
                }
            }
        }
        self.releasing_ips.retain(|(_, until)| *until > now);
    }

    fn transition(&mut self, id: &str, state: InstanceState, at: Instant) {
        let Some(machine) = self.instances.get_mut(id) else { return };
        if machine.instance.state == InstanceState::Terminated {
            return;
        }
        machine.instance.state = state;
        match state {
            InstanceState::Running if !self.agents_offline => machine.online_at = Some(at + delays::AGENT),
            InstanceState::Terminated => self.terminated(id, at),
            InstanceState::Stopped => machine.online_at = None,
            _ => {}
        }
    }

    /// What EC2 does at a termination: deletes what is deleted on
    /// termination, detaches the rest (released a few seconds later), and
    /// describes the instance without its network, volumes and profile.
    fn terminated(&mut self, id: &str, at: Instant) {
        let machine = self.instances.get_mut(id).expect("terminating a known instance");
        machine.terminated_at = Some(at);
        machine.online_at = None;
        let instance = &mut machine.instance;
        instance.private_ip = None;
        instance.public_ip = None;
        instance.subnet_id = None;
        instance.security_group_ids.clear();
        instance.instance_profile_arn = None;
        let attachment = instance.primary_interface.take();
        let volumes = std::mem::take(&mut instance.volumes);
        let mut released = Vec::new();
        if let Some(attachment) = attachment {
            let keep = self.interfaces.get(&attachment.interface_id).is_some_and(|n| !n.delete_on_termination);
            if keep {
                let nic = self.interfaces.get_mut(&attachment.interface_id).unwrap();
                nic.attached_to = None;
                nic.eni.status = "detaching".into();
                released.push(attachment.interface_id);
            } else if let Some(nic) = self.interfaces.remove(&attachment.interface_id) {
                self.releasing_ips.extend(nic.eni.private_ip.map(|ip| (ip, at + delays::RELEASE)));
            }
        }
        for attached in volumes {
            if attached.delete_on_termination {
                self.volumes.remove(&attached.volume_id);
            } else if let Some(volume) = self.volumes.get_mut(&attached.volume_id) {
                volume.attached_to = None;
                released.push(attached.volume_id);
            }
        }
        self.due.push((at + delays::RELEASE, Due::Release(released)));
    }

    /// A launch EC2 ends before the instance runs: `shutting-down` with
    /// the state reason EC2 gives when a volume's KMS key cannot be used
    /// (code `Client.InternalError`, message "Client.InternalError: Client
    /// error on launch": AWS knowledge center, encrypted-volumes-stops-
    /// immediately; API_StateReason.html: "A client error caused the
    /// instance to terminate during launch"), its volumes never made, then
    /// `terminated`.
    fn fail_launch(&mut self, id: &str, at: Instant) {
        let Some(machine) = self.instances.get_mut(id) else { return };
        if machine.instance.state != InstanceState::Pending {
            return;
        }
        machine.instance.state = InstanceState::ShuttingDown;
        machine.instance.state_reason = Some(StateReason {
            code: "Client.InternalError".into(),
            message: "Client.InternalError: Client error on launch".into(),
        });
        for volume in std::mem::take(&mut machine.instance.volumes) {
            self.volumes.remove(&volume.volume_id);
        }
        self.due.push((at + delays::LAUNCH_FAILURE, Due::State(id.to_string(), InstanceState::Terminated)));
    }

    fn finish_task(&mut self, task_id: &str, at: Instant) {
        let Some(index) = self.tasks.iter().position(|t| t.task.id == task_id) else { return };
        let instance_id = self.tasks[index].task.instance_id.clone();
        // A task failing slowly ends as it was going to; the instance
        // reboots on its original root, or, detached, has none to boot.
        match self.tasks[index].task.state {
            RootTaskState::Failing => {
                self.tasks[index].task.state = RootTaskState::Failed;
                let agents_offline = self.agents_offline;
                if let Some(machine) = self.instances.get_mut(&instance_id) {
                    machine.online_at = (!agents_offline).then_some(at + delays::AGENT);
                }
                return;
            }
            RootTaskState::FailingDetached => {
                self.tasks[index].task.state = RootTaskState::FailedDetached;
                return;
            }
            _ => {}
        }
        if let Some(slow) = self.slow_root_failures.pop_front() {
            self.tasks[index].task.state =
                if slow.detached { RootTaskState::FailingDetached } else { RootTaskState::Failing };
            if slow.detached {
                self.detach_root(&instance_id);
            }
            self.due.push((at + slow.failing_for, Due::TaskDone(task_id.to_string())));
            return;
        }
        let new_root = match self.tasks[index].source.clone() {
            RootSource::Volume(id) => Some(id),
            // EC2 restores a new volume from the image's root snapshot.
            RootSource::Image(image_id) => {
                self.images.get(&image_id).and_then(Image::root).map(|r| r.size_gib.unwrap_or(8)).map(|size| {
                    let zone = self.instances.get(&instance_id).and_then(|m| m.instance.availability_zone.clone());
                    let id = self.new_volume(size, Tags::new(), None);
                    let volume = self.volumes.get_mut(&id).unwrap();
                    volume.state = VolumeState::Available;
                    volume.availability_zone = zone.unwrap_or(ZONE.into());
                    id
                })
            }
        };
        let usable =
            new_root.as_ref().is_some_and(|id| self.volumes.get(id).is_some_and(|v| v.state == VolumeState::Available));
        let fail = self.root_tasks_failing > 0 || !usable;
        self.root_tasks_failing = self.root_tasks_failing.saturating_sub(1);
        let new_root = new_root.unwrap_or_default();
        let agents_offline = self.agents_offline;
        let Some(machine) = self.instances.get_mut(&instance_id) else { return };
        // The instance rebooted either way; its agent registers again.
        machine.online_at = (!agents_offline).then_some(at + delays::AGENT);
        if fail {
            self.tasks[index].task.state = RootTaskState::Failed;
            return;
        }
        let instance = &mut machine.instance;
        let root_device = instance.root_device.clone().unwrap_or_default();
        let Some(old) = instance.volumes.iter_mut().find(|v| v.device == root_device) else { return };
        let old_root = std::mem::replace(&mut old.volume_id, new_root.clone());
        // The new root gets the original root's DeleteOnTermination, as AWS
        // documents for the other replacement sources; lifeboat sets it
        // explicitly anyway.
        self.volumes.remove(&old_root);
        if let Some(volume) = self.volumes.get_mut(&new_root) {
            volume.state = VolumeState::InUse;
            volume.attached_to = Some(instance_id);
        }
        self.tasks[index].task.state = RootTaskState::Succeeded;
    }

    /// The instance's root volume is detached and nothing takes its place.
    fn detach_root(&mut self, instance_id: &str) {
        let Some(machine) = self.instances.get_mut(instance_id) else { return };
        let root_device = machine.instance.root_device.clone().unwrap_or_default();
        let Some(at) = machine.instance.volumes.iter().position(|v| v.device == root_device) else { return };
        let root = machine.instance.volumes.remove(at);
        machine.online_at = None;
        if let Some(volume) = self.volumes.get_mut(&root.volume_id) {
            volume.attached_to = None;
            volume.state = VolumeState::Available;
        }
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
