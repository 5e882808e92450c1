//! What to delete and what to keep: pure, the images, snapshots, volumes
//! and instances in, the plan out.

use crate::config::Config;
use crate::model::{Image, ImageState, Instance, InstanceState, Snapshot, SnapshotState, Volume, VolumeState};
use crate::tags;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub retention_days: u32,
    pub keep_min: u32,
}

impl Policy {
    pub fn from_config(config: &Config) -> Policy {
        Policy { retention_days: config.retention_days, keep_min: config.keep_min }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepReason {
    /// One of the newest `keep_min` available images of the node.
    NewestK,
    /// Younger than the retention.
    WithinRetention,
    /// Still being created: never deleted, never counted as a good backup.
    Pending,
    /// Disabled (DisableImage): its snapshots are still in use.
    Disabled,
    /// A state lifeboat never deletes (`invalid`, `deregistered`, ...).
    OtherState,
    /// No creation date to compute an age from.
    UnknownAge,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    pub image_id: String,
    pub name: String,
    pub state: ImageState,
    pub created: Option<DateTime<Utc>>,
}

impl ImageRef {
    fn of(image: &Image) -> ImageRef {
        ImageRef {
            image_id: image.id.clone(),
            name: image.name.clone(),
            state: image.state,
            created: image.creation_date,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptImage {
    #[serde(flatten)]
    pub image: ImageRef,
    pub reason: KeepReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub image: ImageRef,
    /// The image's snapshots that no surviving image uses: deleted with the
    /// image, and checked (then deleted if still there) afterwards.
    pub snapshot_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePlan {
    pub keep: Vec<KeptImage>,
    pub delete: Vec<Deletion>,
    /// Snapshots with the node tag that no image uses, older than the retention.
    pub orphans: Vec<String>,
    /// Orphans left alone, and why.
    pub orphans_kept: Vec<OrphanKept>,
}

/// The whole plan, per node name.
pub type Plan = BTreeMap<String, NodePlan>;

fn older_than(created: Option<DateTime<Utc>>, now: DateTime<Utc>, days: u32) -> Option<bool> {
    created.map(|c| now - c > Duration::days(i64::from(days)))
}

/// Decides what to delete. Pure: the images (all the account owns, tagged or
/// not), the snapshots carrying the node tag, the policy and the time in; the
/// plan out.
pub fn plan(images: &[Image], snapshots: &[Snapshot], node_tag: &str, policy: Policy, now: DateTime<Utc>) -> Plan {
    let mut by_node: BTreeMap<&str, Vec<&Image>> = BTreeMap::new();
    for image in images {
        if let Some(node) = image.tags.get(node_tag) {
            by_node.entry(node).or_default().push(image);
        }
    }
    let mut plan: Plan = by_node
        .into_iter()
        .map(|(node, node_images)| (node.to_string(), plan_node(node_images, policy, now)))
        .collect();
    assign_snapshots(&mut plan, images);
    plan_orphans(&mut plan, images, snapshots, node_tag, policy, now);
    plan
}

/// Which of one node's images to keep and which to delete.
fn plan_node(mut images: Vec<&Image>, policy: Policy, now: DateTime<Utc>) -> NodePlan {
    // Newest first; images without a date after those with one; ties by id.
    images.sort_by(|a, b| b.creation_date.cmp(&a.creation_date).then(a.id.cmp(&b.id)));
    let mut node_plan = NodePlan::default();
    let mut good_kept = 0;
    for image in images {
        let keep = |reason| KeptImage { image: ImageRef::of(image), reason };
        let delete = || Deletion { image: ImageRef::of(image), snapshot_ids: Vec::new() };
        match image.state {
            ImageState::Pending => node_plan.keep.push(keep(KeepReason::Pending)),
            ImageState::Disabled => node_plan.keep.push(keep(KeepReason::Disabled)),
            ImageState::Other => node_plan.keep.push(keep(KeepReason::OtherState)),
            ImageState::Failed => node_plan.delete.push(delete()),
            ImageState::Available if good_kept < policy.keep_min => {
                good_kept += 1;
                node_plan.keep.push(keep(KeepReason::NewestK));
            }
            ImageState::Available => match older_than(image.creation_date, now, policy.retention_days) {
                None => node_plan.keep.push(keep(KeepReason::UnknownAge)),
                Some(false) => node_plan.keep.push(keep(KeepReason::WithinRetention)),
                Some(true) => node_plan.delete.push(delete()),
            },
        }
    }
    node_plan
}

/// Gives each deletion the snapshots no surviving image uses (a snapshot is
/// used while any image that is not being deleted, tagged or not, refers to
/// it).
fn assign_snapshots(plan: &mut Plan, images: &[Image]) {
    let deleted: BTreeSet<String> =
        plan.values().flat_map(|p| p.delete.iter().map(|d| d.image.image_id.clone())).collect();
    let surviving: BTreeSet<&str> =
        images.iter().filter(|i| !deleted.contains(&i.id)).flat_map(|i| i.snapshot_ids().map(String::as_str)).collect();
    let by_id: BTreeMap<&str, &Image> = images.iter().map(|i| (i.id.as_str(), i)).collect();
    for deletion in plan.values_mut().flat_map(|p| p.delete.iter_mut()) {
        let image = by_id[deletion.image.image_id.as_str()];
        deletion.snapshot_ids = image.snapshot_ids().filter(|s| !surviving.contains(s.as_str())).cloned().collect();
    }
}

/// Orphans: tagged snapshots no image refers to at all, deleted by the same
/// age rule.
fn plan_orphans(
    plan: &mut Plan,
    images: &[Image],
    snapshots: &[Snapshot],
    node_tag: &str,
    policy: Policy,
    now: DateTime<Utc>,
) {
    let referenced: BTreeSet<&str> = images.iter().flat_map(|i| i.snapshot_ids().map(String::as_str)).collect();
    for snapshot in snapshots {
        let Some(node) = snapshot.tags.get(node_tag) else { continue };
        if referenced.contains(snapshot.id.as_str()) {
            continue;
        }
        let node_plan = plan.entry(node.clone()).or_default();
        let reason = match (snapshot.state, older_than(snapshot.start_time, now, policy.retention_days)) {
            (SnapshotState::Pending, _) => Some("pending"),
            (_, None) => Some("unknown age"),
            (_, Some(false)) => Some("within retention"),
            (_, Some(true)) => None,
        };
        match reason {
            Some(reason) => {
                node_plan.orphans_kept.push(OrphanKept { snapshot_id: snapshot.id.clone(), reason: reason.to_string() })
            }
            None => node_plan.orphans.push(snapshot.id.clone()),
        }
    }
}

/// An orphaned snapshot left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrphanKept {
    pub snapshot_id: String,
    pub reason: String,
}

/// A preserved volume left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeKept {
    pub volume_id: String,
    pub reason: String,
}

/// Preserved volumes of one node: available volumes carrying the node tag,
/// left by a termination (a relaunch attaches them again) or by a relaunch
/// that could not use them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumePlan {
    pub delete: Vec<String>,
    pub keep: Vec<VolumeKept>,
}

/// Decides which preserved volumes to delete. A volume may hold the node's
/// newest state (it is the only copy after a relaunch that failed), so it is
/// deleted only when the node has a healthy successor: a running instance,
/// launched after the volume was made, that is not the volume's own
/// instance and has an available backup of its own; and only once that
/// successor is older than the retention.
pub fn plan_volumes(
    volumes: &[Volume],
    instances: &[Instance],
    images: &[Image],
    node_tag: &str,
    policy: Policy,
    now: DateTime<Utc>,
) -> BTreeMap<String, VolumePlan> {
    let mut plan: BTreeMap<String, VolumePlan> = BTreeMap::new();
    let backed_up: BTreeSet<&str> = images
        .iter()
        .filter(|i| i.state == ImageState::Available)
        .filter_map(|i| i.tags.get(tags::SOURCE_INSTANCE).map(String::as_str))
        .collect();
    for volume in volumes.iter().filter(|v| v.state == VolumeState::Available) {
        let Some(node) = volume.tags.get(node_tag) else { continue };
        let owner = volume.tags.get(tags::INSTANCE);
        let successor = instances
            .iter()
            .filter(|i| i.tags.get(node_tag) == Some(node) && i.state == InstanceState::Running)
            .filter(|i| Some(&i.id) != owner && backed_up.contains(i.id.as_str()))
            .filter(|i| matches!((i.launch_time, volume.create_time), (Some(l), Some(c)) if l > c))
            .min_by_key(|i| i.launch_time);
        let node_plan = plan.entry(node.clone()).or_default();
        let keep = |reason: String| VolumeKept { volume_id: volume.id.clone(), reason };
        match successor {
            None => node_plan.keep.push(keep(
                "no healthy instance of the node was launched after it: it may hold the newest state".into(),
            )),
            Some(s) if older_than(s.launch_time, now, policy.retention_days) != Some(true) => {
                node_plan.keep.push(keep(format!("within retention of its successor {}", s.id)))
            }
            Some(_) => node_plan.delete.push(volume.id.clone()),
        }
    }
    plan
}
