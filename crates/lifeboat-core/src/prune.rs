//! retention-pruner: event → plan → effects → report.
//!
//! Only images that carry the node tag are ever considered, grouped by node
//! name (never by source instance: a replacement must not orphan the older
//! backups of its node). Per node, the newest `keep_min` available images are
//! kept whatever their age, so a week of failed backups cannot prune the last
//! good one away; pending images are never deleted and never count as kept.
//! Preserved volumes that no instance uses are deleted only once the node
//! has a healthy successor older than the retention (see [`plan_volumes`]).

use crate::config::Config;
use crate::event::{EventError, Trigger, parse_scheduled};
use crate::model::{
    CloudError, ErrorKind, Image, ImageState, Instance, InstanceState, Snapshot, SnapshotState, Volume, VolumeState,
};
use crate::ports::{DeleteVolume, Describe, Port, Pruning};
use crate::tags;
use chrono::{DateTime, Duration, Utc};
use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Deletions in flight at once: well under EC2's mutating-call rate.
const CONCURRENCY: usize = 4;

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
pub struct Kept {
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
    pub keep: Vec<Kept>,
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
        let keep = |reason| Kept { image: ImageRef::of(image), reason };
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

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneRequest {
    /// Ages are computed against this: the event's time, or now.
    pub now: DateTime<Utc>,
    pub dry_run: bool,
    pub trigger: Trigger,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManualRequest {
    dry_run: Option<bool>,
}

/// Parses what retention-pruner was invoked with. Ages are computed against
/// the event's time, but never a time later than `now`: a forged or skewed
/// Scheduled Event must not age fresh backups into deletion.
pub fn parse_event(event: &Value, now: DateTime<Utc>) -> Result<PruneRequest, EventError> {
    let scheduled = parse_scheduled::<ManualRequest>(event, now, "retention-pruner", "{\"dry_run\": true}")?;
    Ok(PruneRequest {
        now: scheduled.time.min(now),
        dry_run: scheduled.request.dry_run.unwrap_or(false),
        trigger: scheduled.trigger,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    pub time: DateTime<Utc>,
    pub trigger: Trigger,
    pub dry_run: bool,
    pub node_tag: String,
    pub policy: Policy,
    pub nodes: Vec<NodeReport>,
}

impl PruneReport {
    pub fn failure_count(&self) -> usize {
        self.nodes.iter().map(|n| n.failures.len()).sum()
    }

    /// EMF lines per node: `ImagesPruned` (not on a dry run) and
    /// `NewestBackupAgeHours`, the age of the newest available backup at
    /// the time of the run, for the dashboard.
    pub fn metrics(&self, at: DateTime<Utc>) -> Vec<String> {
        let mut lines = Vec::new();
        for n in &self.nodes {
            if !self.dry_run {
                let pruned = n.deleted.iter().filter(|d| d.status == DeleteStatus::Deleted).count();
                lines.push(crate::metrics::value("ImagesPruned", "Count", pruned as f64, Some(&n.node), at));
            }
            if let Some(hours) = n.newest_backup_age_hours(self.time) {
                lines.push(crate::metrics::value("NewestBackupAgeHours", "None", hours, Some(&n.node), at));
            }
        }
        lines
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub kept: Vec<Kept>,
    pub deleted: Vec<Deleted>,
    /// Snapshots deleted after their image (those DeleteAssociatedSnapshots left).
    pub snapshots_deleted: Vec<String>,
    pub orphans_deleted: Vec<String>,
    pub orphans_kept: Vec<OrphanKept>,
    /// Snapshots still `pending`: left for the next run.
    pub snapshots_pending: Vec<String>,
    /// Snapshots a registered (or disabled) image still uses: kept.
    pub snapshots_in_use: Vec<String>,
    /// Preserved volumes deleted (or, on a dry run, that would be).
    pub volumes_deleted: Vec<String>,
    pub volumes_kept: Vec<VolumeKept>,
    pub failures: Vec<Failure>,
}

impl NodeReport {
    /// Hours since the newest available image the run kept was made.
    fn newest_backup_age_hours(&self, now: DateTime<Utc>) -> Option<f64> {
        let newest = self
            .kept
            .iter()
            .filter(|k| k.image.state == ImageState::Available)
            .filter_map(|k| k.image.created)
            .max()?;
        Some(((now - newest).num_minutes() as f64 / 60.0 * 10.0).round() / 10.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deleted {
    #[serde(flatten)]
    pub image: ImageRef,
    pub status: DeleteStatus,
    pub snapshot_ids: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeleteStatus {
    Deleted,
    WouldDelete,
    Failed,
}

/// An orphaned snapshot left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrphanKept {
    pub snapshot_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub resource: String,
    pub error: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("listing images, snapshots, instances or volumes failed, nothing was deleted: {0}")]
    Describe(CloudError),
    #[error("{} failures while pruning: {}", .0.failure_count(),
        .0.nodes.iter().flat_map(|n| n.failures.iter().map(move |f| format!("{} {}: {}", n.node, f.resource, f.error))).collect::<Vec<_>>().join("; "))]
    Failed(Box<PruneReport>),
}

impl PruneError {
    /// The report of an invocation that ran (and failed on some resources).
    pub fn report(&self) -> Option<&PruneReport> {
        match self {
            PruneError::Failed(report) => Some(report),
            _ => None,
        }
    }
}

/// What retention-pruner may do with EC2.
pub trait PruneCloud: Describe + Pruning + DeleteVolume {}
/// [`PruneCloud`]'s ports, for the contract ([`crate::contract`]).
pub const PORTS: &[Port] = &[Port::Describe, Port::Pruning, Port::DeleteVolume];
impl<T: Describe + Pruning + DeleteVolume> PruneCloud for T {}

pub async fn handle(
    ec2: &impl PruneCloud,
    config: &Config,
    event: &Value,
    now: DateTime<Utc>,
) -> Result<PruneReport, PruneError> {
    let request = parse_event(event, now)?;
    run(ec2, config, &request).await
}

/// Lists, plans, deletes, verifies, reports. A failure on one image,
/// snapshot or volume does not stop the others; the invocation then fails
/// with the whole report, so the retry and the alarms see it.
pub async fn run(ec2: &impl PruneCloud, config: &Config, request: &PruneRequest) -> Result<PruneReport, PruneError> {
    let tag = &config.node_tag;
    let images = ec2.own_images().await.map_err(PruneError::Describe)?;
    let snapshots = ec2.snapshots_with_tag(tag).await.map_err(PruneError::Describe)?;
    let volumes = ec2.volumes_tagged(tag, None).await.map_err(PruneError::Describe)?;
    let instances = ec2.instances_with_tag(tag).await.map_err(PruneError::Describe)?;
    let policy = Policy::from_config(config);
    let mut plan = plan(&images, &snapshots, tag, policy, request.now);
    let mut volume_plan = plan_volumes(&volumes, &instances, &images, tag, policy, request.now);
    for node in volume_plan.keys() {
        plan.entry(node.clone()).or_default();
    }
    let dry_run = request.dry_run || config.dry_run;

    let mut nodes = Vec::new();
    for (node, node_plan) in plan {
        let volumes = volume_plan.remove(&node).unwrap_or_default();
        nodes.push(execute(ec2, node, node_plan, volumes, dry_run).await);
    }
    let report =
        PruneReport { time: request.now, trigger: request.trigger, dry_run, node_tag: tag.clone(), policy, nodes };
    if report.failure_count() > 0 {
        return Err(PruneError::Failed(Box::new(report)));
    }
    Ok(report)
}

async fn execute(
    ec2: &impl PruneCloud,
    node: String,
    plan: NodePlan,
    volumes: VolumePlan,
    dry_run: bool,
) -> NodeReport {
    let mut report = NodeReport {
        node,
        kept: plan.keep,
        orphans_kept: plan.orphans_kept,
        volumes_kept: volumes.keep,
        ..NodeReport::default()
    };
    if dry_run {
        report.deleted = plan
            .delete
            .into_iter()
            .map(|d| Deleted { image: d.image, status: DeleteStatus::WouldDelete, snapshot_ids: d.snapshot_ids })
            .collect();
        report.orphans_deleted = plan.orphans;
        report.volumes_deleted = volumes.delete;
        return report;
    }
    delete_images(ec2, &mut report, plan.delete, plan.orphans).await;
    for volume in volumes.delete {
        match ec2.delete_volume(&volume).await {
            Ok(()) => report.volumes_deleted.push(volume),
            Err(e) if e.is(ErrorKind::NotFound) => report.volumes_deleted.push(volume),
            Err(e) => report.failures.push(Failure { resource: volume, error: e.to_string() }),
        }
    }
    report
}

/// Deregisters the images, then deletes whatever of their snapshots (and
/// the orphans) is left.
async fn delete_images(ec2: &impl PruneCloud, report: &mut NodeReport, images: Vec<Deletion>, orphans: Vec<String>) {
    let mut leftovers = deregister(ec2, report, images).await;
    let orphans: BTreeSet<String> = orphans.into_iter().collect();
    leftovers.extend(orphans.iter().cloned());
    if leftovers.is_empty() {
        return;
    }
    match ec2.snapshots_by_id(&leftovers).await {
        Ok(remaining) => delete_snapshots(ec2, report, remaining, &orphans).await,
        Err(e) => report.failures.push(Failure { resource: "DescribeSnapshots".into(), error: e.to_string() }),
    }
}

/// Deregisters the images (asking EC2 to delete their snapshots); returns
/// the snapshots to check for leftovers.
async fn deregister(ec2: &impl PruneCloud, report: &mut NodeReport, images: Vec<Deletion>) -> Vec<String> {
    let results: Vec<(Deletion, Result<(), CloudError>)> = stream::iter(images)
        .map(async |d| {
            let result = ec2.deregister_image(&d.image.image_id, true).await;
            (d, result)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut leftovers = Vec::new();
    for (deletion, result) in results {
        let status = match result {
            Ok(()) => {
                tracing::info!(node = %report.node, image = %deletion.image.image_id, "image deregistered");
                leftovers.extend(deletion.snapshot_ids.iter().cloned());
                DeleteStatus::Deleted
            }
            Err(e) => {
                tracing::error!(node = %report.node, image = %deletion.image.image_id, error = %e, "deregister failed");
                report.failures.push(Failure { resource: deletion.image.image_id.clone(), error: e.to_string() });
                DeleteStatus::Failed
            }
        };
        report.deleted.push(Deleted { image: deletion.image, status, snapshot_ids: deletion.snapshot_ids });
    }
    leftovers
}

/// Deletes the snapshots still there; pending ones and those in use are
/// reported and left.
async fn delete_snapshots(
    ec2: &impl PruneCloud,
    report: &mut NodeReport,
    remaining: Vec<Snapshot>,
    orphans: &BTreeSet<String>,
) {
    let outcomes: Vec<(Snapshot, Option<Result<(), CloudError>>)> = stream::iter(remaining)
        .map(async |s| {
            if s.state == SnapshotState::Pending {
                return (s, None);
            }
            let result = ec2.delete_snapshot(&s.id).await;
            (s, Some(result))
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    for (snapshot, outcome) in outcomes {
        match outcome {
            None => report.snapshots_pending.push(snapshot.id),
            // A disabled image (or one registered since) uses it: kept, not a failure.
            Some(Err(e)) if e.is(ErrorKind::InUse) => report.snapshots_in_use.push(snapshot.id),
            Some(Err(e)) if !e.is(ErrorKind::NotFound) => {
                report.failures.push(Failure { resource: snapshot.id, error: e.to_string() });
            }
            // Deleted now, or gone by itself in the meantime.
            Some(_) if orphans.contains(&snapshot.id) => report.orphans_deleted.push(snapshot.id),
            Some(_) => report.snapshots_deleted.push(snapshot.id),
        }
    }
}
