//! Faults, deterministic: throttling on a share of all calls, transient 5xx,
//! and a Lambda killed mid-flow. Each case checks the final state in the
//! emulator, which must be the same as without the faults.

use lifeboat_tests::runtime::invoke;
use lifeboat_tests::{Emulator, fixture, warning};
use serde_json::{Value, json};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(180);

fn throttle(emu: &Emulator, seed: u64) {
    emu.control(
        "POST",
        "/lifeboat/faults",
        &json!({"operation": "*", "code": "RequestLimitExceeded", "rate": 0.3, "seed": seed}),
    );
}

async fn image_names(emu: &Emulator) -> Vec<String> {
    let out = emu.ec2().await.describe_images().owners("self").send().await.unwrap();
    let mut names: Vec<String> = out.images().iter().filter_map(|i| i.name().map(str::to_string)).collect();
    names.sort();
    names
}

#[tokio::test]
async fn scheduled_backup_under_throttling_and_5xx_backs_up_every_node() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    for node in ["etcd-a", "k8s-master", "k8s-worker"] {
        emu.launch(&subnet, &[("lifeboat:node", node)]).await;
    }
    emu.control(
        "POST",
        "/lifeboat/faults",
        &json!({"operation": "CreateImage", "code": "InternalError", "status": 500, "count": 2}),
    );
    throttle(&emu, 11);
    let run =
        invoke("scheduled-backup", &emu.function_env("scheduled-backup"), &[fixture("scheduled-backup.json")], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    let outcomes: Vec<&str> =
        report["nodes"].as_array().unwrap().iter().map(|n| n["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["created", "created", "created"], "{report}");
    emu.control("DELETE", "/lifeboat/faults", &Value::Null);
    assert_eq!(
        image_names(&emu).await,
        ["etcd-a-20261126-0100", "k8s-master-20261126-0100", "k8s-worker-20261126-0100"]
    );
    assert!(emu.calls("CreateImage") > 3, "faulted calls were retried");
}

#[tokio::test]
async fn the_relaunch_under_throttling_ends_like_without_it() {
    let emu = Emulator::new();
    let node = emu.backed_up_node().await;
    emu.ec2().await.terminate_instances().instance_ids(&node.instance).send().await.unwrap();
    throttle(&emu, 5);
    let run =
        invoke("interruption-handler", &emu.function_env("interruption-handler"), &[warning(&node.instance)], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "relaunched", "{report}");
    emu.control("DELETE", "/lifeboat/faults", &Value::Null);
    let new = emu.replacements(&node.instance).await;
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].private_ip_address(), Some(node.private_ip.as_str()));
    let root = new[0].root_device_name().unwrap();
    assert_eq!(emu.volume_at(new[0].instance_id().unwrap(), root).await, Some(node.root_volume.clone()));
    let commands = emu.ssm().await.list_commands().send().await.unwrap();
    assert_eq!(commands.commands().len(), 1);
}

#[tokio::test]
async fn a_handler_killed_mid_flow_is_finished_by_the_retry() {
    let emu = Emulator::new();
    let node = emu.backed_up_node().await;
    let (old, ip) = (node.instance.clone(), node.private_ip.clone());
    emu.ec2().await.terminate_instances().instance_ids(&old).send().await.unwrap();
    // The replacement's agent takes a minute: the first invocation launches,
    // then is killed (as a Lambda timeout would) while it waits.
    emu.control("POST", "/lifeboat/config", &json!({"ssm_online_seconds": 60}));
    let run = invoke(
        "interruption-handler",
        &emu.function_env("interruption-handler"),
        &[warning(&old)],
        Duration::from_secs(6),
    );
    assert!(run.invocations.is_empty(), "killed before answering");
    assert_eq!(emu.replacements(&old).await.len(), 1, "it had launched");
    assert_eq!(emu.calls("SendCommand"), 0);

    emu.control("POST", "/lifeboat/config", &json!({"ssm_online_seconds": 0}));
    let run = invoke("interruption-handler", &emu.function_env("interruption-handler"), &[warning(&old)], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "resumed", "{report}");
    let new = emu.replacements(&old).await;
    assert_eq!(new.len(), 1, "the retry launched nothing new");
    assert_eq!(new[0].private_ip_address(), Some(ip.as_str()));
    assert_eq!(emu.calls("SendCommand"), 1);
    assert_eq!(emu.calls("RunInstances"), 2, "the test's own launch and one relaunch");
    // A kill that lands during the root swap leaves the retry to ask again
    // with the same token: one task, however many requests.
    let tasks = emu.root_tasks(new[0].instance_id().unwrap()).await;
    assert_eq!(tasks.len(), 1, "one swap");
    assert_eq!(tasks[0].task_state().unwrap().as_str(), "succeeded");
}

/// Planted IAM faults: each function runs under its role's policy as the
/// stack deploys it (tests/emulator/iam.py), so a policy that loses a tag
/// key, a statement or a condition value the flow needs fails it.
mod planted_iam_faults {
    use super::*;

    /// The statement `sid` of a policy, to edit.
    fn statement<'a>(statements: &'a mut [Value], sid: &str) -> &'a mut Value {
        statements.iter_mut().find(|s| s["Sid"] == sid).unwrap_or_else(|| panic!("no statement {sid}"))
    }

    fn denied(emu: &Emulator, action: &str) -> Vec<Value> {
        emu.iam_denials().into_iter().filter(|d| d["action"] == action).collect()
    }

    /// The relaunch ends on the refused result, with the refusal named.
    fn relaunch_fails(emu: &Emulator, old: &str) -> String {
        emu.interrupt(old, "terminate", 2.0);
        let run = invoke("interruption-handler", &emu.function_env("interruption-handler"), &[warning(old)], TIMEOUT);
        let answer = format!("{:?}", run.invocations);
        assert!(!answer.contains(r#""outcome": String("relaunched")"#), "{answer}");
        assert!(answer.contains("UnauthorizedOperation"), "{answer}\n{}", run.stderr);
        answer
    }

    #[tokio::test]
    async fn a_tag_key_lost_from_the_replacement_state_grant_fails_the_fallback() {
        // The grant as it was: lifeboat:state-source alone. A swap EC2
        // refuses makes the flow record lifeboat:state-as-of and
        // lifeboat:root-image as well.
        let emu = Emulator::new();
        let node = emu.backed_up_node().await;
        emu.plant_policy("interruption-handler", |statements| {
            statement(statements, "TagReplacementsState")["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"] =
                json!(["lifeboat:state-source"]);
        });
        emu.refuse_next_old_root_swap();
        relaunch_fails(&emu, &node.instance);
        let refused = denied(&emu, "ec2:CreateTags");
        assert!(refused.iter().any(|d| d["resource"].as_str().unwrap().contains(":instance/i-")), "{refused:?}");
    }

    #[tokio::test]
    async fn a_statement_lost_refuses_the_launch_on_the_kept_interface() {
        let emu = Emulator::new();
        let node = emu.backed_up_node().await;
        emu.plant_policy("interruption-handler", |statements| {
            statements.retain(|s| s["Sid"] != "LaunchOnExistingInterfaces");
        });
        relaunch_fails(&emu, &node.instance);
        let refused = denied(&emu, "ec2:RunInstances");
        // The kept interface, an existing one (not a new `network-interface/*`).
        assert!(
            refused.iter().all(|d| d["resource"].as_str().unwrap().contains(":network-interface/eni-")),
            "{refused:?}"
        );
        assert!(emu.replacements(&node.instance).await.is_empty());
    }

    #[tokio::test]
    async fn a_condition_value_lost_from_the_pass_role_grant_refuses_the_launch() {
        let emu = Emulator::new();
        let node = emu.backed_up_node().await;
        emu.plant_policy("interruption-handler", |statements| {
            statement(statements, "PassOnlyTheNodeRole")["Condition"]["StringEquals"]["iam:PassedToService"] =
                json!(["ec2.amazonaws.com.cn"]);
        });
        relaunch_fails(&emu, &node.instance);
        let refused = denied(&emu, "iam:PassRole");
        assert_eq!(refused[0]["resource"], format!("arn:aws:iam::{}:role/k8s-node", emu.account), "{refused:?}");
    }

    #[tokio::test]
    async fn without_the_rootless_grant_a_replacement_without_a_root_is_not_ended() {
        let emu = Emulator::new();
        let node = emu.backed_up_node().await;
        emu.plant_policy("interruption-handler", |statements| {
            statements.retain(|s| s["Sid"] != "TerminateRootlessReplacements");
        });
        emu.control(
            "POST",
            "/lifeboat/config",
            &json!({"root_task_failures": [{"detached": true, "failing_seconds": 1}]}),
        );
        relaunch_fails(&emu, &node.instance);
        assert_eq!(denied(&emu, "ec2:TerminateInstances").len(), 1, "{:?}", emu.iam_denials());
    }

    #[tokio::test]
    async fn without_the_drill_result_grant_no_drill_is_recorded_on_the_image() {
        let emu = Emulator::new();
        let node = emu.backed_up_node().await;
        emu.plant_policy("interruption-handler", |statements| statements.retain(|s| s["Sid"] != "TagDrillResults"));
        emu.command_results(&[
            &emu.drill_repaired(),
            r#"{"result":"ok","step":"health","readyz":true,"etcd":true,"node_ready":true}"#,
        ]);
        let drill = json!({"action": "test-restore", "node": "k8s-master", "keep": false});
        invoke("interruption-handler", &emu.function_env("interruption-handler"), &[drill], TIMEOUT);
        let refused = denied(&emu, "ec2:CreateTags");
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(refused[0]["resource"].as_str().unwrap().ends_with(&format!(":image/{}", node.image)));
        let image = emu.ec2().await.describe_images().image_ids(&node.image).send().await.unwrap();
        let tags = lifeboat_tests::tag_pairs(image.images()[0].tags());
        assert!(!tags.iter().any(|(k, _)| k == "lifeboat:drill"), "{tags:?}");
    }
}

/// What the emulator cannot judge under IAM is let through and recorded
/// (tests/emulator/iam.py); after a backup, a relaunch, a drill and a prune
/// in one account, this is the whole list (docs/testing.md's emulator table).
#[tokio::test]
async fn what_iam_enforcement_cannot_judge_is_this_short_list() {
    let emu = Emulator::new();
    let node = emu.backed_up_node().await;
    emu.command_results(&[r#"{"result":"ok","step":"verify","guard":"released","node":"k8s-master"}"#]);
    emu.interrupt(&node.instance, "terminate", 2.0);
    let handler = emu.function_env("interruption-handler");
    let run = invoke("interruption-handler", &handler, &[warning(&node.instance)], TIMEOUT);
    assert_eq!(run.invocations[0].clone().response()["outcome"], "relaunched");
    emu.command_results(&[
        &emu.drill_repaired(),
        r#"{"result":"ok","step":"health","readyz":true,"etcd":true,"node_ready":true}"#,
    ]);
    let drill = json!({"action": "test-restore", "node": "k8s-master", "keep": false});
    let run = invoke("interruption-handler", &handler, &[drill], TIMEOUT);
    assert_eq!(run.invocations[0].clone().response()["outcome"], "drill-passed");
    let run = invoke("retention-pruner", &emu.function_env("retention-pruner"), &[json!({})], TIMEOUT);
    run.invocations[0].clone().response();

    assert_eq!(emu.iam_denials(), Vec::<Value>::new());
    let mut unjudged: Vec<String> = emu
        .iam_not_evaluated()
        .iter()
        .map(|n| format!("{} {} {}: {}", n["identity"], n["action"], n["resource_type"], n["why"]).replace('"', ""))
        .collect();
    unjudged.sort();
    unjudged.dedup();
    assert_eq!(unjudged, Vec::<String>::new());

    // Every call each function made is one its ports declare (the contract
    // manifest infra/check_stack.py grants from): the declarations are not
    // read from the source, so they are held to what the code really calls.
    let calls = emu.iam_calls();
    for (function, ports) in lifeboat_core::contract::ports() {
        let declared = lifeboat_core::contract::operations(ports);
        let made = calls.get(function).unwrap_or_else(|| panic!("{function} made no call: {calls:?}"));
        let undeclared: Vec<&String> = made.iter().filter(|op| !declared.contains(&op.as_str())).collect();
        assert!(undeclared.is_empty(), "{function} called {undeclared:?}, which its ports do not declare");
    }
    assert!(calls["interruption-handler"].iter().any(|op| op == "ec2:CreateReplaceRootVolumeTask"), "{calls:?}");
}
