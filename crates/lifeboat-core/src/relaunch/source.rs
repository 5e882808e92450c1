//! Which state the node comes back with: the old instance's own volumes
//! (nothing lost), else the image started at the interruption (if it becomes
//! available soon enough), else the newest backup image.

use super::failure::Failure;
use super::launch::launch_plan;
use super::report::{Source, StateReport};
use super::wait::wait_for;
use super::{Dead, Flow, RelaunchCloud};
use crate::model::{CloudError, Image, ImageState, Instance, RootTaskState, Volume, VolumeState};
use crate::node::NodeName;
use crate::ports::{DeviceOverride, Ssm};
use crate::tags::{self, VolumeRole};
use chrono::{DateTime, Utc};

/// The newest `available` image of the node.
pub fn newest_available<'a>(images: &'a [Image], node_tag: &str, node: &NodeName) -> Option<&'a Image> {
    images
        .iter()
        .filter(|i| i.state == ImageState::Available && i.tags.get(node_tag).map(String::as_str) == Some(node.as_str()))
        .max_by(|a, b| a.creation_date.cmp(&b.creation_date).then(b.id.cmp(&a.id)))
}

/// The old instance's disks, ready to be used again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldDisks {
    pub root: Volume,
    pub data: Vec<Volume>,
}

/// Why the old volumes, a volume or an image cannot give the replacement
/// its state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("no preserved root volume (the node was never prepared, or the volume was deleted)")]
    NoRoot,
    #[error("several preserved root volumes ({}): which one is newest is unknown", .0.join(", "))]
    SeveralRoots(Vec<String>),
    #[error("volume {volume} is {state:?}, not available")]
    NotAvailable { volume: String, state: VolumeState },
    #[error("volume {volume} is in {zone}, the node's interface in {interface_zone}")]
    OtherZone { volume: String, zone: String, interface_zone: String },
    #[error("every instance type allowed is bare metal, which cannot replace its root volume: root {root} is kept")]
    BareMetal { root: String },
    #[error("volume {0} is gone")]
    VolumeGone(String),
    #[error("volume {0} is not encrypted and the image's root is: EC2 refuses the swap")]
    NotEncrypted(String),
    #[error("EC2 refused the swap: {0}")]
    SwapRefused(CloudError),
    #[error("root-volume replacement task {task} ended {state:?}")]
    SwapFailed { task: String, state: RootTaskState },
    #[error("no final image")]
    NoFinalImage,
    /// Describing it failed.
    #[error("{0}")]
    FinalImageUnknown(CloudError),
    /// It did not become available in time (or describing it failed).
    #[error("final image {image}: {failure}")]
    FinalImageLate { image: String, failure: Failure },
    #[error("final image {image}: it is {state:?}")]
    FinalImageState { image: String, state: ImageState },
}

/// Whether the preserved volumes of the old instance can be the
/// replacement's disks: exactly one root, everything `available` and in the
/// Availability Zone the kept interface pins (CreateReplaceRootVolumeTask
/// and AttachVolume take nothing else). Otherwise why not.
pub fn old_disks(preserved: &[Volume], zone: Option<&str>) -> Result<OldDisks, Unusable> {
    let roots: Vec<&Volume> = preserved.iter().filter(|v| VolumeRole::of(v) == Some(VolumeRole::Root)).collect();
    let root = match roots.as_slice() {
        [] => return Err(Unusable::NoRoot),
        [root] => (*root).clone(),
        many => return Err(Unusable::SeveralRoots(many.iter().map(|v| v.id.clone()).collect())),
    };
    for volume in preserved {
        if volume.state != VolumeState::Available {
            return Err(Unusable::NotAvailable { volume: volume.id.clone(), state: volume.state });
        }
        if let Some(zone) = zone
            && volume.availability_zone != zone
        {
            return Err(Unusable::OtherZone {
                volume: volume.id.clone(),
                zone: volume.availability_zone.clone(),
                interface_zone: zone.to_string(),
            });
        }
    }
    let data = preserved.iter().filter(|v| VolumeRole::of(v) == Some(VolumeRole::Data)).cloned().collect();
    Ok(OldDisks { root, data })
}

/// How the launch treats each device of the image: the devices a preserved
/// volume will take are not attached; everything else gets
/// `delete_on_termination` (images remember the flags of the instance they
/// were made from, so a launch says what it means).
pub fn launch_devices(image: &Image, taken: &[String], delete_on_termination: bool) -> Vec<DeviceOverride> {
    image
        .devices
        .iter()
        .map(|d| DeviceOverride {
            device: d.device.clone(),
            delete_on_termination: (!taken.contains(&d.device)).then_some(delete_on_termination),
        })
        .collect()
}

/// The state a replacement's launch recorded in its tags (for a resume).
pub fn recorded_state(replacement: &Instance) -> Option<StateReport> {
    let source = Source::parse(replacement.tags.get(tags::STATE_SOURCE)?)?;
    Some(StateReport {
        source,
        image_id: replacement.tags.get(tags::ROOT_IMAGE).or(replacement.tags.get(tags::RESTORED_FROM)).cloned(),
        volumes: match source {
            Source::OldVolumes => replacement.tags.get(tags::ROOT_VOLUME).cloned().into_iter().collect(),
            _ => Vec::new(),
        },
        as_of: replacement
            .tags
            .get(tags::STATE_AS_OF)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.to_utc()),
        fallback: None,
    })
}

/// What the replacement is launched with, and what it gets afterwards.
#[derive(Debug, Clone)]
pub struct StatePlan {
    pub source: Source,
    /// The image to launch from.
    pub image: Image,
    pub disks: Option<OldDisks>,
    pub as_of: Option<DateTime<Utc>>,
    pub fallback: Option<String>,
}

impl<E: RelaunchCloud, S: Ssm> Flow<'_, E, S> {
    /// Chooses the state to come back with, waiting (within bounds) for the
    /// old volumes to be released or for the final image to be available.
    pub(super) async fn choose_state(&mut self, dead: &Dead) -> Result<StatePlan, Failure> {
        let images = self.ec2.own_images().await?;
        let newest = newest_available(&images, &self.config.node_tag, &dead.node)
            .cloned()
            .ok_or(Failure::NoImage { node: dead.node.to_string() })?;
        let spec = self.launch_spec(dead, &newest)?;
        let preserved = self.preserved_volumes(dead).await?;
        let usable = old_disks(&preserved, spec.availability_zone.as_deref()).and_then(|disks| {
            // The old root comes back only through a root swap.
            if launch_plan(&spec.instance_type, self.config, true).is_empty() {
                return Err(Unusable::BareMetal { root: disks.root.id.clone() });
            }
            Ok(disks)
        });
        let plan = match usable {
            Ok(disks) => {
                self.step(
                    "old-volumes",
                    format!("root {} and {} data volumes of {}", disks.root.id, disks.data.len(), dead.id),
                );
                StatePlan {
                    source: Source::OldVolumes,
                    image: newest,
                    disks: Some(disks),
                    as_of: dead.gone_at,
                    fallback: None,
                }
            }
            Err(reason) => {
                let reason = reason.to_string();
                self.step("no-old-volumes", reason.clone());
                self.image_state(dead, &images, newest, reason).await?
            }
        };
        self.step("image", format!("{} ({})", plan.image.id, plan.image.name));
        self.report.state = Some(StateReport {
            source: plan.source,
            image_id: Some(plan.image.id.clone()),
            volumes: plan
                .disks
                .iter()
                .flat_map(|d| std::iter::once(&d.root).chain(&d.data))
                .map(|v| v.id.clone())
                .collect(),
            as_of: plan.as_of,
            fallback: plan.fallback.clone(),
        });
        Ok(plan)
    }

    /// The fallback: the final image if it becomes available in time, else
    /// the newest backup.
    async fn image_state(
        &mut self,
        dead: &Dead,
        images: &[Image],
        newest: Image,
        reason: String,
    ) -> Result<StatePlan, Failure> {
        let found = images.iter().find(|i| i.name == dead.final_image_name()).cloned();
        Ok(match self.final_image(dead, found).await {
            Ok(image) => StatePlan {
                source: Source::FinalImage,
                as_of: image.creation_date,
                image,
                disks: None,
                fallback: Some(reason),
            },
            Err(why) => StatePlan {
                source: Source::Backup,
                as_of: newest.creation_date,
                image: newest,
                disks: None,
                fallback: Some(format!("{reason}; {why}")),
            },
        })
    }

    /// The image started at the interruption, once `available`: waited for
    /// until `LIFEBOAT_FINAL_IMAGE_WAIT` after its creation (so retries do
    /// not wait again). Otherwise why not. `found` is the image if already
    /// described.
    pub(super) async fn final_image(&mut self, dead: &Dead, found: Option<Image>) -> Result<Image, Unusable> {
        let name = dead.final_image_name();
        let found = match found {
            Some(image) => Some(image),
            None => self.ec2.image_named(&name).await.map_err(Unusable::FinalImageUnknown)?,
        };
        let Some(final_image) = found else { return Err(Unusable::NoFinalImage) };
        let image = final_image.id.clone();
        match final_image.state {
            ImageState::Available => Ok(final_image),
            ImageState::Pending => {
                let until = final_image.creation_date.unwrap_or(self.now) + self.config.final_image_wait;
                let left = (until - self.wall_now()).to_std().unwrap_or_default();
                let waited = wait_for("the final image to be available", left, &self.timing, self.deadline, || async {
                    Ok(self.ec2.image_named(&name).await?.filter(|i| i.state != ImageState::Pending))
                })
                .await
                .map_err(|failure| Unusable::FinalImageLate { image: image.clone(), failure })?;
                match waited.state {
                    ImageState::Available => Ok(waited),
                    state => Err(Unusable::FinalImageState { image, state }),
                }
            }
            state => Err(Unusable::FinalImageState { image, state }),
        }
    }

    /// The volumes the dead instance left, waited for until released. A
    /// replacement lost before it adopted its disks left its predecessor's.
    async fn preserved_volumes(&mut self, dead: &Dead) -> Result<Vec<Volume>, Failure> {
        for owner in dead.volume_owners() {
            let found = self.volumes_of(dead, &owner).await?;
            if found.is_empty() {
                continue;
            }
            let ids: Vec<String> = found.iter().map(|v| v.id.clone()).collect();
            // Released a few seconds after the termination.
            let released = wait_for(
                "the old volumes to be released",
                self.timing.release,
                &self.timing,
                self.deadline,
                || async {
                    let volumes = self.ec2.volumes_by_id(&ids).await?;
                    Ok(volumes.iter().all(|v| v.state != VolumeState::InUse).then_some(volumes))
                },
            )
            .await;
            return Ok(released.unwrap_or(found));
        }
        Ok(Vec::new())
    }

    pub(super) async fn volumes_of(&self, dead: &Dead, owner: &str) -> Result<Vec<Volume>, Failure> {
        let tagged = self.ec2.volumes_tagged(tags::INSTANCE, Some(owner)).await?;
        Ok(tagged
            .into_iter()
            .filter(|v| v.tags.get(&self.config.node_tag).map(String::as_str) == Some(dead.node.as_str()))
            .filter(|v| !matches!(v.state, VolumeState::Deleting | VolumeState::Other))
            .collect())
    }
}
