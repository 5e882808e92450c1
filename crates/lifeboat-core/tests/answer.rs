//! What the functions answer Lambda: a failure no retry can mend is a
//! response (not retried) counted by PermanentFailure; one a retry may mend
//! is an error Lambda retries; each names its kind.

mod common;

use common::*;
use lifeboat_core::answer::{Answer, PERMANENT_FAILURE};
use lifeboat_core::config::Config;
use lifeboat_core::memory::MemoryCloud;
use lifeboat_core::model::ErrorKind;
use lifeboat_core::{backup, prune};
use serde_json::{Value, json};
use std::time::Duration;

fn counts_a_permanent_failure(answer: &Answer) -> bool {
    answer.metrics(now()).iter().any(|line| {
        let v: Value = serde_json::from_str(line).unwrap();
        v[PERMANENT_FAILURE] == 1.0 && v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] == PERMANENT_FAILURE
    })
}

#[tokio::test(start_paused = true)]
async fn a_restore_of_a_live_node_is_answered_with_its_report_not_retried() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    let answer = Answer::of(run(&cloud, &Config::default(), &json!({"action": "restore", "node": "k8s-master"})).await);
    let Answer::Refused { error_type, message, response } = &answer else { panic!("{answer:?}") };
    assert_eq!(*error_type, "NodeAlive");
    assert!(message.contains("terminate it first"), "{message}");
    assert_eq!(response["outcome"], "failed");
    assert_eq!(response["failure"]["kind"], "node-alive");
    assert!(counts_a_permanent_failure(&answer));
}

#[tokio::test(start_paused = true)]
async fn a_drill_the_deployment_gives_no_identity_is_answered_not_configured_and_launches_nothing() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    let before = cloud.instances().len();
    let drill = json!({"action": "test-restore", "node": "k8s-master"});
    let answer = Answer::of(run(&cloud, &Config::default(), &drill).await);
    let Answer::Refused { error_type, message, .. } = &answer else { panic!("{answer:?}") };
    assert_eq!(*error_type, "NotConfigured");
    assert!(message.contains("LIFEBOAT_DRILL_INSTANCE_PROFILE"), "{message}");
    assert!(counts_a_permanent_failure(&answer));
    assert_eq!(cloud.instances().len(), before, "no clone");
}

#[tokio::test(start_paused = true)]
async fn a_node_without_a_backup_is_answered_no_image() {
    let topic = "arn:aws:sns:eu-west-1:123456789012:lifeboat";
    let config = Config { notify_topic_arn: Some(topic.into()), ..Config::default() };
    let cloud = MemoryCloud::new();
    let old = cloud.add_node("k8s-master");
    cloud.terminate_in(&old, Duration::ZERO);
    let answer = Answer::of(run(&cloud, &config, &state_change(&old, "terminated")).await);
    let Answer::Refused { error_type, response, .. } = &answer else { panic!("{answer:?}") };
    assert_eq!(*error_type, "NoImage");
    assert_eq!(response["reason"], "node k8s-master has no available backup image to launch from");
    // The operator hears of it from the report on the topic, as before.
    assert_eq!(response["notification"], "sent");
    assert_eq!(cloud.notifications()[0].subject, "lifeboat: relaunch of k8s-master FAILED");
}

#[tokio::test(start_paused = true)]
async fn an_invalid_event_is_rejected_with_its_reason_and_no_call() {
    let cloud = MemoryCloud::new();
    let answer = Answer::of(run(&cloud, &Config::default(), &json!({"action": "restore"})).await);
    let Answer::Refused { error_type, response, .. } = &answer else { panic!("{answer:?}") };
    assert_eq!(*error_type, "InvalidEvent");
    assert_eq!(response["outcome"], "rejected");
    assert_eq!(response["error_type"], "InvalidEvent");
    assert!(response["reason"].as_str().unwrap().contains("missing field `node`"), "{response}");
    assert!(counts_a_permanent_failure(&answer));
    assert!(cloud.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failed_aws_call_is_an_error_lambda_retries() {
    let cloud = MemoryCloud::new();
    let old = prepared_node(&cloud).await;
    cloud.terminate_in(&old, Duration::ZERO);
    cloud.fail_next("DescribeInstances", ErrorKind::Throttled, "RequestLimitExceeded", 1);
    let answer = Answer::of(run(&cloud, &Config::default(), &warning(&old)).await);
    let Answer::Failed { error_type, message } = &answer else { panic!("{answer:?}") };
    assert_eq!(*error_type, "CloudError");
    assert!(message.contains("RequestLimitExceeded"), "{message}");
    assert!(!counts_a_permanent_failure(&answer));
}

#[tokio::test]
async fn a_backup_of_a_node_no_instance_carries_is_rejected() {
    let cloud = MemoryCloud::new();
    cloud.add_node("k8s-master");
    let result = backup::handle(&cloud, &Config::default(), &json!({"node": "k8s-worker"}), now()).await;
    let answer = Answer::of(result);
    let Answer::Refused { error_type, response, .. } = &answer else { panic!("{answer:?}") };
    assert_eq!(*error_type, "NodeNotFound");
    assert_eq!(response["reason"], "no instance carries the tag lifeboat:node=k8s-worker");
}

#[tokio::test]
async fn a_prune_that_cannot_list_is_an_error_lambda_retries() {
    let cloud = MemoryCloud::new();
    cloud.fail_next("DescribeImages", ErrorKind::Other, "InternalError", 1);
    let answer = Answer::of(prune::handle(&cloud, &Config::default(), &json!({}), now()).await);
    let Answer::Failed { error_type, .. } = &answer else { panic!("{answer:?}") };
    assert_eq!(*error_type, "DescribeFailed");
}

#[tokio::test]
async fn a_finished_run_is_its_report() {
    let cloud = MemoryCloud::new();
    let answer = Answer::of(prune::handle(&cloud, &Config::default(), &json!({"dry_run": true}), now()).await);
    let Answer::Done(report) = &answer else { panic!("{answer:?}") };
    assert_eq!(report["dry_run"], true);
    assert!(answer.metrics(now()).is_empty());
}
