//! Giving the replacement the old instance's disks: its data volumes
//! attached at their device names, then its root swapped in with a
//! root-volume replacement task; then preparing the replacement for the
//! next interruption. Each part checks what AWS shows first, so a retry
//! after a crash between any two calls does each thing once.

use super::failure::Failure;
use super::report::Source;
use super::wait::wait_for;
use super::{Dead, Flow, RelaunchCloud};
use crate::model::{Instance, InstanceState, RootTask, RootTaskState, VolumeState};
use crate::node::NodeName;
use crate::ports::Ssm;
use crate::{prepare, tags};

impl<E: RelaunchCloud, S: Ssm> Flow<'_, E, S> {
    /// Waits for the instance to run.
    pub(super) async fn wait_running(&mut self, instance_id: &str) -> Result<Instance, Failure> {
        let running = wait_for("the instance to run", self.timing.running, &self.timing, self.deadline, || async {
            Ok(match self.ec2.instance(instance_id).await? {
                Some(i) if i.state == InstanceState::Running => Some(Ok(i)),
                Some(i) if i.state.is_gone() => {
                    Some(Err(Failure::InstanceGone { instance: i.id, state: i.state.to_string() }))
                }
                _ => None,
            })
        })
        .await??;
        self.step("running", format!("{} running with {}", running.id, running.private_ip.as_deref().unwrap_or("?")));
        self.record_running(&running);
        Ok(running)
    }

    /// The old disks (when the state chosen is theirs), then the
    /// preparation of the replacement.
    pub(super) async fn restore_disks(&mut self, dead: &Dead, replacement: Instance) -> Result<(), Failure> {
        let source = replacement.tags.get(tags::STATE_SOURCE).and_then(|s| Source::parse(s));
        if let (Some(Source::OldVolumes), Some(root)) = (source, replacement.tags.get(tags::ROOT_VOLUME).cloned()) {
            self.attach_data_volumes(dead, &replacement).await?;
            if let Err(reason) = self.swap_root(&replacement, &root).await? {
                self.fall_back_to_image(&replacement, reason).await?;
            }
        }
        let node = dead.node.clone();
        self.prepare_replacement(&replacement.id, &node).await
    }

    /// Attaches the old instance's data volumes that are not attached yet.
    async fn attach_data_volumes(&mut self, dead: &Dead, replacement: &Instance) -> Result<(), Failure> {
        let mut preserved = Vec::new();
        for owner in dead.volume_owners() {
            preserved.extend(self.volumes_of(dead, &owner).await?);
        }
        let data = preserved.into_iter().filter(|v| v.tags.get(tags::VOLUME_ROLE).map(String::as_str) == Some("data"));
        for volume in data {
            let Some(device) = volume.tags.get(tags::DEVICE) else { continue };
            match (volume.state, volume.attached_to.as_deref()) {
                (_, Some(id)) if id == replacement.id => continue,
                (VolumeState::Available, None) => {
                    self.ec2.attach_volume(&volume.id, &replacement.id, device).await?;
                    self.step("data-attached", format!("{} at {device}", volume.id));
                }
                (state, attached) => {
                    self.step(
                        "data-skipped",
                        format!("{} is {state:?} on {}", volume.id, attached.unwrap_or("nothing")),
                    );
                }
            }
        }
        Ok(())
    }

    /// Swaps the preserved root in: `Ok(Err(reason))` when it cannot be (the
    /// replacement then keeps the image's root).
    async fn swap_root(&mut self, replacement: &Instance, root: &str) -> Result<Result<(), String>, Failure> {
        if replacement.root_volume().is_some_and(|v| v.volume_id == root) {
            self.step("root-swapped", format!("{root} is the root of {} already", replacement.id));
            return Ok(Ok(()));
        }
        let tasks = self.ec2.root_tasks(&replacement.id).await?;
        let task = match tasks.into_iter().max_by_key(|t| t.start_time) {
            Some(task) if !task.state.is_done() || task.state == RootTaskState::Succeeded => task.id,
            Some(task) => return Ok(Err(format!("root-volume replacement task {} is {:?}", task.id, task.state))),
            None => {
                if let Err(reason) = self.can_swap(replacement, root).await? {
                    return Ok(Err(reason));
                }
                let token = format!("root-{}", replacement.id);
                let task = self.ec2.replace_root_volume(&replacement.id, root, &token).await?;
                self.step("root-swap-started", format!("task {task}: {root} replaces the image's root"));
                task
            }
        };
        let done = self.wait_root_task(&replacement.id, &task).await?;
        Ok(match done.state {
            RootTaskState::Succeeded => {
                self.step("root-swapped", format!("{root} is the root of {} (task {task})", replacement.id));
                Ok(())
            }
            state => Err(format!("root-volume replacement task {task} ended {state:?}")),
        })
    }

    /// What CreateReplaceRootVolumeTask requires of the volume that EC2
    /// checks only when the task runs: encrypted if the current root is.
    async fn can_swap(&self, replacement: &Instance, root: &str) -> Result<Result<(), String>, Failure> {
        let mut ids = vec![root.to_string()];
        ids.extend(replacement.root_volume().map(|v| v.volume_id.clone()));
        let volumes = self.ec2.volumes_by_id(&ids).await?;
        let find = |id: &str| volumes.iter().find(|v| v.id == id);
        let Some(old_root) = find(root) else { return Ok(Err(format!("volume {root} is gone"))) };
        let current = replacement.root_volume().and_then(|v| find(&v.volume_id));
        if current.is_some_and(|c| c.encrypted) && !old_root.encrypted {
            return Ok(Err(format!("volume {root} is not encrypted and the image's root is: EC2 refuses the swap")));
        }
        Ok(Ok(()))
    }

    pub(super) async fn wait_root_task(&mut self, instance_id: &str, task_id: &str) -> Result<RootTask, Failure> {
        wait_for("the root volume to be replaced", self.timing.root_swap, &self.timing, self.deadline, || async {
            let tasks = self.ec2.root_tasks(instance_id).await?;
            Ok(tasks.into_iter().find(|t| t.id == task_id && t.state.is_done()))
        })
        .await
    }

    /// The old root could not be swapped in: the replacement keeps the
    /// image's root, and says so (also to a later retry).
    async fn fall_back_to_image(&mut self, replacement: &Instance, reason: String) -> Result<(), Failure> {
        self.step("root-not-swapped", reason.clone());
        let source = tags::STATE_SOURCE.to_string();
        let backup = crate::model::Tags::from([(source, Source::Backup.as_str().to_string())]);
        self.ec2.tag(std::slice::from_ref(&replacement.id), &backup).await?;
        if let Some(state) = self.report.state.as_mut() {
            state.source = Source::Backup;
            state.fallback = Some(reason);
            state.volumes.clear();
        }
        Ok(())
    }

    /// The replacement keeps its interface and disks on termination, and its
    /// volumes name it: the next interruption finds them.
    async fn prepare_replacement(&mut self, instance_id: &str, node: &NodeName) -> Result<(), Failure> {
        let instance = self
            .ec2
            .instance(instance_id)
            .await?
            .ok_or(Failure::InstanceGone { instance: instance_id.to_string(), state: "unknown".into() })?;
        let volumes = self.ec2.volumes_attached_to(std::slice::from_ref(&instance.id)).await?;
        let plan = prepare::plan(&instance, &self.config.node_tag, node, &volumes);
        let preparation = prepare::execute(self.ec2, &plan, &self.config.node_tag, node, false).await;
        self.step("prepared", format!("{} volumes {:?}", plan.volumes.len(), preparation.volumes.outcome));
        let failed = preparation.error().map(str::to_string);
        self.report.preparation = Some(preparation);
        match failed {
            Some(error) => Err(Failure::Preparation { instance: instance_id.to_string(), error }),
            None => Ok(()),
        }
    }
}
