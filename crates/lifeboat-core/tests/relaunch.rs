//! interruption-handler's flow against the in-memory cloud, on tokio's paused
//! clock: every wait is real code, none takes real time. The disks and their
//! fallbacks are in disks.rs, drills in drill.rs.

mod common;

use common::*;
use lifeboat_core::config::{Capacity, Config};
use lifeboat_core::memory::MemoryCloud;
use lifeboat_core::model::{ErrorKind, ImageState, InstanceState, Refusal};
use lifeboat_core::ports::{CommandState, Describe, Market, Network, Script};
use lifeboat_core::relaunch::{self, Guard, Outcome, Source, client_token};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn a_warning_relaunches_the_node_once_on_the_same_ip_and_checks_it() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    let old_instance = cloud.instance(&old).unwrap();
    cloud.terminate_in(&old, Duration::from_secs(110));

    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    let new = replacements(&cloud, &old);
    assert_eq!(new.len(), 1);
    let new = &new[0];
    let replacement = report.replacement.as_ref().unwrap();
    assert_eq!(replacement.id, new.id);
    assert_eq!(new.state, InstanceState::Running);
    assert_eq!(new.private_ip, old_instance.private_ip);
    assert_eq!(replacement.same_ip, Some(true));
    let eni = old_instance.primary_interface.as_ref().unwrap().interface_id.clone();
    assert_eq!(replacement.network, Some(Network::Interface(eni.clone())));
    assert_eq!(new.primary_interface.as_ref().unwrap().interface_id, eni);
    assert!(new.spot);
    assert_eq!(new.instance_type, "m6i.large");
    // The old instance's own tags, plus where it came from.
    assert_eq!(new.tags["team"], "platform");
    assert_eq!(new.tags["lifeboat:node"], "k8s-master");
    let state = report.state.as_ref().unwrap();
    assert_eq!(new.tags["lifeboat:restored-from"], state.image_id.clone().unwrap());
    // Launched from the scheduled backup (the final one is still pending),
    // then given the old disks.
    let scheduled = cloud.images().into_iter().find(|i| i.tags["lifeboat:kind"] == "scheduled").unwrap();
    assert_eq!(state.image_id.as_deref(), Some(scheduled.id.as_str()));
    assert_eq!(state.source, Source::OldVolumes);
    let final_backup = report.backup.as_ref().unwrap();
    assert_eq!(final_backup.name.as_deref(), Some(format!("k8s-master-final-{old}").as_str()));
    // Guarded from boot, released by the repair.
    assert!(cloud.user_data(&new.id).unwrap().contains("ConditionPathExists=/run/lifeboat/released"));
    assert_eq!(report.guard, Some(Guard::Released));
    // One command, to the replacement only.
    let commands = cloud.commands();
    assert_eq!(commands.len(), 1);
    assert_eq!(
        (commands[0].instance_id.as_str(), commands[0].comment.as_str()),
        (new.id.as_str(), "lifeboat repair k8s-master")
    );
    assert_eq!(
        (commands[0].script, commands[0].args.clone()),
        (Script::Repair, vec!["--timeout".to_string(), "480".to_string()])
    );
    assert_eq!(
        steps(&report),
        [
            "backup",
            "old-terminated",
            "old-volumes",
            "image",
            "launched",
            "running",
            "root-swap-started",
            "root-swapped",
            "prepared",
            "ssm-online",
            "command-sent",
            "repaired",
            "released"
        ]
    );
    // The clock: termination at 110 s, volumes released 5 s later, boot 20 s,
    // swap 30 s, agent 40 s, command 30 s, each noticed within 3 s.
    let at = |step: &str| report.timeline.iter().find(|s| s.step == step).unwrap().at_ms;
    assert!((110_000..=113_000).contains(&at("old-terminated")), "{}", at("old-terminated"));
    assert!(
        report.duration_ms <= 110_000 + 5_000 + 20_000 + 30_000 + 40_000 + 31_000 + 6 * 3_000,
        "{}",
        report.duration_ms
    );
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
    assert_eq!(a.replacement.unwrap().id, b.replacement.unwrap().id);
    let again = run(&cloud, &config, &state_change(&old, "terminated")).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone);
    assert_eq!(replacements(&cloud, &old).len(), 1);
    assert_eq!(cloud.instances().len(), 2, "the old instance and one replacement");
    let new = &replacements(&cloud, &old)[0];
    assert_eq!(cloud.root_tasks_of(&new.id).len(), 1, "one root swap");
}

#[tokio::test(start_paused = true)]
async fn two_nodes_interrupted_together_recover_in_parallel() {
    let cloud = MemoryCloud::new();
    let a = prepared(&cloud, "etcd-a").await;
    let b = prepared(&cloud, "etcd-b").await;
    cloud.terminate_in(&a, Duration::from_secs(30));
    cloud.terminate_in(&b, Duration::from_secs(30));
    let config = Config::default();
    let started = tokio::time::Instant::now();
    let (wa, wb) = (warning(&a), warning(&b));
    let (ra, rb) = tokio::join!(run(&cloud, &config, &wa), run(&cloud, &config, &wb));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!((ra.outcome, rb.outcome), (Outcome::Relaunched, Outcome::Relaunched));
    assert_eq!((replacements(&cloud, &a).len(), replacements(&cloud, &b).len()), (1, 1));
    // Together they take as long as one.
    assert!(started.elapsed() < Duration::from_millis(ra.duration_ms.max(rb.duration_ms) + 3_000));
}

#[tokio::test(start_paused = true)]
async fn termination_later_than_the_wait_fails_without_launching_and_the_retry_relaunches() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(400));
    let report = failed(run(&cloud, &Config::default(), &warning(&old)).await);
    assert!(
        report.reason.as_deref().unwrap().starts_with("waiting for the old instance to terminate: not after 240 s"),
        "{report:?}"
    );
    assert!(replacements(&cloud, &old).is_empty());

    tokio::time::advance(Duration::from_secs(200)).await;
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
        report.reason.as_deref().unwrap().starts_with("waiting for the SSM agent to come online: not after 300 s"),
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
            .starts_with("the script reported failed at step etcd: cannot move the etcd member"),
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
        output: "{\"result\":\"repaired\",\"step\":\"verify\",\"old_ip\":\"10.0.1.10\",\"new_ip\":\"10.0.1.77\",\"guard\":\"absent\"}".into(),
        error: String::new(),
    }]);
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    assert_eq!(report.command.as_ref().unwrap().result.as_ref().unwrap()["new_ip"], "10.0.1.77");
    assert_eq!(report.guard, Some(Guard::NotConfirmed), "the repair found no guard");
    assert!(steps(&report).contains(&"guard-not-confirmed"));
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
async fn a_command_past_its_timeout_is_a_failure_not_a_wait_forever() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    cloud.slow_commands(Duration::from_secs(3600));
    let report = failed(run(&cloud, &Config::default(), &warning(&old)).await);
    assert!(report.reason.as_deref().unwrap().contains("ended TimedOut"), "{report:?}");
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
    assert_eq!(report.replacement.unwrap().market, Some(Market::OnDemand));
    let new = &replacements(&cloud, &old)[0];
    assert_eq!((new.instance_type.as_str(), new.spot), ("m6i.large", false));
}

// --- The fallback to on-demand, recorded ----------------------------------------

const FALLBACK: &str = "lifeboat:market-fallback";
const FALLBACK_REASON: &str = "lifeboat:market-fallback-reason";

#[tokio::test(start_paused = true)]
async fn a_fallback_to_on_demand_is_recorded_on_the_replacement_with_when_and_why() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(10));
    cloud.refuse_capacity(Some("m6i.large"), Some(Market::Spot), "InsufficientInstanceCapacity");
    cloud.refuse_capacity(Some("m5.large"), Some(Market::Spot), "SpotMaxPriceTooLow");
    let config = Config { instance_types: vec!["m6i.large".into(), "m5.large".into()], ..Config::default() };
    let report = run(&cloud, &config, &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    let new = &replacements(&cloud, &old)[0];
    assert!(!new.spot);
    let at = chrono::DateTime::parse_from_rfc3339(&new.tags[FALLBACK]).unwrap();
    // On the flow's clock: the invocation's time, plus the wait for the
    // old instance's termination.
    let after = at.signed_duration_since(now()).num_seconds();
    assert!((0..=600).contains(&after), "{at} is {after} s after the invocation");
    assert_eq!(new.tags[FALLBACK_REASON], "m6i.large InsufficientInstanceCapacity, m5.large SpotMaxPriceTooLow");
    assert_eq!(new.tags["team"], "platform", "the user's tags are still copied");
    let summary = report.summary();
    assert!(
        summary.contains(
            "Market: ON-DEMAND, spot refused (m6i.large, m5.large); the instance is tagged lifeboat:market-fallback."
        ),
        "{summary}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_spot_pool_that_ends_the_launch_is_the_fallbacks_reason() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(10));
    cloud.fail_spot_launches();
    run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    let ended = cloud.instance_by_client_token(&client_token(&old, 0)).await.unwrap().unwrap();
    let running = cloud.instance_by_client_token(&client_token(&old, 1)).await.unwrap().unwrap();
    assert!(!ended.tags.contains_key(FALLBACK), "the spot launch is no fallback");
    assert_eq!(running.tags[FALLBACK_REASON], "m6i.large terminated at launch");
    assert!(running.tags.contains_key(FALLBACK));
}

#[tokio::test(start_paused = true)]
async fn on_demand_by_the_deployments_choice_records_no_fallback() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(10));
    let config = Config { capacity: Capacity::OnDemand, ..Config::default() };
    let report = run(&cloud, &config, &warning(&old)).await.unwrap();
    assert!(!report.summary().contains("Market:"), "{}", report.summary());
    let new = &replacements(&cloud, &old)[0];
    assert!(!new.spot);
    assert!(!new.tags.contains_key(FALLBACK) && !new.tags.contains_key(FALLBACK_REASON), "{:?}", new.tags);
}

#[tokio::test(start_paused = true)]
async fn the_fallback_record_is_not_carried_on_and_the_backups_keep_recording_spot() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(10));
    cloud.refuse_capacity(None, Some(Market::Spot), "InsufficientInstanceCapacity");
    run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    let fallback = replacements(&cloud, &old)[0].clone();
    assert!(fallback.tags.contains_key(FALLBACK));

    // The on-demand node's scheduled backup records the spot it is meant for.
    let later = now() + chrono::Duration::hours(1);
    lifeboat_core::backup::handle(&cloud, &Config::default(), &json!({"node": "k8s-master"}), later).await.unwrap();
    let scheduled = cloud
        .images()
        .into_iter()
        .find(|i| i.tags.get("lifeboat:source-instance") == Some(&fallback.id))
        .expect("a backup of the fallback node");
    assert_eq!(scheduled.tags["lifeboat:spec-market"], "spot");
    cloud.finish_images();

    // Spot is back when the on-demand node is lost (a stop, say).
    cloud.clear_refusals();
    cloud.terminate_in(&fallback.id, Duration::from_secs(10));
    let report = run(&cloud, &Config::default(), &state_change(&fallback.id, "shutting-down")).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched, "{:?}", steps(&report));
    let back = &replacements(&cloud, &fallback.id)[0];
    assert!(back.spot);
    assert!(!back.tags.contains_key(FALLBACK) && !back.tags.contains_key(FALLBACK_REASON), "{:?}", back.tags);
    // Its final image, made at the loss, records spot too.
    let final_image = cloud
        .images()
        .into_iter()
        .find(|i| i.tags["lifeboat:kind"] == "final" && i.tags["lifeboat:source-instance"] == fallback.id)
        .expect("the fallback node's final image");
    assert_eq!(final_image.tags["lifeboat:spec-market"], "spot");
}

#[test]
fn a_fallbacks_reason_too_long_for_a_tag_is_cut_to_256_characters() {
    let refused: Vec<String> = (0..40).map(|i| format!("m{i}.large InsufficientInstanceCapacity")).collect();
    let tags = relaunch::fallback_tags(now(), &refused);
    assert_eq!(tags[FALLBACK], "2026-11-26T13:42:07Z");
    let why = &tags[FALLBACK_REASON];
    assert_eq!(why.chars().count(), 256);
    assert!(why.starts_with("m0.large InsufficientInstanceCapacity, m1.large") && why.ends_with('…'), "{why}");
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

#[test]
fn client_tokens_are_unique_per_attempt_and_generation_and_never_cut() {
    let config = Config { instance_types: (0..20).map(|i| format!("m{i}.large")).collect(), ..Config::default() };
    let attempts = relaunch::launch_plan("m6i.large", &config, false).len();
    assert_eq!(attempts, 40);
    let mut tokens = std::collections::BTreeSet::new();
    for base in ["i-0123456789abcdef0", "i-0123456789abcdef1", "drill-ami-0123456789abcdef0-1795960000123456789"] {
        for attempt in 0..attempts {
            let token = client_token(base, attempt);
            assert!(token.len() <= 64, "{token}");
            assert!(tokens.insert(token));
        }
    }
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
async fn a_rebalance_recommendation_takes_an_early_backup_and_never_relaunches() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    let report = run(&cloud, &Config::default(), &rebalance(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::BackupTaken);
    assert_eq!(report.backup.unwrap().name.as_deref(), Some("k8s-master-early-20261126-1331"));
    assert!(replacements(&cloud, &old).is_empty());
    assert!(!cloud.calls().iter().any(|c| c == "RunInstances"));
}

#[tokio::test(start_paused = true)]
async fn a_spot_stop_or_hibernation_is_not_a_relaunch() {
    for action in ["stop", "hibernate"] {
        let cloud = MemoryCloud::new();
        let old = prepared_node(&cloud).await;
        cloud.stop_in(&old, Duration::from_secs(120));
        let report = run(&cloud, &Config::default(), &warning_to(&old, action)).await.unwrap();
        assert_eq!(report.outcome, Outcome::Stopping, "{action}");
        assert!(report.reason.as_deref().unwrap().contains("restarts it itself"), "{report:?}");
        assert_eq!(report.backup.as_ref().unwrap().name.as_deref(), Some("k8s-master-early-20261126-1342"));
        assert!(report.subject().is_none(), "nothing to alarm anyone about");
        tokio::time::advance(Duration::from_secs(200)).await;
        let stopped = cloud.instance(&old).unwrap();
        assert_eq!(stopped.state, InstanceState::Stopped);
        assert!(!stopped.volumes.is_empty() && stopped.primary_interface.is_some(), "kept by a stop");
        assert!(!cloud.calls().iter().any(|c| c == "RunInstances"));
    }
    // Without final backups configured, nothing at all.
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    let config = Config { final_backup: false, ..Config::default() };
    let report = run(&cloud, &config, &warning_to(&old, "stop")).await.unwrap();
    assert_eq!((report.outcome, report.backup.is_none()), (Outcome::Stopping, true));
}

#[tokio::test(start_paused = true)]
async fn a_manual_restore_refuses_a_live_node_and_relaunches_a_dead_one() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    let restore = json!({"action": "restore", "node": "k8s-master"});
    let before = cloud.calls().len();
    let report = failed(run(&cloud, &Config::default(), &restore).await);
    assert!(report.reason.as_deref().unwrap().contains("terminate it first"), "{report:?}");
    assert_eq!(cloud.calls()[before..], ["DescribeInstances"], "refused after one look");
    cloud.terminate_in(&old, Duration::ZERO);
    let report = run(&cloud, &Config::default(), &restore).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    assert_eq!(report.state.unwrap().source, Source::OldVolumes);
    assert_eq!(replacements(&cloud, &old).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_restore_cut_short_resumes_its_replacement_when_retried_and_a_second_one_finds_it_done() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    let restore = json!({"action": "restore", "node": "k8s-master"});
    // The first invocation launches, then runs out of time (Lambda retries it).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(35);
    let report = failed(run_until(&cloud, &Config::default(), &restore, deadline.into()).await);
    assert_eq!(report.outcome, Outcome::Failed);
    let first = replacements(&cloud, &old);
    assert_eq!(first.len(), 1);
    // The retry finds the node's live instance is that replacement: it resumes it.
    let report = run(&cloud, &Config::default(), &restore).await.unwrap();
    assert_eq!(report.outcome, Outcome::Resumed, "{report:?}");
    assert_eq!(replacements(&cloud, &old).iter().map(|i| &i.id).collect::<Vec<_>>(), [&first[0].id]);
    // The same restore once more: done already, nothing launched or sent.
    let commands = cloud.commands().len();
    let report = run(&cloud, &Config::default(), &restore).await.unwrap();
    assert_eq!(report.outcome, Outcome::AlreadyDone, "{report:?}");
    assert_eq!(replacements(&cloud, &old).len(), 1);
    assert_eq!(cloud.commands().len(), commands);
}

#[tokio::test(start_paused = true)]
async fn a_relaunch_from_the_state_change_alone_has_everything_the_dead_instance_no_longer_shows() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    let alive = cloud.instance(&old).unwrap();
    cloud.terminate_in(&old, Duration::ZERO);
    // The warning was lost; EC2 describes the dead instance without its
    // network, volumes and instance profile.
    let dead = cloud.instance(&old).unwrap();
    assert_eq!((dead.instance_profile_arn.as_ref(), dead.private_ip.as_ref()), (None, None));
    let report = run(&cloud, &Config::default(), &state_change(&old, "terminated")).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    let new = &replacements(&cloud, &old)[0];
    assert_eq!(new.instance_profile_arn, alive.instance_profile_arn, "else its agent never reaches SSM");
    assert_eq!(new.key_name, alive.key_name);
    assert_eq!(
        (new.http_tokens.clone(), new.http_put_response_hop_limit),
        (alive.http_tokens, alive.http_put_response_hop_limit)
    );
    assert_eq!(new.private_ip, alive.private_ip);
}

#[tokio::test(start_paused = true)]
async fn a_late_event_for_an_instance_ec2_forgot_finds_its_node_through_its_backups() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    tokio::time::advance(Duration::from_secs(3700)).await;
    assert!(cloud.instance(&old).is_none(), "EC2 forgets a terminated instance after about an hour");
    let report = run(&cloud, &Config::default(), &state_change(&old, "terminated")).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    assert!(steps(&report).contains(&"forgotten"));
    assert_eq!(report.node.as_deref(), Some("k8s-master"));
    assert_eq!(report.state.unwrap().source, Source::OldVolumes);
    assert_eq!(replacements(&cloud, &old).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_relaunch_it_cannot_do_is_notified_not_acknowledged() {
    let topic = "arn:aws:sns:eu-west-1:123456789012:lifeboat";
    let config = Config { notify_topic_arn: Some(topic.into()), ..Config::default() };
    let cloud = MemoryCloud::new();
    let old = cloud.add_node("k8s-master");
    // A node without any backup.
    cloud.terminate_in(&old, Duration::ZERO);
    let report = failed(run(&cloud, &config, &state_change(&old, "terminated")).await);
    assert_eq!(report.reason.as_deref(), Some("node k8s-master has no available backup image to launch from"));
    assert_eq!(cloud.notifications()[0].subject, "lifeboat: relaunch of k8s-master FAILED");
}

/// A node backed up before lifeboat prepared anything (an image made by
/// another tool, with the spec lifeboat records): its interface goes with
/// the instance. Returns (instance, its private IP).
fn unprepared_node(cloud: &MemoryCloud) -> (String, Option<String>) {
    let old = cloud.add_node("k8s-master");
    let instance = cloud.instance(&old).unwrap();
    backup_image(cloud, &instance, "k8s-master-20261126-0100", chrono::Utc::now() - chrono::Duration::hours(12));
    (old, instance.private_ip)
}

fn backup_image(
    cloud: &MemoryCloud,
    of: &lifeboat_core::model::Instance,
    name: &str,
    at: chrono::DateTime<chrono::Utc>,
) {
    let spec = lifeboat_core::spec::LaunchSpec::from_instance(of).unwrap();
    let (image, _) = cloud.add_image(name, ImageState::Available, Some(at), &[("lifeboat:node", "k8s-master")]);
    for (k, v) in spec.to_tags() {
        cloud.set_tag(&image, &k, &v);
    }
}

#[tokio::test(start_paused = true)]
async fn the_address_still_in_use_right_after_the_termination_is_waited_out() {
    let cloud = MemoryCloud::new();
    let (old, ip) = unprepared_node(&cloud);
    cloud.terminate_in(&old, Duration::ZERO);
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert!(steps(&report).contains(&"address-in-use"), "{:?}", steps(&report));
    let new = &replacements(&cloud, &old)[0];
    assert_eq!(new.private_ip, ip);
    assert!(matches!(report.replacement.unwrap().network, Some(Network::Address { .. })));
}

#[tokio::test(start_paused = true)]
async fn a_retry_whose_launch_differs_finds_the_instance_its_token_made() {
    let cloud = MemoryCloud::new();
    let (old, _) = unprepared_node(&cloud);
    let alive = cloud.instance(&old).unwrap();
    cloud.terminate_in(&old, Duration::ZERO);
    // The first invocation launches, then runs out of time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(35);
    failed(run_until(&cloud, &Config::default(), &warning(&old), deadline.into()).await);
    let first = replacements(&cloud, &old);
    assert_eq!(first.len(), 1);
    // A newer backup has become available, and tag filters do not show the
    // replacement yet: the retry's launch has other parameters.
    backup_image(&cloud, &alive, "k8s-master-20261126-1300", chrono::Utc::now());
    cloud.lag_tag_filters(Duration::from_secs(60));
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert!(steps(&report).contains(&"launched-before"), "{:?}", steps(&report));
    assert_eq!(report.replacement.unwrap().id, first[0].id);
    tokio::time::advance(Duration::from_secs(120)).await;
    assert_eq!(replacements(&cloud, &old).len(), 1, "one launch, whatever the retry's parameters");
}

#[tokio::test(start_paused = true)]
async fn comments_fit_ssm_whatever_the_node_name() {
    let cloud = MemoryCloud::new();
    let node = "n".repeat(114);
    let old = prepared(&cloud, &node).await;
    cloud.terminate_in(&old, Duration::ZERO);
    run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    let commands = cloud.commands();
    assert_eq!(commands.len(), 1);
    assert!(commands[0].comment.len() <= 100, "{}", commands[0].comment);
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
        (warning_to("i-1", "reboot"), "is not terminate, stop or hibernate"),
    ] {
        let err = relaunch::parse_event(&event, now()).unwrap_err();
        assert!(err.to_string().contains(expected), "{event}: {err}");
    }
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
    assert_eq!(report.replacement.unwrap().same_ip, Some(true));
}

#[tokio::test(start_paused = true)]
async fn a_rebalance_then_the_warning_make_one_early_and_one_final_backup_and_one_relaunch() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    run(&cloud, &Config::default(), &rebalance(&old)).await.unwrap();
    cloud.terminate_in(&old, Duration::from_secs(100));
    run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    run(&cloud, &Config::default(), &rebalance(&old)).await.unwrap();
    let kinds: Vec<String> = cloud.images().iter().map(|i| i.tags["lifeboat:kind"].clone()).collect();
    assert_eq!(kinds.iter().filter(|k| *k == "early").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "final").count(), 1, "{kinds:?}");
    assert_eq!(replacements(&cloud, &old).len(), 1);
}

// --- Notifications ------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn relaunches_failures_and_drills_are_notified_and_nothing_else() {
    let topic = "arn:aws:sns:eu-west-1:123456789012:lifeboat";
    let config = Config {
        notify_topic_arn: Some(topic.into()),
        drill_security_group: Some("sg-0drill".into()),
        drill_instance_profile: Some("lifeboat-drill".into()),
        ..Config::default()
    };
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
    let subjects: Vec<&str> = sent.iter().map(|n| n.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "lifeboat: k8s-master relaunched",
            "lifeboat: restore drill of k8s-master passed",
            "lifeboat: restore drill of k8s-master FAILED"
        ]
    );
    assert!(sent.iter().all(|n| n.topic_arn == topic));
    // A summary a person reads first, then the report.
    let (summary, json) = sent[0].message.split_once("\n\n{").unwrap();
    assert!(summary.starts_with("k8s-master was relaunched as i-"), "{summary}");
    assert!(summary.contains("State: the old instance's own disks"), "{summary}");
    let message: Value = serde_json::from_str(&format!("{{{json}")).unwrap();
    assert_eq!(message["outcome"], "relaunched");
    assert_eq!(message["old"]["id"], old.as_str());
}

#[tokio::test(start_paused = true)]
async fn a_failed_notification_is_reported_and_the_outcome_stands() {
    let config =
        Config { notify_topic_arn: Some("arn:aws:sns:eu-west-1:123456789012:lifeboat".into()), ..Config::default() };
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(10));
    cloud.fail_next("Publish", ErrorKind::Refused(Refusal::Authorization), "AuthorizationError", 1);
    let report = run(&cloud, &config, &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    assert!(report.notification.unwrap().starts_with("failed: Publish failed: AuthorizationError"));
}

// --- A pool that ends the launch at once ---------------------------------------

#[tokio::test(start_paused = true)]
async fn a_spot_launch_ec2_ends_at_once_is_a_dead_pool_and_on_demand_comes_next() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(10));
    // The volumes' customer managed key does not let the spot service in.
    cloud.fail_spot_launches();
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(report.outcome, Outcome::Relaunched);
    assert_eq!(report.state.as_ref().unwrap().source, Source::OldVolumes);
    let tried: Vec<(&str, Market)> =
        report.launch_attempts.iter().map(|a| (a.instance_type.as_str(), a.market)).collect();
    assert_eq!(tried, [("m6i.large", Market::Spot)]);
    let error = &report.launch_attempts[0].error;
    assert!(error.ends_with("was terminated at launch: Client.InternalError: Client error on launch"), "{error}");
    assert!(steps(&report).contains(&"terminated-at-launch"), "{:?}", steps(&report));
    // One launch per attempt, each with its own token; the second runs.
    let ended = cloud.instance_by_client_token(&client_token(&old, 0)).await.unwrap().unwrap();
    let running = cloud.instance_by_client_token(&client_token(&old, 1)).await.unwrap().unwrap();
    assert_eq!((ended.state, ended.spot), (InstanceState::Terminated, true));
    assert_eq!(ended.state_reason.as_ref().unwrap().code, "Client.InternalError");
    assert_eq!((running.state, running.spot), (InstanceState::Running, false));
    assert_eq!(report.replacement.as_ref().unwrap().id, running.id);
    assert_eq!(report.replacement.unwrap().market, Some(Market::OnDemand));
    // EC2 notifies the ended launch's termination too: the relaunch is done.
    let late = run(&cloud, &Config::default(), &state_change(&ended.id, "terminated")).await.unwrap();
    assert_eq!(late.outcome, Outcome::AlreadyDone, "{:?}", steps(&late));
    assert_eq!(replacements(&cloud, &old).len(), 2);
    assert_eq!(cloud.instances().iter().filter(|i| i.state == InstanceState::Running).count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_never_launches_into_the_pool_that_ended_a_launch_at_once() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::from_secs(10));
    cloud.fail_spot_launches();
    // Spot only: the one pool ends the launch, the invocation fails.
    let spot_only = Config { capacity: Capacity::Spot, ..Config::default() };
    let report = failed(run(&cloud, &spot_only, &warning(&old)).await);
    assert_eq!(report.launch_attempts.len(), 1);
    // The deployment allows on demand; the event is retried.
    let report = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert!(steps(&report).contains(&"pool-skipped"), "{:?}", steps(&report));
    let tried: Vec<(&str, Market)> =
        report.launch_attempts.iter().map(|a| (a.instance_type.as_str(), a.market)).collect();
    assert_eq!(tried, [("m6i.large", Market::Spot)], "the earlier ended launch, reported again");
    let spot_launches = cloud.instances().iter().filter(|i| i.spot && i.tags.contains_key("lifeboat:replaces")).count();
    assert_eq!(spot_launches, 1, "no second launch into the dead pool");
    assert_eq!(report.replacement.unwrap().market, Some(Market::OnDemand));
    assert_eq!(report.state.unwrap().source, Source::OldVolumes);
    let again = run(&cloud, &Config::default(), &warning(&old)).await.unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyDone);
}

#[test]
fn bare_metal_types_are_kept_out_of_the_plan_only_when_the_root_is_swapped() {
    let types = ["m5.metal", "m6i.large", "c7i.metal-24xl", "mac2.metal", "u-6tb1.metal"];
    let config = Config {
        instance_types: types.iter().map(|t| t.to_string()).collect(),
        capacity: Capacity::OnDemand,
        ..Config::default()
    };
    let planned =
        |swap| -> Vec<String> { relaunch::launch_plan("m5.metal", &config, swap).into_iter().map(|p| p.0).collect() };
    // Mac metal instances can replace their root (replace-root.html).
    assert_eq!(planned(true), ["m6i.large", "mac2.metal"]);
    assert_eq!(planned(false), types);
    assert!(relaunch::launch_plan("m5.metal", &Config::default(), true).is_empty());
}
