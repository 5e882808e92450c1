//! Giving the replacement the old instance's disks: its data volumes
//! attached at their device names, then its root swapped in with a
//! root-volume replacement task; then preparing the replacement for the
//! next interruption. Each part checks what AWS shows first, so a retry
//! after a crash between any two calls does each thing once.

use super::failure::Failure;
use super::report::{Source, StateReport};
use super::source::Unusable;
use super::wait::wait_for;
use super::{Dead, Flow, RelaunchCloud};
use crate::model::{Instance, InstanceState, Refusal, RootTask, RootTaskState, VolumeState};
use crate::node::NodeName;
use crate::ports::{RootSource, Ssm};
use crate::{prepare, tags};

/// What a root swap did.
pub(super) enum Swap {
    /// The root is in place.
    Done,
    /// EC2 refused it, or its task ended `failed` ("the original root volume
    /// is still attached"): the replacement keeps the root it has. Why.
    Kept(Unusable),
    /// Its task ended `failed-detached`: "the instance has no root volume
    /// attached" (API reference, API_ReplaceRootVolumeTask.html).
    RootLost { task: String },
}

/// What giving the replacement its disks left.
pub(super) enum Disks {
    /// Its disks are in place and it is prepared for the next interruption.
    Ready,
    /// It was lost (terminated, having no root): the next round relaunches
    /// the node on the same disks.
    ReplacementLost,
}

impl<E: RelaunchCloud, S: Ssm> Flow<'_, E, S> {
    /// Waits until the instance runs (`Ok`), or until EC2 ends it first
    /// (`Err`: the instance as EC2 then describes it, with its state reason).
    pub(super) async fn wait_launched(&mut self, instance_id: &str) -> Result<Result<Instance, Instance>, Failure> {
        wait_for("the instance to run", self.timing.running, &self.timing, self.deadline, || async {
            Ok(match self.ec2.instance(instance_id).await? {
                Some(i) if i.state == InstanceState::Running => Some(Ok(i)),
                Some(i) if i.state.is_gone() => Some(Err(i)),
                _ => None,
            })
        })
        .await
    }

    /// Waits until EC2 describes the instance terminated (or no longer).
    pub(super) async fn wait_gone(&self, what: &str, instance_id: &str) -> Result<(), Failure> {
        wait_for(what, self.timing.terminate, &self.timing, self.deadline, || async {
            Ok(match self.ec2.instance(instance_id).await? {
                Some(i) if i.state != InstanceState::Terminated => None,
                _ => Some(()),
            })
        })
        .await
    }

    /// Waits for the instance to run.
    pub(super) async fn wait_running(&mut self, instance_id: &str) -> Result<Instance, Failure> {
        let running = self
            .wait_launched(instance_id)
            .await?
            .map_err(|i| Failure::InstanceGone { instance: i.id, state: i.state.to_string() })?;
        self.noticed_running(&running);
        Ok(running)
    }

    pub(super) fn noticed_running(&mut self, running: &Instance) {
        self.step("running", format!("{} running with {}", running.id, running.private_ip.as_deref().unwrap_or("?")));
        self.record_running(running);
    }

    /// The old disks (when the state chosen is theirs), then the
    /// preparation of the replacement. When the old root cannot be swapped
    /// in, the final image's root is the next best state, then the backup
    /// the replacement booted. A swap that leaves the replacement without
    /// any root loses it (see [`Flow::rootless`]).
    pub(super) async fn restore_disks(&mut self, dead: &Dead, replacement: Instance) -> Result<Disks, Failure> {
        let recorded = |key: &str| replacement.tags.get(key).cloned();
        let source = recorded(tags::STATE_SOURCE).and_then(|s| Source::parse(&s));
        let lost = match (source, recorded(tags::ROOT_VOLUME), recorded(tags::ROOT_IMAGE)) {
            (Some(Source::OldVolumes), Some(root), _) => {
                self.attach_data_volumes(dead, &replacement).await?;
                match self.swap_root(&replacement, &RootSource::Volume(root)).await? {
                    Swap::Done => None,
                    Swap::Kept(reason) => {
                        let reason = reason.to_string();
                        self.step("root-not-swapped", reason.clone());
                        self.swap_final_root(dead, &replacement, reason).await?
                    }
                    Swap::RootLost { task } => Some(task),
                }
            }
            // A retry after the final image's root was chosen.
            (Some(Source::FinalImage), _, Some(image)) => {
                match self.swap_root(&replacement, &RootSource::Image(image)).await? {
                    Swap::Done => None,
                    Swap::Kept(reason) => {
                        self.fall_back_to_image(dead, &replacement, reason.to_string()).await?;
                        None
                    }
                    Swap::RootLost { task } => Some(task),
                }
            }
            _ => None,
        };
        if let Some(task) = lost {
            return self.rootless(&replacement, &task).await;
        }
        let node = dead.node.clone();
        self.prepare_replacement(&replacement.id, &node).await?;
        Ok(Disks::Ready)
    }

    /// A root swap left the replacement without a root volume
    /// (`failed-detached`). It cannot boot again, and nothing lifeboat may
    /// do gives it a root back: EC2 changes a root volume outside a task
    /// only while the instance is stopped (DetachVolume, API reference: "To
    /// detach the root volume, stop the instance first"), which lifeboat may
    /// not do and a one-time spot instance cannot be (EC2 user guide,
    /// spot-requests.html: only a persistent request's instance is stopped
    /// and started). So the replacement is lost, as EC2 Auto Scaling treats an
    /// instance whose root volume replacement failed ("marks that instance
    /// for termination and replaces it with a new instance", Auto Scaling
    /// user guide, replace-root-volume.html): it is terminated, and the
    /// next round relaunches the node on the same disks, all kept (the
    /// data volumes were attached without DeleteOnTermination, the old root
    /// was not attached). The volumes it was launched with, copies of an
    /// image, are left for a person to delete (lifeboat may delete none of
    /// a node's volumes).
    async fn rootless(&mut self, replacement: &Instance, task: &str) -> Result<Disks, Failure> {
        let launched: Vec<&str> = replacement.volumes.iter().map(|v| v.volume_id.as_str()).collect();
        self.step(
            "root-lost",
            format!(
                "task {task} ended failed-detached: EC2 left {} without a root volume, it cannot boot again: \
                 terminating it and relaunching the node on its disks; left available: {}",
                replacement.id,
                if launched.is_empty() { "nothing".to_string() } else { launched.join(", ") }
            ),
        );
        // Marked first: the stack lets the handler terminate a node's
        // instance only when it carries this tag.
        let marker = crate::model::Tags::from([(tags::ROOT_LOST.to_string(), task.to_string())]);
        self.ec2.tag(std::slice::from_ref(&replacement.id), &marker).await?;
        self.ec2.terminate_instance(&replacement.id).await?;
        let id = replacement.id.clone();
        self.wait_gone("the rootless replacement to terminate", &id).await?;
        self.step("replacement-terminated", format!("{id} is terminated"));
        Ok(Disks::ReplacementLost)
    }

    /// Attaches the old instance's data volumes that are not attached yet:
    /// those of the nearest generation that left any, as the state was
    /// chosen.
    async fn attach_data_volumes(&mut self, dead: &Dead, replacement: &Instance) -> Result<(), Failure> {
        let mut preserved = Vec::new();
        for owner in dead.volume_owners() {
            preserved = self.volumes_of(dead, &owner).await?;
            if !preserved.is_empty() {
                break;
            }
        }
        let data = preserved.into_iter().filter(|v| tags::VolumeRole::of(v) == Some(tags::VolumeRole::Data));
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

    /// Swaps a root in (see [`Swap`]). The token makes a retry get the
    /// task it started instead of starting another.
    async fn swap_root(&mut self, replacement: &Instance, root: &RootSource) -> Result<Swap, Failure> {
        if let RootSource::Volume(volume) = root {
            if replacement.root_volume().is_some_and(|v| &v.volume_id == volume) {
                self.step("root-swapped", format!("{volume} is the root of {} already", replacement.id));
                return Ok(Swap::Done);
            }
            if let Some(reason) = self.swap_refusal(replacement, volume).await? {
                return Ok(Swap::Kept(reason));
            }
        }
        let token = format!("root-{}-{}", replacement.id, root.id());
        let task = match self.ec2.replace_root_volume(&replacement.id, root, &token).await {
            Ok(task) => task,
            // EC2 will not take this volume or image, or not in this state:
            // nothing was swapped, the replacement keeps its root.
            Err(e) if matches!(e.refusal(), Some(Refusal::Validation | Refusal::State)) => {
                return Ok(Swap::Kept(Unusable::SwapRefused(e)));
            }
            // IAM denies the swap: the stack is broken, and a quiet fallback
            // would hide it (and leave the state the old root holds unused).
            // The replacement stays guarded on its root, the old root is
            // untouched, the invocation fails for an operator to see.
            Err(e) if e.refusal() == Some(Refusal::Authorization) => {
                self.step(
                    "root-swap-denied",
                    format!(
                        "{e}: the stack's role may not swap the root; {} stays guarded on the image's root, {} is kept",
                        replacement.id,
                        root.id()
                    ),
                );
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        self.step("root-swap-started", format!("task {task}: {} replaces the image's root", root.id()));
        let done = self.wait_root_task(&replacement.id, &task).await?;
        Ok(match done.state {
            RootTaskState::Succeeded => {
                self.step("root-swapped", format!("{} is the root of {} (task {task})", root.id(), replacement.id));
                Swap::Done
            }
            RootTaskState::FailedDetached => Swap::RootLost { task },
            state => Swap::Kept(Unusable::SwapFailed { task, state }),
        })
    }

    /// The old root could not be swapped in: the root of the image made at
    /// the interruption, if it is (or becomes in time) available, replaces
    /// the backup's. Recorded on the replacement first, so a retry goes on
    /// with the same choice. Returns the task that left the replacement
    /// without a root, if one did.
    async fn swap_final_root(
        &mut self,
        dead: &Dead,
        replacement: &Instance,
        reason: String,
    ) -> Result<Option<String>, Failure> {
        let image = match self.final_image(dead, None).await {
            Ok(image) if replacement.tags.get(tags::RESTORED_FROM) != Some(&image.id) => image,
            // It booted the final image already (available at the launch).
            Ok(_) => return self.fall_back_to_image(dead, replacement, reason).await.map(|()| None),
            Err(why) => {
                return self.fall_back_to_image(dead, replacement, format!("{reason}; {why}")).await.map(|()| None);
            }
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
            Swap::Done => {
                self.report.state = Some(StateReport {
                    source: Source::FinalImage,
                    image_id: Some(image.id),
                    volumes: Vec::new(),
                    as_of: image.creation_date,
                    fallback: Some(reason),
                });
                Ok(None)
            }
            Swap::Kept(why) => {
                self.fall_back_to_image(dead, replacement, format!("{reason}; {why}")).await.map(|()| None)
            }
            Swap::RootLost { task } => Ok(Some(task)),
        }
    }

    /// Why EC2 would refuse the volume as the replacement's root, if it
    /// would, for what CreateReplaceRootVolumeTask requires of it but checks
    /// only when the task runs: encrypted if the current root is.
    async fn swap_refusal(&self, replacement: &Instance, root: &str) -> Result<Option<Unusable>, Failure> {
        let mut ids = vec![root.to_string()];
        ids.extend(replacement.root_volume().map(|v| v.volume_id.clone()));
        let volumes = self.ec2.volumes_by_id(&ids).await?;
        let find = |id: &str| volumes.iter().find(|v| v.id == id);
        let Some(old_root) = find(root) else { return Ok(Some(Unusable::VolumeGone(root.to_string()))) };
        let current = replacement.root_volume().and_then(|v| find(&v.volume_id));
        if current.is_some_and(|c| c.encrypted) && !old_root.encrypted {
            return Ok(Some(Unusable::NotEncrypted(root.to_string())));
        }
        Ok(None)
    }

    /// Waits for the task to end: `failing` and `failing-detached` are on
    /// their way to `failed` and `failed-detached`, not there yet (see
    /// [`RootTaskState`]).
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
