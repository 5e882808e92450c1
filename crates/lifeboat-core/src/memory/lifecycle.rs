//! What the in-memory EC2 does by itself on tokio's clock: instances that
//! boot, register with SSM, stop and terminate (keeping or deleting their
//! interfaces and volumes), launches that fail, root-volume replacement
//! tasks that end.

use super::{Due, State, ZONE, delays};
use crate::model::{Image, InstanceState, RootTaskState, StateReason, Tags, VolumeState};
use crate::ports::RootSource;
use tokio::time::Instant;

impl State {
    /// Applies what is due.
    pub(super) fn advance(&mut self) {
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
