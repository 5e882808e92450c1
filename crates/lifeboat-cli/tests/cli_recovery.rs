//! `lifeboat drill`, `restore` and `interrupt` end to end: the real
//! interruption-handler run by the emulator's Lambda, the tool following it
//! through AWS. The emulator runs no script on a node: the repair's and the
//! health check's result lines are queued.

use crate::support::{deploy, emulator, lifeboat, outputs, prepared_node};
use aws_sdk_fis::types::{
    CreateExperimentTemplateActionInput, CreateExperimentTemplateStopConditionInput,
    CreateExperimentTemplateTargetInput,
};
use lifeboat_tests::{Emulator, runtime, warning};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const REPAIRED: &str = r#"{"result":"repaired","step":"verify","guard":"released"}"#;
const HEALTHY: &str = r#"{"result":"ok","step":"health","readyz":true,"etcd":true,"node_ready":true}"#;

fn json_of(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drill_passes_and_status_then_shows_it() {
    let emu = emulator();
    let node = prepared_node(&emu, "k8s-master").await;
    deploy(&emu, &outputs(&emu)).await;
    // A drill's repair reports what the clone proved of its isolation.
    emu.command_results(&[&emu.drill_repaired(), HEALTHY]);

    let out = lifeboat(&emu).args(["drill", "--node", "k8s-master", "--json"]).output().unwrap();
    let report = json_of(&out);
    assert!(out.status.success(), "{report}");
    assert_eq!(report["outcome"], "drill-passed");
    let steps: Vec<&str> = report["timeline"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(steps.contains(&"healthy") && steps.contains(&"cleaned-up"), "{steps:?}");

    let status = lifeboat(&emu).args(["status", "--json"]).output().unwrap();
    let drill = &json_of(&status)["nodes"][0]["last_drill"];
    assert_eq!(drill["outcome"], "passed", "{drill}");
    assert_eq!(drill["image_id"], node.image.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_brings_a_lost_node_back_and_status_shows_the_relaunch() {
    let emu = emulator();
    let node = prepared_node(&emu, "k8s-master").await;
    deploy(&emu, &outputs(&emu)).await;
    emu.ec2().await.terminate_instances().instance_ids(&node.instance).send().await.unwrap();
    emu.command_results(&[REPAIRED]);

    let out = lifeboat(&emu).args(["restore", "--node", "k8s-master"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("on {} (the same private IP)", node.private_ip)), "{text}");
    assert!(text.contains("state: the old instance's own disks (nothing lost)"), "{text}");

    let status = json_of(&lifeboat(&emu).args(["status", "--json"]).output().unwrap());
    let relaunch = &status["nodes"][0]["last_relaunch"];
    assert_eq!(relaunch["replaces"], node.instance.as_str(), "{status}");
    assert_eq!(relaunch["state_source"], "old-volumes");
}

/// The stack's experiment template: the spot interruption of the instances
/// tagged with the node.
async fn experiment_template(emu: &Emulator, node: &str) -> String {
    let fis = aws_sdk_fis::Client::new(&emu.sdk_config().await);
    let target = CreateExperimentTemplateTargetInput::builder()
        .resource_type("aws:ec2:spot-instance")
        .resource_tags("lifeboat:node", node)
        .selection_mode("ALL")
        .build()
        .unwrap();
    let action = CreateExperimentTemplateActionInput::builder()
        .action_id("aws:ec2:send-spot-instance-interruptions")
        .parameters("durationBeforeInterruption", "PT2M")
        .targets("SpotInstances", "node")
        .build()
        .unwrap();
    let out = fis
        .create_experiment_template()
        .client_token(format!("lifeboat-{node}"))
        .description("lifeboat: interrupt the node")
        .role_arn(format!("arn:aws:iam::{}:role/lifeboat-fis", emu.account))
        .stop_conditions(CreateExperimentTemplateStopConditionInput::builder().source("none").build().unwrap())
        .targets("node", target)
        .actions("interrupt", action)
        .send()
        .await
        .unwrap();
    out.experiment_template().unwrap().id().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn interrupt_starts_the_experiment_and_times_the_recovery_to_a_healthy_node() {
    let emu = emulator();
    let node = prepared_node(&emu, "k8s-master").await;
    let mut outs = outputs(&emu);
    outs["InterruptionExperimentTemplateId"] = json!(experiment_template(&emu, "k8s-master").await);
    deploy(&emu, &outs).await;
    emu.command_results(&[REPAIRED]);

    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("lifeboat"));
    cmd.env_clear().envs(emu.operator_env()).env("AWS_EC2_METADATA_DISABLED", "true");
    let child = cmd
        .args(["interrupt", "--node", "k8s-master", "--yes", "--timeout", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    // EC2's and EventBridge's part, which the emulator does not play: once
    // the experiment runs, the instance is reclaimed and interruption-handler
    // gets the warning.
    let fis = aws_sdk_fis::Client::new(&emu.sdk_config().await);
    let deadline = Instant::now() + Duration::from_secs(30);
    while fis.list_experiments().send().await.unwrap().experiments().is_empty() {
        assert!(Instant::now() < deadline, "lifeboat interrupt started no experiment");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    emu.ec2().await.terminate_instances().instance_ids(&node.instance).send().await.unwrap();
    let run = runtime::invoke(
        "interruption-handler",
        &emu.function_env("interruption-handler"),
        &[warning(&node.instance)],
        Duration::from_secs(120),
    );
    let handled = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(handled["outcome"], "relaunched", "{handled}");

    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let replacement = handled["replacement"]["id"].as_str().unwrap();
    assert!(text.contains(&format!("k8s-master came back as {replacement} in ")), "{text}");
    assert!(text.contains("from the warning to a healthy control plane"), "{text}");
    assert!(text.contains("state: old-volumes as of "), "{text}");
    for step in ["warning", "terminated", "launched", "healthy"] {
        assert!(text.contains(step), "{step} not in:\n{text}");
    }
    // The operator's policy let every call through, and each was judged.
    assert_eq!(emu.iam_denials(), Vec::<serde_json::Value>::new());
    assert_eq!(emu.iam_not_evaluated(), Vec::<serde_json::Value>::new());
}
