//! Carrying out a node's plan: the images deregistered, their leftover
//! snapshots and the orphans deleted, the preserved volumes deleted; each
//! failure recorded, none stopping the others.

use super::plan::{Deletion, NodePlan, VolumePlan};
use super::{DeleteStatus, Deleted, FailedResource, NodeReport, PruneCloud};
use crate::model::{CloudError, ErrorKind, Snapshot, SnapshotState};
use futures::{StreamExt, stream};
use std::collections::BTreeSet;

/// Deletions in flight at once: well under EC2's mutating-call rate.
const CONCURRENCY: usize = 4;

pub(super) async fn execute(
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
            Err(e) => report.failures.push(FailedResource { resource: volume, error: e.to_string() }),
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
        Err(e) => report.failures.push(FailedResource { resource: "DescribeSnapshots".into(), error: e.to_string() }),
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
                report
                    .failures
                    .push(FailedResource { resource: deletion.image.image_id.clone(), error: e.to_string() });
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
                report.failures.push(FailedResource { resource: snapshot.id, error: e.to_string() });
            }
            // Deleted now, or gone by itself in the meantime.
            Some(_) if orphans.contains(&snapshot.id) => report.orphans_deleted.push(snapshot.id),
            Some(_) => report.snapshots_deleted.push(snapshot.id),
        }
    }
}
