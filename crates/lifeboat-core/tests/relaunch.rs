//! interruption-handler's flow against the in-memory cloud, on tokio's paused
//! clock: every wait is real code, none takes real time.

use chrono::{TimeZone, Utc};
use lifeboat_core::config::{Capacity, Config};
use lifeboat_core::memory::MemoryCloud;
use lifeboat_core::model::{Instance, InstanceState};
use lifeboat_core::ports::{CommandState, Market, Network};
use lifeboat_core::relaunch::{self, Cloud, Outcome, RelaunchError, RelaunchReport, Timing};
use lifeboat_core::{backup, relaunch::REPLACES};
use serde_json::{Value, json};
use std::time::Duration;

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 13, 42, 7).unwrap()
}

fn warning(instance: &str) -> Value {
    json!({"version": "0", "id": "w", "detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2",
           "time": "2026-11-26T13:42:07Z", "region": "eu-west-1", "resources": [],
           "detail": {"instance-id": instance, "instance-action": "terminate"}})
}

fn state_change(instance: &str, state: &str) -> Value {
    json!({"version": "0", "id": "s", "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
           "time": "2026-11-26T13:44:09Z", "region": "eu-west-1", "resources": [],
           "detail": {"instance-id": instance, "state": state}})
}

/// A node backed up (and so prepared) by scheduled-backup, its image finished.
async fn prepared_node(cloud: &MemoryCloud) -> String {
    let old = cloud.add_node("k8s-master");
    let report =
        backup::handle(cloud, &Config::default(), &json!({}), now() - chrono::Duration::hours(12)).await.unwrap();
    assert_eq!(report.nodes[0].interface.as_ref().unwrap().outcome, backup::Prepared::Kept);
    cloud.finish_images();
    old
}

async fn run(cloud: &MemoryCloud, config: &Config, event: &Value) -> Result<RelaunchReport, RelaunchError> {
    relaunch::handle(Cloud { ec2: cloud, ssm: cloud, notifier: cloud }, config, Timing::default(), event, now(), None)
        .await
}

fn replacements(cloud: &MemoryCloud, old: &str) -> Vec<Instance> {
    cloud.instances().into_iter().filter(|i| i.tags.get(REPLACES).map(String::as_str) == Some(old)).collect()
}

fn failed(result: Result<RelaunchReport, RelaunchError>) -> RelaunchReport {
    match result {
        Err(RelaunchError::Failed(report)) => *report,
        other => panic!("expected a failed relaunch, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_warning_relaunches_the_node_once_on_the_same_ip_and_checks_it() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    let old_instance = cloud.instances().into_iter().find(|i| i.id == old).unwrap();
    cloud.terminate_in(&old, Duration::from_secs(110));

    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    let new = replacements(&cloud, &old);
    assert_eq!(new.len(), 1);
    let new = &new[0];
    assert_eq!(report.replacement.as_deref(), Some(new.id.as_str()));
    assert_eq!(new.state, InstanceState::Running);
    assert_eq!(new.private_ip, old_instance.private_ip);
    assert_eq!(report.same_ip, Some(true));
    let eni = old_instance.primary_interface.as_ref().unwrap().interface_id.clone();
    assert_eq!(report.network, Some(Network::Interface(eni.clone())));
    assert_eq!(new.primary_interface.as_ref().unwrap().interface_id, eni);
    assert!(new.spot);
    assert_eq!(new.instance_type, "m6i.large");
    // The old instance's own tags, plus where it came from.
    assert_eq!(new.tags["team"], "platform");
    assert_eq!(new.tags["lifeboat:node"], "k8s-master");
    assert_eq!(new.tags["lifeboat:restored-from"], report.image_id.clone().unwrap());
    // Restored from the scheduled backup, not the final one (still pending).
    let scheduled = cloud.images().into_iter().find(|i| i.tags["lifeboat:kind"] == "scheduled").unwrap();
    assert_eq!(report.image_id.as_deref(), Some(scheduled.id.as_str()));
    let final_backup = report.backup.as_ref().unwrap();
    assert_eq!(final_backup.outcome, backup::Outcome::Created);
    assert_eq!(final_backup.name.as_deref(), Some(format!("k8s-master-final-{old}").as_str()));
    // One command, to the replacement only.
    assert_eq!(cloud.commands(), [(new.id.clone(), "lifeboat repair of k8s-master".to_string())]);
    let steps: Vec<&str> = report.timeline.iter().map(|s| s.step).collect();
    assert_eq!(
        steps,
        ["backup", "old-terminated", "image", "launched", "running", "ssm-online", "command-sent", "repaired"]
    );
    // The clock: termination at 110 s, boot 20 s, agent 40 s, command 30 s, plus polling.
    let total = report.timeline.last().unwrap().at_ms;
    assert!((200_000..260_000).contains(&total), "{total} ms");
}

#[tokio::test(start_paused = true)]
async fn the_same_event_twice_and_the_state_change_still_launch_one_replacement() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(100));
    let config = Config::default();
    let (first, second) = (warning(&old), state_change(&old, "shutting-down"));
    let (a, b) = tokio::join!(run(&cloud, &config, &first), run(&cloud, &config, &second));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.replacement, b.replacement);
    let again = run(&cloud, &config, &state_change(&old, "terminated")).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone);
    assert_eq!(again.replacement, a.replacement);
    assert_eq!(replacements(&cloud, &old).len(), 1);
    assert_eq!(cloud.instances().len(), 2, "the old instance and one replacement");
}

#[tokio::test(start_paused = true)]
async fn termination_later_than_the_wait_fails_without_launching_and_the_retry_relaunches() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(400));
    let report = failed(run(&cloud, &Config::default(), &warning(&old)).await);
    assert!(
        report.reason.as_deref().unwrap().starts_with("the old instance to terminate: not after 240 s"),
        "{report:?}"
    );
    assert!(replacements(&cloud, &old).is_empty());

    let report = run(&cloud, &Config::default(), &state_change(&old, "terminated")).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    assert_eq!(replacements(&cloud, &old).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_agent_that_never_comes_online_fails_the_flow_and_the_retry_resumes() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(10));
    cloud.agents_never_online();
    let report = failed(run(&cloud, &Config::default(), &warning(&old)).await);
    assert!(
        report.reason.as_deref().unwrap().starts_with("the SSM agent to come online: not after 300 s"),
        "{report:?}"
    );
    assert!(cloud.commands().is_empty());
    assert_eq!(replacements(&cloud, &old).len(), 1, "the replacement stays: it is the node now");
}

#[tokio::test(start_paused = true)]
async fn a_failed_command_fails_the_invocation_and_the_retry_sends_it_again() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(10));
    cloud.command_results(vec![CommandState::Failed {
        ssm_status: "Failed".into(),
        exit_code: 17,
        output: "log lines\n{\"result\":\"failed\",\"step\":\"etcd\",\"message\":\"cannot move the etcd member\"}"
            .into(),
        error: String::new(),
    }]);
    let report = failed(run(&cloud, &Config::default(), &warning(&old)).await);
    assert!(
        report
            .reason
            .as_deref()
            .unwrap()
            .starts_with("the repair reported failed at step etcd: cannot move the etcd member"),
        "{report:?}"
    );

    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Resumed);
    assert_eq!(cloud.commands().len(), 2);
    assert_eq!(replacements(&cloud, &old).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_repair_that_changed_the_ip_exits_3_and_counts_as_healthy() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(10));
    cloud.command_results(vec![CommandState::Failed {
        ssm_status: "Failed".into(),
        exit_code: 3,
        output: "{\"result\":\"repaired\",\"step\":\"verify\",\"old_ip\":\"10.0.1.10\",\"new_ip\":\"10.0.1.77\"}"
            .into(),
        error: String::new(),
    }]);
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    assert_eq!(report.command.unwrap().result.unwrap()["new_ip"], "10.0.1.77");
    // A retry sees that repair as done.
    let again = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone);
    assert_eq!(cloud.commands().len(), 1);
}

#[test]
fn the_verdict_comes_from_the_result_line() {
    use lifeboat_core::relaunch::repair_verdict;
    let failed = |code, output: &str| CommandState::Failed {
        ssm_status: "Failed".into(),
        exit_code: code,
        output: output.into(),
        error: String::new(),
    };
    assert!(repair_verdict(&CommandState::Success { output: "{\"result\":\"ok\"}".into() }).1.is_ok());
    assert!(repair_verdict(&CommandState::Success { output: String::new() }).1.is_ok());
    assert!(repair_verdict(&failed(3, "{\"result\":\"repaired\"}")).1.is_ok());
    assert!(repair_verdict(&failed(1, "bash: line 1: curl: command not found")).1.is_err());
    assert!(repair_verdict(&failed(15, "{\"result\":\"failed\",\"step\":\"certificates\"}")).1.is_err());
    assert!(repair_verdict(&CommandState::InProgress).1.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_lambda_deadline_mid_flow_stops_the_waits_and_the_retry_converges() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(10));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(70);
    let result = relaunch::handle(
        Cloud { ec2: &cloud, ssm: &cloud, notifier: &cloud },
        &Config::default(),
        Timing::default(),
        &warning(&old),
        now(),
        Some(deadline),
    )
    .await;
    let report = failed(result);
    assert!(report.replacement.is_some(), "it launched before the deadline");
    assert!(cloud.commands().is_empty());

    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Resumed);
    assert_eq!(cloud.commands().len(), 1);
    assert_eq!(replacements(&cloud, &old).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn capacity_errors_move_through_the_types_then_to_on_demand() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(10));
    cloud.refuse_capacity(Some("m6i.large"), Some(Market::Spot), "InsufficientInstanceCapacity");
    cloud.refuse_capacity(Some("m5.large"), Some(Market::Spot), "SpotMaxPriceTooLow");
    let config = Config { instance_types: vec!["m6i.large".into(), "m5.large".into()], ..Config::default() };
    let report = run(&cloud, &config, &warning(&old)).await.unwrap();
    let tried: Vec<(&str, Market)> =
        report.launch_attempts.iter().map(|a| (a.instance_type.as_str(), a.market)).collect();
    assert_eq!(tried, [("m6i.large", Market::Spot), ("m5.large", Market::Spot)]);
    assert_eq!(report.market, Some(Market::OnDemand));
    let new = &replacements(&cloud, &old)[0];
    assert_eq!((new.instance_type.as_str(), new.spot), ("m6i.large", false));
}

#[tokio::test(start_paused = true)]
async fn no_capacity_anywhere_is_a_clear_failure_with_nothing_launched() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(10));
    cloud.refuse_capacity(None, Some(Market::Spot), "InsufficientInstanceCapacity");
    let config = Config { capacity: Capacity::Spot, ..Config::default() };
    let report = failed(run(&cloud, &config, &warning(&old)).await);
    assert_eq!(report.reason.as_deref(), Some("no capacity for node k8s-master in any allowed type and market (spot)"));
    assert!(replacements(&cloud, &old).is_empty());
}

#[tokio::test(start_paused = true)]
async fn without_the_kept_interface_the_replacement_takes_the_old_address() {
    let cloud = MemoryCloud::new();
    let old = cloud.add_node("k8s-master");
    // Backed up without preparing (say, an image from before lifeboat): the
    // interface goes with the instance.
    let old_instance = cloud.instances().into_iter().find(|i| i.id == old).unwrap();
    let spec = lifeboat_core::spec::LaunchSpec::from_instance(&old_instance).unwrap();
    cloud.add_image(
        "k8s-master-20261126-0100",
        lifeboat_core::model::ImageState::Available,
        Some(now()),
        &[("lifeboat:node", "k8s-master")],
    );
    assert_eq!(spec.interface_id, None);
    cloud.terminate_in(&old, Duration::from_secs(10));
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert!(matches!(report.network, Some(Network::Address { .. })), "{:?}", report.network);
    assert_eq!(report.same_ip, Some(true));
}

#[tokio::test(start_paused = true)]
async fn unmanaged_unknown_and_running_state_changes_are_acknowledged_and_launch_nothing() {
    let cloud = MemoryCloud::new();
    let web = cloud.add_instance(InstanceState::Running, &[("Name", "web")]);
    for event in [warning(&web), warning("i-0000000000000dead"), state_change(&web, "running")] {
        let report = run(&cloud, &Config::default(), &event).await.unwrap();
        assert_eq!(report.outcome, Outcome::Ignored, "{report:?}");
    }
    assert_eq!(cloud.instances().len(), 1);
    assert!(!cloud.calls().iter().any(|c| c == "RunInstances" || c == "CreateImage"));
}

#[tokio::test(start_paused = true)]
async fn a_rebalance_recommendation_takes_a_backup_and_never_relaunches() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    let event = json!({"version": "0", "id": "r", "detail-type": "EC2 Instance Rebalance Recommendation",
        "source": "aws.ec2", "time": "2026-11-26T13:31:55Z", "region": "eu-west-1", "resources": [],
        "detail": {"instance-id": old}});
    let report = run(&cloud, &Config::default(), &event).await.unwrap();
    assert_eq!(report.outcome, Outcome::BackupTaken);
    assert_eq!(report.backup.unwrap().name.as_deref(), Some("k8s-master-rebalance-20261126-1331"));
    assert!(replacements(&cloud, &old).is_empty());
    assert!(!cloud.calls().iter().any(|c| c == "RunInstances"));
}

#[tokio::test(start_paused = true)]
async fn a_manual_restore_refuses_a_live_node_and_relaunches_a_dead_one() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    let restore = json!({"action": "restore", "node": "k8s-master"});
    let report = failed(run(&cloud, &Config::default(), &restore).await);
    assert!(report.reason.as_deref().unwrap().contains("terminate it first"), "{report:?}");
    cloud.terminate_in(&old, Duration::ZERO);
    let report = run(&cloud, &Config::default(), &restore).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    assert_eq!(replacements(&cloud, &old).len(), 1);
}

#[test]
fn bad_events_are_rejected_with_the_reason() {
    for (event, expected) in [
        (json!({"action": "restore"}), "missing field `node`"),
        (json!({"action": "reboot", "node": "k8s-master"}), "unknown action \"reboot\""),
        (
            json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-26T01:00:00Z", "detail": {}}),
            "got detail-type \"Scheduled Event\"",
        ),
        (
            json!({"detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2", "time": "2026-11-26T01:00:00Z", "detail": {}}),
            "missing field `instance-id`",
        ),
        (
            json!({"detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2", "time": "yyyy-mm-ddThh:mm:ssZ", "detail": {"instance-id": "i-1"}}),
            "not an EventBridge event",
        ),
        (
            json!({"detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2", "time": "2026-11-26T01:00:00Z", "detail": {"instance-id": "ami-1"}}),
            "is not an instance id",
        ),
    ] {
        let err = relaunch::parse_event(&event, now()).unwrap_err();
        assert!(err.to_string().contains(expected), "{event}: {err}");
    }
}

// --- Restore drills -----------------------------------------------------------

fn drill(keep: bool) -> Value {
    json!({"action": "test-restore", "node": "k8s-master", "keep": keep})
}

fn clones(cloud: &MemoryCloud) -> Vec<Instance> {
    cloud.instances().into_iter().filter(|i| i.tags.contains_key(relaunch::DRILL_OF)).collect()
}

#[tokio::test(start_paused = true)]
async fn a_healthy_drill_passes_on_a_new_ip_in_quarantine_and_cleans_up() {
    let cloud = MemoryCloud::new();
    let node = prepared_node(&cloud).await;
    let node_before = cloud.instances().into_iter().find(|i| i.id == node).unwrap();
    let config = Config { drill_security_group: Some("sg-0drill".into()), ..Config::default() };
    let report = run(&cloud, &config, &drill(false)).await.unwrap();
    assert_eq!(report.outcome, Outcome::DrillPassed);
    let clone = &clones(&cloud)[0];
    assert_eq!(report.replacement.as_deref(), Some(clone.id.as_str()));
    assert_eq!(clone.state, InstanceState::Terminated, "cleaned up");
    assert_eq!(report.same_ip, Some(false));
    assert!(!clone.tags.contains_key("lifeboat:node"), "a clone is never a node");
    assert!(!clone.tags.contains_key(REPLACES));
    assert!(
        matches!(&report.network, Some(Network::Address { private_ip: None, security_group_ids, .. }) if security_group_ids == &["sg-0drill"])
    );
    // The repair ran in quarantine, then the health check; both on the clone.
    assert_eq!(cloud.command_args(), [vec!["--quarantine".to_string()], vec!["k8s-master".to_string()]]);
    assert!(cloud.commands().iter().all(|(instance, _)| *instance == clone.id));
    // The real node is untouched.
    assert_eq!(cloud.instances().into_iter().find(|i| i.id == node).unwrap(), node_before);
    let steps: Vec<&str> = report.timeline.iter().map(|s| s.step).collect();
    assert_eq!(
        steps,
        [
            "image",
            "launched",
            "running",
            "ssm-online",
            "command-sent",
            "repaired",
            "command-sent",
            "healthy",
            "cleaned-up"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_drill_fails_and_still_cleans_up() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    cloud.command_results(vec![
        CommandState::Failed {
            ssm_status: "Failed".into(),
            exit_code: 3,
            output: "{\"result\":\"repaired\"}".into(),
            error: String::new(),
        },
        CommandState::Failed {
            ssm_status: "Failed".into(),
            exit_code: 1,
            output: "{\"result\":\"failed\",\"step\":\"health\",\"readyz\":false,\"message\":\"node k8s-master\"}"
                .into(),
            error: String::new(),
        },
    ]);
    let report = failed(run(&cloud, &Config::default(), &drill(false)).await);
    assert!(report.reason.as_deref().unwrap().starts_with("the clone is not healthy"), "{report:?}");
    assert_eq!(clones(&cloud)[0].state, InstanceState::Terminated);
}

#[tokio::test(start_paused = true)]
async fn a_drill_whose_clone_never_reaches_ssm_fails_and_cleans_up() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    cloud.agents_never_online();
    let report = failed(run(&cloud, &Config::default(), &drill(false)).await);
    assert!(report.reason.as_deref().unwrap().starts_with("the SSM agent to come online"), "{report:?}");
    assert_eq!(clones(&cloud)[0].state, InstanceState::Terminated);
    assert!(cloud.commands().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_drill_that_cannot_launch_fails_with_nothing_left_running() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    cloud.refuse_capacity(None, None, "InsufficientInstanceCapacity");
    let report = failed(run(&cloud, &Config::default(), &drill(false)).await);
    assert!(report.reason.as_deref().unwrap().starts_with("no capacity"), "{report:?}");
    assert!(clones(&cloud).is_empty());
    assert_eq!(report.launch_attempts.len(), 2, "spot, then on-demand");
}

#[tokio::test(start_paused = true)]
async fn a_kept_drill_clone_stays_running() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    let report = run(&cloud, &Config::default(), &drill(true)).await.unwrap();
    assert_eq!(report.outcome, Outcome::DrillPassed);
    assert_eq!(clones(&cloud)[0].state, InstanceState::Running);
}

// --- Out of order -------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_state_change_before_the_warning_and_a_warning_after_termination_launch_once() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(30));
    let first = run(&cloud, &Config::default(), &state_change(&old, "shutting-down")).await.unwrap();
    assert_eq!(first.outcome, Outcome::Relaunched);
    // The warning arrives late, after the instance is gone.
    let late = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(late.outcome, Outcome::AlreadyDone);
    assert_eq!(replacements(&cloud, &old).len(), 1);
    assert_eq!(cloud.commands().len(), 1);
    assert_eq!(cloud.images().iter().filter(|i| i.tags["lifeboat:kind"] == "final").count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_warning_for_an_instance_already_terminated_relaunches_without_a_final_backup() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    assert!(report.backup.is_none(), "no image can be made of a terminated instance");
    assert_eq!(report.same_ip, Some(true));
}

#[tokio::test(start_paused = true)]
async fn a_rebalance_then_the_warning_make_one_early_and_one_final_backup_and_one_relaunch() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    let rebalance = json!({"version": "0", "id": "r", "detail-type": "EC2 Instance Rebalance Recommendation",
        "source": "aws.ec2", "time": "2026-11-26T13:31:55Z", "region": "eu-west-1", "resources": [],
        "detail": {"instance-id": old}});
    run(&cloud, &Config::default(), &rebalance).await.unwrap();
    cloud.terminate_in(&old, Duration::from_secs(100));
    run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    run(&cloud, &Config::default(), &rebalance).await.unwrap();
    let kinds: Vec<String> = cloud.images().iter().map(|i| i.tags["lifeboat:kind"].clone()).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "rebalance").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "final").count(), 1, "{kinds:?}");
    assert_eq!(replacements(&cloud, &old).len(), 1);
}

// --- Notifications ------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn relaunches_failures_and_drills_are_notified_and_nothing_else() {
    let topic = "arn:aws:sns:eu-west-1:123456789012:lifeboat";
    let config = Config { notify_topic_arn: Some(topic.into()), ..Config::default() };
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(10));
    let report = run(&cloud, &config, &warning(&old)).await.unwrap();
    assert_eq!(report.notification.as_deref(), Some("sent"));
    run(&cloud, &config, &warning(&old)).await.unwrap(); // already done: no news
    let web = cloud.add_instance(InstanceState::Running, &[("Name", "web")]);
    run(&cloud, &config, &warning(&web)).await.unwrap(); // ignored: no news
    run(&cloud, &config, &drill(false)).await.unwrap();
    cloud.refuse_capacity(None, None, "InsufficientInstanceCapacity");
    failed(run(&cloud, &config, &drill(false)).await);

    let sent = cloud.notifications();
    let subjects: Vec<&str> = sent.iter().map(|(_, subject, _)| subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "lifeboat: k8s-master relaunched",
            "lifeboat: restore drill of k8s-master passed",
            "lifeboat: restore drill of k8s-master FAILED"
        ]
    );
    assert!(sent.iter().all(|(t, _, _)| t == topic));
    let message: Value = serde_json::from_str(&sent[0].2).unwrap();
    assert_eq!(message["outcome"], "relaunched");
    assert_eq!(message["old_instance"], old.as_str());
}

#[tokio::test(start_paused = true)]
async fn a_failed_notification_is_reported_and_the_outcome_stands() {
    let config =
        Config { notify_topic_arn: Some("arn:aws:sns:eu-west-1:123456789012:lifeboat".into()), ..Config::default() };
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(10));
    cloud.fail_next("Publish", "AuthorizationError", 1);
    let report = run(&cloud, &config, &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    assert!(report.notification.unwrap().starts_with("failed: Publish failed: AuthorizationError"));
}
