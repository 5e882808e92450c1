//! What the flow tests share: events, a node as scheduled-backup leaves it,
//! running the handler on the in-memory cloud.
#![allow(dead_code)] // each test file uses its part

use chrono::{DateTime, TimeZone, Utc};
use lifeboat_core::backup;
use lifeboat_core::config::Config;
use lifeboat_core::memory::MemoryCloud;
use lifeboat_core::model::Instance;
use lifeboat_core::prepare::Prepared;
use lifeboat_core::relaunch::{self, Cloud, RelaunchError, RelaunchReport, Timing};
use lifeboat_core::tags::REPLACES;
use serde_json::{Value, json};

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 13, 42, 7).unwrap()
}

pub fn warning(instance: &str) -> Value {
    warning_to(instance, "terminate")
}

pub fn warning_to(instance: &str, action: &str) -> Value {
    json!({"version": "0", "id": "w", "detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2",
           "time": "2026-11-26T13:42:07Z", "region": "eu-west-1", "resources": [],
           "detail": {"instance-id": instance, "instance-action": action}})
}

pub fn state_change(instance: &str, state: &str) -> Value {
    json!({"version": "0", "id": "s", "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
           "time": "2026-11-26T13:44:09Z", "region": "eu-west-1", "resources": [],
           "detail": {"instance-id": instance, "state": state}})
}

pub fn rebalance(instance: &str) -> Value {
    json!({"version": "0", "id": "r", "detail-type": "EC2 Instance Rebalance Recommendation",
        "source": "aws.ec2", "time": "2026-11-26T13:31:55Z", "region": "eu-west-1", "resources": [],
        "detail": {"instance-id": instance}})
}

pub fn drill(keep: bool) -> Value {
    json!({"action": "test-restore", "node": "k8s-master", "keep": keep})
}

/// A node backed up (and so prepared) by scheduled-backup twelve hours ago,
/// its image finished.
pub async fn prepared_node(cloud: &MemoryCloud) -> String {
    prepared(cloud, "k8s-master").await
}

pub async fn prepared(cloud: &MemoryCloud, node: &str) -> String {
    let old = cloud.add_node(node);
    let event = json!({"node": node});
    let report = backup::handle(cloud, &Config::default(), &event, now() - chrono::Duration::hours(12)).await.unwrap();
    let preparation = report.nodes[0].preparation.as_ref().unwrap();
    assert_eq!(preparation.interface.as_ref().unwrap().outcome, Prepared::Kept);
    assert_eq!(preparation.volumes.outcome, Prepared::Kept);
    cloud.finish_images();
    old
}

pub async fn run(cloud: &MemoryCloud, config: &Config, event: &Value) -> Result<RelaunchReport, RelaunchError> {
    run_until(cloud, config, event, None).await
}

pub async fn run_until(
    cloud: &MemoryCloud,
    config: &Config,
    event: &Value,
    deadline: Option<tokio::time::Instant>,
) -> Result<RelaunchReport, RelaunchError> {
    let cloud = Cloud { ec2: cloud, ssm: cloud, notifier: cloud };
    relaunch::handle(cloud, config, Timing::default(), event, now(), deadline).await
}

pub fn replacements(cloud: &MemoryCloud, old: &str) -> Vec<Instance> {
    cloud.instances().into_iter().filter(|i| i.tags.get(REPLACES).map(String::as_str) == Some(old)).collect()
}

pub fn failed(result: Result<RelaunchReport, RelaunchError>) -> RelaunchReport {
    match result {
        Err(RelaunchError::Failed(report)) => *report,
        other => panic!("expected a failed relaunch, got {other:?}"),
    }
}

pub fn steps(report: &RelaunchReport) -> Vec<&'static str> {
    report.timeline.iter().map(|s| s.step).collect()
}
