//! retention-pruner: event → plan → effects → report.
//!
//! Only images that carry the node tag are ever considered, grouped by node
//! name (never by source instance: a replacement must not orphan the older
//! backups of its node). Per node, the newest `keep_min` available images are
//! kept whatever their age, so a week of failed backups cannot prune the last
//! good one away; pending images are never deleted and never count as kept.
//! Preserved volumes that no instance uses are deleted only once the node
//! has a healthy successor older than the retention (see [`plan_volumes`]).

mod delete;
mod plan;

pub use plan::{
    Deletion, ImageRef, KeepReason, KeptImage, NodePlan, OrphanKept, Plan, Policy, VolumeKept, VolumePlan, plan,
    plan_volumes,
};

use crate::answer::FunctionError;
use crate::config::Config;
use crate::event::{EventError, Trigger, parse_scheduled};
use crate::model::{CloudError, ImageState};
use crate::ports::{DeleteVolume, Describe, Port, Pruning};
use chrono::{DateTime, Utc};
use delete::execute;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    pub kept: Vec<KeptImage>,
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
    pub failures: Vec<FailedResource>,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedResource {
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

impl FunctionError for PruneError {
    fn error_type(&self) -> &'static str {
        match self {
            PruneError::Event(_) => "InvalidEvent",
            PruneError::Describe(_) => "DescribeFailed",
            PruneError::Failed(_) => "PruneFailed",
        }
    }

    fn is_permanent(&self) -> bool {
        matches!(self, PruneError::Event(_))
    }

    fn report_json(&self) -> Option<Value> {
        PruneError::report(self).and_then(|r| serde_json::to_value(r).ok())
    }
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
