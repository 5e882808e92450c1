//! Giving the replacement the old instance's disks: its data volumes
//! attached at their device names, then its root swapped in with a
//! root-volume replacement task; then preparing the replacement for the
//! next interruption. Each part checks what AWS shows first, so a retry
//! after a crash between any two calls does each thing once.

use super::failure::Failure;
use super::report::{Source, StateReport};
use super::wait::wait_for;
use super::{Dead, Flow, RelaunchCloud};
use crate::model::{ErrorKind, Instance, InstanceState, RootTask, RootTaskState, VolumeState};
use crate::node::NodeName;
use crate::ports::{RootSource, Ssm};
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
    /// preparation of the replacement. When the old root cannot be swapped
    /// in, the final image's root is the next best state, then the backup
    /// the replacement booted.
    pub(super) async fn restore_disks(&mut self, dead: &Dead, replacement: Instance) -> Result<(), Failure> {
        let recorded = |key: &str| replacement.tags.get(key).cloned();
        let source = recorded(tags::STATE_SOURCE).and_then(|s| Source::parse(&s));
        match (source, recorded(tags::ROOT_VOLUME), recorded(tags::ROOT_IMAGE)) {
            (Some(Source::OldVolumes), Some(root), _) => {
                self.attach_data_volumes(dead, &replacement).await?;
                if let Err(reason) = self.swap_root(&replacement, &RootSource::Volume(root)).await? {
                    self.step("root-not-swapped", reason.clone());
                    self.swap_final_root(dead, &replacement, reason).await?;
                }
            }
            // A retry after the final image's root was chosen.
            (Some(Source::FinalImage), _, Some(image)) => {
                if let Err(reason) = self.swap_root(&replacement, &RootSource::Image(image)).await? {
                    self.fall_back_to_image(dead, &replacement, reason).await?;
                }
            }
            _ => {}
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

    /// Swaps a root in: `Ok(Err(reason))` when it cannot be (the
    /// replacement then keeps the root it has). The token makes a retry get
    /// the task it started instead of starting another.
    async fn swap_root(&mut self, replacement: &Instance, root: &RootSource) -> Result<Result<(), String>, Failure> {
        if let RootSource::Volume(volume) = root {
            if replacement.root_volume().is_some_and(|v| &v.volume_id == volume) {
                self.step("root-swapped", format!("{volume} is the root of {} already", replacement.id));
                return Ok(Ok(()));
            }
            if let Err(reason) = self.can_swap(replacement, volume).await? {
                return Ok(Err(reason));
            }
        }
        let token = format!("root-{}-{}", replacement.id, root.id());
        let task = match self.ec2.replace_root_volume(&replacement.id, root, &token).await {
            Ok(task) => task,
            Err(e) if e.is(ErrorKind::Other) => return Ok(Err(format!("EC2 refused the swap: {e}"))),
            Err(e) => return Err(e.into()),
        };
        self.step("root-swap-started", format!("task {task}: {} replaces the image's root", root.id()));
        let done = self.wait_root_task(&replacement.id, &task).await?;
        Ok(match done.state {
            RootTaskState::Succeeded => {
                self.step("root-swapped", format!("{} is the root of {} (task {task})", root.id(), replacement.id));
                Ok(())
            }
            state => Err(format!("root-volume replacement task {task} ended {state:?}")),
        })
    }

    /// The old root could not be swapped in: the root of the image made at
    /// the interruption, if it is (or becomes in time) available, replaces
    /// the backup's. Recorded on the replacement first, so a retry goes on
    /// with the same choice.
    async fn swap_final_root(&mut self, dead: &Dead, replacement: &Instance, reason: String) -> Result<(), Failure> {
        let image = match self.final_image(dead, None).await {
            Ok(image) if replacement.tags.get(tags::RESTORED_FROM) != Some(&image.id) => image,
            // It booted the final image already (available at the launch).
            Ok(_) => return self.fall_back_to_image(dead, replacement, reason).await,
            Err(why) => return self.fall_back_to_image(dead, replacement, format!("{reason}; {why}")).await,
        };
        let mut recorded = crate::model::Tags::from([
            (tags::STATE_SOURCE.to_string(), Source::FinalImage.as_str().to_string()),
            (tags::ROOT_IMAGE.to_string(), image.id.clone()),
        ]);
        if let Some(as_of) = image.creation_date {
            recorded.insert(tags::STATE_AS_OF.to_string(), as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        self.ec2.tag(std::slice::from_ref(&replacement.id), &recorded).await?;
        match self.swap_root(replacement, &RootSource::Image(image.id.clone())).await? {
            Ok(()) => {
                self.report.state = Some(StateReport {
                    source: Source::FinalImage,
                    image_id: Some(image.id),
                    volumes: Vec::new(),
                    as_of: image.creation_date,
                    fallback: Some(reason),
                });
                Ok(())
            }
            Err(why) => self.fall_back_to_image(dead, replacement, format!("{reason}; {why}")).await,
        }
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

    /// No better root could be swapped in: the replacement keeps the root
    /// of the image it booted (the newest backup, or the final image if it
    /// was available at the launch), and says so (also to a later retry).
    async fn fall_back_to_image(&mut self, dead: &Dead, replacement: &Instance, reason: String) -> Result<(), Failure> {
        self.step("image-root-kept", reason.clone());
        let booted_id = replacement.tags.get(tags::RESTORED_FROM).cloned();
        let images = self.ec2.own_images().await?;
        let booted = images.iter().find(|i| Some(&i.id) == booted_id.as_ref());
        let as_of = booted.and_then(|i| i.creation_date);
        let source = match booted {
            Some(image) if image.name == dead.final_image_name() => Source::FinalImage,
            _ => Source::Backup,
        };
        let mut recorded = crate::model::Tags::from([(tags::STATE_SOURCE.to_string(), source.as_str().to_string())]);
        if let Some(as_of) = as_of {
            recorded.insert(tags::STATE_AS_OF.to_string(), as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        self.ec2.tag(std::slice::from_ref(&replacement.id), &recorded).await?;
        self.report.state =
            Some(StateReport { source, image_id: booted_id, volumes: Vec::new(), as_of, fallback: Some(reason) });
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
