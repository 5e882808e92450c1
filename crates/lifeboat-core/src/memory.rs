//! An in-memory EC2 and SSM that behave as lifeboat relies on AWS behaving
//! (unique AMI names, images `pending` until told otherwise, snapshots that
//! survive while an image uses them, interfaces kept on termination, launches
//! that take time to boot and to register with SSM, ClientToken idempotency),
//! with recorded calls and injectable failures. Time is tokio's, so flow tests
//! run on a paused clock. For tests and demos; never used in a Lambda.

use crate::model::{
    Attachment, CloudError, Image, ImageState, Instance, InstanceState, NetworkInterface, Snapshot, SnapshotState, Tags,
};
use crate::ports::{CommandState, Ec2, ImageSpec, LaunchRequest, Market, Network, Notifier, Ssm};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Default)]
pub struct MemoryCloud {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    instances: BTreeMap<String, Instance>,
    images: BTreeMap<String, Image>,
    snapshots: BTreeMap<String, Snapshot>,
    next_id: u64,
    calls: Vec<String>,
    /// Errors to answer the next calls of an operation with, in order.
    faults: BTreeMap<String, VecDeque<CloudError>>,
    /// DeregisterImage leaves the snapshots behind even when asked to delete
    /// them (as AWS does when the caller may not DeleteSnapshot).
    keep_snapshots_on_deregister: bool,
    interfaces: BTreeMap<String, Interface>,
    /// Transitions due at a time: (when, instance, new state).
    schedule: Vec<(Instant, String, InstanceState)>,
    /// When each instance's SSM agent reports Online.
    online_at: BTreeMap<String, Instant>,
    /// Instances launched from now on never register with SSM.
    agents_offline: bool,
    client_tokens: BTreeMap<String, String>,
    /// RunInstances refusals: (instance type or any, market or any, error code).
    refusals: Vec<(Option<String>, Option<Market>, String)>,
    commands: Vec<Command>,
    command_results: VecDeque<CommandState>,
    /// (topic, subject, message) of every notification published.
    notifications: Vec<(String, String, String)>,
    next_ip: u8,
}

#[derive(Debug)]
struct Interface {
    eni: NetworkInterface,
    delete_on_termination: bool,
    attached_to: Option<String>,
}

#[derive(Debug)]
struct Command {
    id: String,
    instance_id: String,
    comment: String,
    args: Vec<String>,
    ready_at: Instant,
    result: CommandState,
}

/// How long the in-memory cloud takes for what takes AWS time: RunInstances
/// to `running`, `running` to the SSM agent Online, SendCommand to its result.
const BOOT: Duration = Duration::from_secs(20);
const AGENT: Duration = Duration::from_secs(40);
const COMMAND: Duration = Duration::from_secs(30);

/// The creation time stamped on instances, images and snapshots.
fn stamp() -> Option<DateTime<Utc>> {
    Some(Utc::now())
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl MemoryCloud {
    pub fn new() -> MemoryCloud {
        MemoryCloud::default()
    }

    fn id(s: &mut State, prefix: &str) -> String {
        s.next_id += 1;
        format!("{prefix}-{:017x}", s.next_id)
    }

    /// Adds an instance and returns its id.
    pub fn add_instance(&self, state: InstanceState, tag_pairs: &[(&str, &str)]) -> String {
        let mut s = self.state.lock().unwrap();
        let id = Self::id(&mut s, "i");
        s.instances.insert(
            id.clone(),
            Instance { id: id.clone(), state, launch_time: stamp(), tags: tags(tag_pairs), ..Instance::default() },
        );
        id
    }

    /// A running spot node as a person launches one: in subnet-a with a
    /// primary interface that is deleted on termination (EC2's default), with
    /// the SSM agent online. Returns the instance id.
    pub fn add_node(&self, node: &str) -> String {
        let mut s = self.state.lock().unwrap();
        let id = Self::id(&mut s, "i");
        let network = Network::Address {
            subnet_id: "subnet-a".into(),
            private_ip: None,
            security_group_ids: vec!["sg-cluster".into()],
        };
        let attachment = Self::create_interface(&mut s, &id, &network);
        let mut instance = Instance {
            id: id.clone(),
            state: InstanceState::Running,
            launch_time: stamp(),
            tags: tags(&[("lifeboat:node", node), ("Name", node), ("team", "platform")]),
            instance_type: "m6i.large".into(),
            key_name: Some("ops".into()),
            http_tokens: Some("required".into()),
            spot: true,
            ..Instance::default()
        };
        Self::attach(&mut s, &mut instance, attachment);
        s.online_at.insert(id.clone(), Instant::now());
        s.instances.insert(id.clone(), instance);
        id
    }

    fn create_interface(s: &mut State, instance_id: &str, network: &Network) -> Attachment {
        let (subnet_id, ip) = match network {
            Network::Address { subnet_id, private_ip, .. } => {
                let ip = private_ip.clone().unwrap_or_else(|| {
                    s.next_ip += 1;
                    format!("10.0.1.{}", 10 + s.next_ip)
                });
                (subnet_id.clone(), ip)
            }
            Network::Interface(_) => unreachable!("only new interfaces are created"),
        };
        let eni = Self::id(s, "eni");
        s.interfaces.insert(
            eni.clone(),
            Interface {
                eni: NetworkInterface { id: eni.clone(), status: "in-use".into(), subnet_id, private_ip: Some(ip) },
                delete_on_termination: true,
                attached_to: Some(instance_id.to_string()),
            },
        );
        Attachment { interface_id: eni.clone(), attachment_id: format!("{eni}-attach"), delete_on_termination: true }
    }

    fn attach(s: &mut State, instance: &mut Instance, attachment: Attachment) {
        let interface = s.interfaces.get_mut(&attachment.interface_id).unwrap();
        interface.attached_to = Some(instance.id.clone());
        interface.eni.status = "in-use".into();
        instance.subnet_id = Some(interface.eni.subnet_id.clone());
        instance.private_ip = interface.eni.private_ip.clone();
        instance.security_group_ids = vec!["sg-cluster".into()];
        instance.primary_interface =
            Some(Attachment { delete_on_termination: interface.delete_on_termination, ..attachment });
    }

    /// EC2 reclaims the instance after `delay` (from now, on tokio's clock).
    pub fn terminate_in(&self, instance_id: &str, delay: Duration) {
        let mut s = self.state.lock().unwrap();
        s.schedule.push((Instant::now() + delay, instance_id.to_string(), InstanceState::Terminated));
    }

    /// RunInstances of this type (or any) in this market (or any) fails with `code`.
    pub fn refuse_capacity(&self, instance_type: Option<&str>, market: Option<Market>, code: &str) {
        let mut s = self.state.lock().unwrap();
        s.refusals.push((instance_type.map(str::to_string), market, code.to_string()));
    }

    /// Instances launched from now on never register with SSM.
    pub fn agents_never_online(&self) {
        self.state.lock().unwrap().agents_offline = true;
    }

    /// The next commands end in these states (then Success).
    pub fn command_results(&self, results: Vec<CommandState>) {
        self.state.lock().unwrap().command_results.extend(results);
    }

    pub fn instances(&self) -> Vec<Instance> {
        let mut s = self.state.lock().unwrap();
        Self::advance(&mut s);
        s.instances.values().cloned().collect()
    }

    /// (instance, comment) of every command sent.
    pub fn commands(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().commands.iter().map(|c| (c.instance_id.clone(), c.comment.clone())).collect()
    }

    /// (topic, subject, message) of every notification published.
    pub fn notifications(&self) -> Vec<(String, String, String)> {
        self.state.lock().unwrap().notifications.clone()
    }

    /// The arguments of every command sent, in order.
    pub fn command_args(&self) -> Vec<Vec<String>> {
        self.state.lock().unwrap().commands.iter().map(|c| c.args.clone()).collect()
    }

    /// Applies the transitions that are due.
    fn advance(s: &mut State) {
        let now = Instant::now();
        let mut due: Vec<(Instant, String, InstanceState)> = Vec::new();
        s.schedule.retain(|t| {
            if t.0 <= now {
                due.push(t.clone());
                false
            } else {
                true
            }
        });
        due.sort_by_key(|t| t.0);
        for (at, id, state) in due {
            let Some(instance) = s.instances.get_mut(&id) else { continue };
            if instance.state == InstanceState::Terminated {
                continue;
            }
            instance.state = state;
            match state {
                InstanceState::Running if !s.agents_offline => {
                    s.online_at.insert(id.clone(), at + AGENT);
                }
                InstanceState::Terminated => {
                    s.online_at.remove(&id);
                    // EC2 describes a terminated instance without its network.
                    instance.private_ip = None;
                    instance.security_group_ids.clear();
                    if let Some(attachment) = instance.primary_interface.take() {
                        let keep = s.interfaces.get(&attachment.interface_id).is_some_and(|i| !i.delete_on_termination);
                        if keep {
                            let interface = s.interfaces.get_mut(&attachment.interface_id).unwrap();
                            interface.attached_to = None;
                            interface.eni.status = "available".into();
                        } else {
                            s.interfaces.remove(&attachment.interface_id);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Adds an image with one completed snapshot carrying the same tags;
    /// returns (image id, snapshot id).
    pub fn add_image(
        &self,
        name: &str,
        state: ImageState,
        created: Option<DateTime<Utc>>,
        tag_pairs: &[(&str, &str)],
    ) -> (String, String) {
        let mut s = self.state.lock().unwrap();
        let id = Self::id(&mut s, "ami");
        let snapshot = Self::id(&mut s, "snap");
        let tags = tags(tag_pairs);
        s.snapshots.insert(
            snapshot.clone(),
            Snapshot { id: snapshot.clone(), state: SnapshotState::Completed, start_time: created, tags: tags.clone() },
        );
        s.images.insert(
            id.clone(),
            Image {
                id: id.clone(),
                name: name.to_string(),
                state,
                creation_date: created,
                snapshot_ids: vec![snapshot.clone()],
                tags,
            },
        );
        (id, snapshot)
    }

    /// Adds a snapshot no image uses.
    pub fn add_snapshot(
        &self,
        state: SnapshotState,
        started: Option<DateTime<Utc>>,
        tag_pairs: &[(&str, &str)],
    ) -> String {
        let mut s = self.state.lock().unwrap();
        let id = Self::id(&mut s, "snap");
        s.snapshots.insert(id.clone(), Snapshot { id: id.clone(), state, start_time: started, tags: tags(tag_pairs) });
        id
    }

    /// The next `count` calls of `operation` fail with `code`.
    pub fn fail_next(&self, operation: &str, code: &str, count: usize) {
        let mut s = self.state.lock().unwrap();
        let queue = s.faults.entry(operation.to_string()).or_default();
        for _ in 0..count {
            queue.push_back(CloudError::new(operation, Some(code), "injected by MemoryCloud"));
        }
    }

    /// Every pending image becomes available, as AWS finishes them.
    pub fn finish_images(&self) {
        let mut s = self.state.lock().unwrap();
        for image in s.images.values_mut() {
            if image.state == ImageState::Pending {
                image.state = ImageState::Available;
            }
        }
    }

    pub fn keep_snapshots_on_deregister(&self, keep: bool) {
        self.state.lock().unwrap().keep_snapshots_on_deregister = keep;
    }

    pub fn images(&self) -> Vec<Image> {
        self.state.lock().unwrap().images.values().cloned().collect()
    }

    pub fn snapshots(&self) -> Vec<Snapshot> {
        self.state.lock().unwrap().snapshots.values().cloned().collect()
    }

    /// Every call made so far, as `Operation` names.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    fn call(&self, operation: &str) -> Result<MutexGuard<'_, State>, CloudError> {
        let mut s = self.state.lock().unwrap();
        Self::advance(&mut s);
        s.calls.push(operation.to_string());
        match s.faults.get_mut(operation).and_then(VecDeque::pop_front) {
            Some(err) => Err(err),
            None => Ok(s),
        }
    }
}

impl Ec2 for MemoryCloud {
    async fn instances_with_tag(&self, tag_key: &str) -> Result<Vec<Instance>, CloudError> {
        let s = self.call("DescribeInstances")?;
        Ok(s.instances.values().filter(|i| i.tags.contains_key(tag_key)).cloned().collect())
    }

    async fn create_image(&self, spec: &ImageSpec) -> Result<String, CloudError> {
        let mut s = self.call("CreateImage")?;
        match s.instances.get(&spec.instance_id).map(|i| i.state) {
            None => return Err(CloudError::new("CreateImage", Some("InvalidInstanceID.NotFound"), &spec.instance_id)),
            Some(InstanceState::Running | InstanceState::Stopping | InstanceState::Stopped) => {}
            Some(state) => {
                return Err(CloudError::new("CreateImage", Some("IncorrectState"), format!("instance is {state}")));
            }
        }
        if s.images.values().any(|i| i.name == spec.name) {
            return Err(CloudError::new("CreateImage", Some("InvalidAMIName.Duplicate"), &spec.name));
        }
        let id = Self::id(&mut s, "ami");
        let snapshot = Self::id(&mut s, "snap");
        let now = stamp();
        s.snapshots.insert(
            snapshot.clone(),
            Snapshot { id: snapshot.clone(), state: SnapshotState::Pending, start_time: now, tags: spec.tags.clone() },
        );
        let image = Image {
            id: id.clone(),
            name: spec.name.clone(),
            state: ImageState::Pending,
            creation_date: now,
            snapshot_ids: vec![snapshot],
            tags: spec.tags.iter().chain(&spec.image_tags).map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        s.images.insert(id.clone(), image);
        Ok(id)
    }

    async fn image_named(&self, name: &str) -> Result<Option<Image>, CloudError> {
        let s = self.call("DescribeImages")?;
        Ok(s.images.values().find(|i| i.name == name).cloned())
    }

    async fn own_images(&self) -> Result<Vec<Image>, CloudError> {
        let s = self.call("DescribeImages")?;
        Ok(s.images.values().cloned().collect())
    }

    async fn snapshots_with_tag(&self, tag_key: &str) -> Result<Vec<Snapshot>, CloudError> {
        let s = self.call("DescribeSnapshots")?;
        Ok(s.snapshots.values().filter(|x| x.tags.contains_key(tag_key)).cloned().collect())
    }

    async fn snapshots_by_id(&self, ids: &[String]) -> Result<Vec<Snapshot>, CloudError> {
        let s = self.call("DescribeSnapshots")?;
        Ok(ids.iter().filter_map(|id| s.snapshots.get(id).cloned()).collect())
    }

    async fn deregister_image(&self, image_id: &str, delete_snapshots: bool) -> Result<(), CloudError> {
        let mut s = self.call("DeregisterImage")?;
        let Some(image) = s.images.remove(image_id) else {
            return Err(CloudError::new("DeregisterImage", Some("InvalidAMIID.NotFound"), image_id));
        };
        if delete_snapshots && !s.keep_snapshots_on_deregister {
            for snapshot in image.snapshot_ids {
                if !s.images.values().any(|i| i.snapshot_ids.contains(&snapshot)) {
                    s.snapshots.remove(&snapshot);
                }
            }
        }
        Ok(())
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), CloudError> {
        let mut s = self.call("DeleteSnapshot")?;
        if s.images.values().any(|i| i.snapshot_ids.iter().any(|x| x == snapshot_id)) {
            return Err(CloudError::new("DeleteSnapshot", Some("InvalidSnapshot.InUse"), snapshot_id));
        }
        match s.snapshots.remove(snapshot_id) {
            Some(_) => Ok(()),
            None => Err(CloudError::new("DeleteSnapshot", Some("InvalidSnapshot.NotFound"), snapshot_id)),
        }
    }

    async fn instance(&self, instance_id: &str) -> Result<Option<Instance>, CloudError> {
        let s = self.call("DescribeInstances")?;
        Ok(s.instances.get(instance_id).cloned())
    }

    async fn network_interface(&self, interface_id: &str) -> Result<Option<NetworkInterface>, CloudError> {
        let s = self.call("DescribeNetworkInterfaces")?;
        Ok(s.interfaces.get(interface_id).map(|i| i.eni.clone()))
    }

    async fn keep_interface_on_termination(&self, attachment: &Attachment) -> Result<(), CloudError> {
        let mut s = self.call("ModifyNetworkInterfaceAttribute")?;
        let Some(interface) = s.interfaces.get_mut(&attachment.interface_id) else {
            return Err(CloudError::new(
                "ModifyNetworkInterfaceAttribute",
                Some("InvalidNetworkInterfaceID.NotFound"),
                &attachment.interface_id,
            ));
        };
        interface.delete_on_termination = false;
        if let Some(instance) = interface.attached_to.clone()
            && let Some(primary) = s.instances.get_mut(&instance).and_then(|i| i.primary_interface.as_mut())
        {
            primary.delete_on_termination = false;
        }
        Ok(())
    }

    async fn run_instance(&self, request: &LaunchRequest) -> Result<Instance, CloudError> {
        let mut s = self.call("RunInstances")?;
        let refuse = |code: &str| Err(CloudError::new("RunInstances", Some(code), "refused by MemoryCloud"));
        if let Some(id) = s.client_tokens.get(&request.client_token) {
            return Ok(s.instances[id].clone());
        }
        let refused = s.refusals.iter().find(|(t, m, _)| {
            t.as_ref().is_none_or(|t| *t == request.instance_type) && m.is_none_or(|m| m == request.market)
        });
        if let Some((_, _, code)) = refused {
            return refuse(&code.clone());
        }
        let id = Self::id(&mut s, "i");
        let attachment = match &request.network {
            Network::Interface(eni) => match s.interfaces.get(eni) {
                None => return refuse("InvalidNetworkInterfaceID.NotFound"),
                Some(i) if i.eni.status != "available" => return refuse("InvalidNetworkInterface.InUse"),
                Some(i) => Attachment {
                    interface_id: eni.clone(),
                    attachment_id: format!("{eni}-attach-{id}"),
                    delete_on_termination: i.delete_on_termination,
                },
            },
            Network::Address { private_ip: Some(ip), .. }
                if s.interfaces.values().any(|i| i.eni.private_ip.as_ref() == Some(ip)) =>
            {
                return refuse("InvalidIPAddress.InUse");
            }
            network => Self::create_interface(&mut s, &id, network),
        };
        let mut instance = Instance {
            id: id.clone(),
            state: InstanceState::Pending,
            launch_time: stamp(),
            tags: request.tags.clone(),
            instance_type: request.instance_type.clone(),
            key_name: request.key_name.clone(),
            instance_profile_arn: request.instance_profile_arn.clone(),
            http_tokens: request.http_tokens.clone(),
            http_put_response_hop_limit: request.http_put_response_hop_limit,
            spot: request.market == Market::Spot,
            ..Instance::default()
        };
        Self::attach(&mut s, &mut instance, attachment);
        let boot = Instant::now() + BOOT;
        s.schedule.push((boot, id.clone(), InstanceState::Running));
        s.client_tokens.insert(request.client_token.clone(), id.clone());
        s.instances.insert(id.clone(), instance.clone());
        Ok(instance)
    }

    async fn terminate_instance(&self, instance_id: &str) -> Result<(), CloudError> {
        let mut s = self.call("TerminateInstances")?;
        if !s.instances.contains_key(instance_id) {
            return Err(CloudError::new("TerminateInstances", Some("InvalidInstanceID.NotFound"), instance_id));
        }
        Self::terminate_now(&mut s, instance_id);
        Ok(())
    }
}

impl MemoryCloud {
    fn terminate_now(s: &mut State, instance_id: &str) {
        s.schedule.push((Instant::now(), instance_id.to_string(), InstanceState::Terminated));
        Self::advance(s);
    }
}

impl Ssm for MemoryCloud {
    async fn is_online(&self, instance_id: &str) -> Result<bool, CloudError> {
        let s = self.call("DescribeInstanceInformation")?;
        Ok(s.online_at.get(instance_id).is_some_and(|at| *at <= Instant::now()))
    }

    async fn send_script(
        &self,
        instance_id: &str,
        comment: &str,
        _script: &str,
        args: &[String],
        _timeout_seconds: i32,
    ) -> Result<String, CloudError> {
        let mut s = self.call("SendCommand")?;
        if s.online_at.get(instance_id).is_none_or(|at| *at > Instant::now()) {
            return Err(CloudError::new("SendCommand", Some("InvalidInstanceId"), instance_id));
        }
        let id = Self::id(&mut s, "cmd");
        let result = s
            .command_results
            .pop_front()
            .unwrap_or(CommandState::Success { output: "{\"result\":\"ok\",\"step\":\"verify\"}".into() });
        let ready_at = Instant::now() + COMMAND;
        s.commands.push(Command {
            id: id.clone(),
            instance_id: instance_id.into(),
            comment: comment.into(),
            args: args.to_vec(),
            ready_at,
            result,
        });
        Ok(id)
    }

    async fn command_state(&self, command_id: &str, instance_id: &str) -> Result<CommandState, CloudError> {
        let s = self.call("GetCommandInvocation")?;
        match s.commands.iter().find(|c| c.id == command_id && c.instance_id == instance_id) {
            None => Err(CloudError::new("GetCommandInvocation", Some("InvocationDoesNotExist"), command_id)),
            Some(c) if Instant::now() < c.ready_at => Ok(CommandState::InProgress),
            Some(c) => Ok(c.result.clone()),
        }
    }

    async fn last_command(&self, instance_id: &str, comment: &str) -> Result<Option<String>, CloudError> {
        let s = self.call("ListCommands")?;
        Ok(s.commands.iter().rev().find(|c| c.instance_id == instance_id && c.comment == comment).map(|c| c.id.clone()))
    }
}

impl Notifier for MemoryCloud {
    async fn publish(&self, topic_arn: &str, subject: &str, message: &str) -> Result<(), CloudError> {
        let mut s = self.call("Publish")?;
        s.notifications.push((topic_arn.to_string(), subject.to_string(), message.to_string()));
        Ok(())
    }
}
