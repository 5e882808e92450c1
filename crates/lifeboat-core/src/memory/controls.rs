//! What tests do to the in-memory cloud, and what they read back: seeding
//! nodes and images, making AWS late, slow or unwilling, and the state it
//! ends in.

use super::{Due, Machine, MemoryCloud, Notification, Refusal, SentCommand, SlowFailure, error, stamp, tags};
use crate::model::{
    AttachedVolume, ErrorKind, Image, ImageDevice, ImageState, Instance, InstanceState, RootTask, Snapshot,
    SnapshotState, Tags, Volume,
};
use crate::ports::{CommandState, Market};
use chrono::{DateTime, Utc};
use std::time::Duration;
use tokio::time::Instant;

impl MemoryCloud {
    /// Adds an instance and returns its id.
    pub fn add_instance(&self, state: InstanceState, tag_pairs: &[(&str, &str)]) -> String {
        let mut s = self.lock();
        let id = s.id("i");
        let instance =
            Instance { id: id.clone(), state, launch_time: stamp(), tags: tags(tag_pairs), ..Instance::default() };
        s.instances.insert(
            id.clone(),
            Machine {
                launched_at: Instant::now(),
                instance,
                user_data: String::new(),
                client_token: None,
                online_at: None,
                terminated_at: None,
            },
        );
        id
    }

    /// A running spot node as a person launches one: in subnet-a with a
    /// primary interface and an 8 GiB root volume that are deleted on
    /// termination (EC2's defaults), an instance profile, the SSM agent
    /// online. Returns the instance id.
    pub fn add_node(&self, node: &str) -> String {
        let mut s = self.lock();
        let id = s.id("i");
        let mut instance = Instance {
            id: id.clone(),
            state: InstanceState::Running,
            launch_time: stamp(),
            tags: tags(&[("lifeboat:node", node), ("Name", node), ("team", "platform")]),
            instance_type: "m6i.large".into(),
            image_id: Some("ami-0base".into()),
            key_name: Some("ops".into()),
            instance_profile_arn: Some("arn:aws:iam::123456789012:instance-profile/k8s-node".into()),
            http_tokens: Some("required".into()),
            http_put_response_hop_limit: Some(2),
            root_device: Some("/dev/xvda".into()),
            spot: true,
            ..Instance::default()
        };
        let attachment = s.new_interface(&id, "subnet-a", None);
        s.attach_interface(&mut instance, attachment, vec!["sg-cluster".into()]);
        let root = s.new_volume(8, Tags::new(), Some(&id));
        instance.volumes.push(AttachedVolume {
            device: "/dev/xvda".into(),
            volume_id: root,
            delete_on_termination: true,
        });
        let online_at = Some(Instant::now());
        s.instances.insert(
            id.clone(),
            Machine {
                launched_at: Instant::now(),
                instance,
                user_data: String::new(),
                client_token: None,
                online_at,
                terminated_at: None,
            },
        );
        id
    }

    /// Attaches a new data volume to the instance at `device` (deleted on
    /// termination, as volumes of a launch mapping are by default); returns it.
    pub fn add_data_volume(&self, instance_id: &str, device: &str) -> String {
        let mut s = self.lock();
        let id = s.new_volume(20, Tags::new(), Some(instance_id));
        let machine = s.instances.get_mut(instance_id).expect("a known instance");
        machine.instance.volumes.push(AttachedVolume {
            device: device.into(),
            volume_id: id.clone(),
            delete_on_termination: true,
        });
        id
    }

    /// Changes a volume as something outside lifeboat would (moved, made
    /// unencrypted, deleted by a person).
    pub fn edit_volume(&self, volume_id: &str, edit: impl FnOnce(&mut Volume)) {
        if let Some(volume) = self.lock().volumes.get_mut(volume_id) {
            edit(volume);
        }
    }

    pub fn delete_volume_now(&self, volume_id: &str) {
        self.lock().volumes.remove(volume_id);
    }

    /// An instance that is running again (a drill clone whose terminate
    /// never happened, say).
    pub fn revive(&self, instance_id: &str) {
        let mut s = self.lock();
        s.due.retain(|(_, d)| !matches!(d, Due::State(id, InstanceState::Terminated) if id == instance_id));
        if let Some(machine) = s.instances.get_mut(instance_id) {
            machine.instance.state = InstanceState::Running;
            machine.terminated_at = None;
        }
    }

    /// The tags of a network interface.
    pub fn interface_tags(&self, interface_id: &str) -> Option<Tags> {
        self.lock().interfaces.get(interface_id).map(|n| n.tags.clone())
    }

    /// Gives the instance a public (say, Elastic) address.
    pub fn set_public_ip(&self, instance_id: &str, ip: &str) {
        if let Some(m) = self.lock().instances.get_mut(instance_id) {
            m.instance.public_ip = Some(ip.to_string());
        }
    }

    /// Tags a resource as CreateTags would (a test's marker, say).
    pub fn set_tag(&self, resource_id: &str, key: &str, value: &str) {
        let mut s = self.lock();
        let (k, v) = (key.to_string(), value.to_string());
        if let Some(m) = s.instances.get_mut(resource_id) {
            m.instance.tags.insert(k.clone(), v.clone());
        }
        if let Some(volume) = s.volumes.get_mut(resource_id) {
            volume.tags.insert(k.clone(), v.clone());
        }
        if let Some(image) = s.images.get_mut(resource_id) {
            image.tags.insert(k, v);
        }
    }

    /// EC2 reclaims the instance after `delay` (from now, on tokio's clock).
    pub fn terminate_in(&self, instance_id: &str, delay: Duration) {
        self.lock().later(delay, Due::State(instance_id.to_string(), InstanceState::Terminated));
    }

    /// EC2 stops the instance after `delay`, keeping its volumes and interface.
    pub fn stop_in(&self, instance_id: &str, delay: Duration) {
        self.lock().later(delay, Due::State(instance_id.to_string(), InstanceState::Stopped));
    }

    /// RunInstances of this type (or any) in this market (or any) fails with `code`.
    pub fn refuse_capacity(&self, instance_type: Option<&str>, market: Option<Market>, code: &str) {
        self.lock().refusals.push(Refusal {
            instance_type: instance_type.map(str::to_string),
            market,
            code: code.into(),
        });
    }

    /// Instances launched (or rebooted) from now on never register with SSM.
    pub fn agents_never_online(&self) {
        self.lock().agents_offline = true;
    }

    /// Volumes created from now on are encrypted (EBS encryption by default).
    pub fn encrypt_new_volumes(&self) {
        self.lock().encrypt_new_volumes = true;
    }

    pub fn clear_refusals(&self) {
        self.lock().refusals.clear();
    }

    /// Root-volume replacement tasks end `failed`, the original root kept.
    pub fn fail_root_tasks(&self) {
        self.fail_next_root_tasks(usize::MAX);
    }

    /// The next `count` root-volume replacement tasks end `failed`.
    pub fn fail_next_root_tasks(&self, count: usize) {
        self.lock().root_tasks_failing = count;
    }

    /// The next root-volume replacement task fails as AWS documents a task
    /// failing (API_ReplaceRootVolumeTask.html, `taskState`): `failing` for
    /// `failing_for`, then `failed`, the original root still attached; or,
    /// `detached`, `failing-detached` (the original root detached at once)
    /// then `failed-detached`, the instance left without a root volume.
    pub fn fail_next_root_task_slowly(&self, detached: bool, failing_for: Duration) {
        self.lock().slow_root_failures.push_back(SlowFailure { detached, failing_for });
    }

    /// From now on EC2 ends every spot launch before it runs, with the state
    /// reason `Client.InternalError`, as it does when the volumes use a
    /// customer managed KMS key that AWSServiceRoleForEC2Spot may not use
    /// (EC2 user guide, service-linked-roles-spot-instance-requests.html,
    /// "Grant access to customer managed keys for use with encrypted AMIs
    /// and EBS snapshots"). On-demand launches run.
    pub fn fail_spot_launches(&self) {
        self.lock().spot_launches_fail = true;
    }

    /// Commands run this long (past their executionTimeout, they time out).
    pub fn slow_commands(&self, duration: Duration) {
        self.lock().command_duration = Some(duration);
    }

    /// Tag filters miss instances launched less than `lag` ago.
    pub fn lag_tag_filters(&self, lag: Duration) {
        self.lock().tag_filter_lag = lag;
    }

    /// The next commands end in these states (then Success).
    pub fn command_results(&self, results: Vec<CommandState>) {
        self.lock().command_results.extend(results);
    }

    /// The next `count` calls of `operation` fail with `code`.
    pub fn fail_next(&self, operation: &str, kind: ErrorKind, code: &str, count: usize) {
        let mut s = self.lock();
        let queue = s.faults.entry(operation.to_string()).or_default();
        for _ in 0..count {
            queue.push_back(error(operation, kind, code, "injected by MemoryCloud"));
        }
    }

    /// Every pending image becomes available, as AWS finishes them.
    pub fn finish_images(&self) {
        for image in self.lock().images.values_mut().filter(|i| i.state == ImageState::Pending) {
            image.state = ImageState::Available;
        }
    }

    pub fn set_image_state(&self, image_id: &str, state: ImageState) {
        if let Some(image) = self.lock().images.get_mut(image_id) {
            image.state = state;
        }
    }

    pub fn keep_snapshots_on_deregister(&self, keep: bool) {
        self.lock().keep_snapshots_on_deregister = keep;
    }

    /// Adds an image with one completed root snapshot carrying the same
    /// tags; returns (image id, snapshot id).
    pub fn add_image(
        &self,
        name: &str,
        state: ImageState,
        created: Option<DateTime<Utc>>,
        tag_pairs: &[(&str, &str)],
    ) -> (String, String) {
        let mut s = self.lock();
        let id = s.id("ami");
        let snapshot = s.id("snap");
        let tags = tags(tag_pairs);
        s.snapshots.insert(
            snapshot.clone(),
            Snapshot { id: snapshot.clone(), state: SnapshotState::Completed, start_time: created, tags: tags.clone() },
        );
        let root = ImageDevice {
            device: "/dev/xvda".into(),
            snapshot_id: Some(snapshot.clone()),
            size_gib: Some(8),
            delete_on_termination: true,
        };
        s.images.insert(
            id.clone(),
            Image {
                id: id.clone(),
                name: name.to_string(),
                state,
                creation_date: created,
                root_device: Some("/dev/xvda".into()),
                devices: vec![root],
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
        let mut s = self.lock();
        let id = s.id("snap");
        s.snapshots.insert(id.clone(), Snapshot { id: id.clone(), state, start_time: started, tags: tags(tag_pairs) });
        id
    }

    /// Every instance EC2 still describes, as it describes them.
    pub fn instances(&self) -> Vec<Instance> {
        let s = self.lock();
        s.instances.keys().filter_map(|id| s.described(id)).collect()
    }

    pub fn instance(&self, id: &str) -> Option<Instance> {
        self.lock().described(id)
    }

    /// The user data an instance was launched with.
    pub fn user_data(&self, instance_id: &str) -> Option<String> {
        self.lock().instances.get(instance_id).map(|m| m.user_data.clone())
    }

    pub fn volumes(&self) -> Vec<Volume> {
        self.lock().volumes.values().cloned().collect()
    }

    pub fn images(&self) -> Vec<Image> {
        self.lock().images.values().cloned().collect()
    }

    pub fn snapshots(&self) -> Vec<Snapshot> {
        self.lock().snapshots.values().cloned().collect()
    }

    pub fn root_tasks_of(&self, instance_id: &str) -> Vec<RootTask> {
        self.lock().tasks.iter().filter(|t| t.task.instance_id == instance_id).map(|t| t.task.clone()).collect()
    }

    /// Every command sent, in order.
    pub fn commands(&self) -> Vec<SentCommand> {
        self.lock()
            .commands
            .iter()
            .map(|c| SentCommand {
                instance_id: c.instance_id.clone(),
                comment: c.comment.clone(),
                script: c.script,
                args: c.args.clone(),
            })
            .collect()
    }

    pub fn notifications(&self) -> Vec<Notification> {
        self.lock().notifications.clone()
    }

    /// Every call made so far, as `Operation` names.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }
}
