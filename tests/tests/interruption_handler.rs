//! interruption-handler end to end: the real binary, the real SDK, the
//! emulator; the old instance is terminated by the test as AWS would.

use lifeboat_tests::runtime::{Run, invoke};
use lifeboat_tests::{Emulator, fixture, warning};
use serde_json::{Value, json};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(120);

/// A backed-up node plus an older backup of it; returns (instance, its
/// private IP, the newest image).
async fn backed_up_node(emu: &Emulator) -> (String, String, String) {
    let (node, ip, newest) = emu.backed_up_node().await;
    let ec2 = emu.ec2().await;
    let older = ec2.create_image().instance_id(&node).name("k8s-master-20261120-0100").send().await.unwrap();
    let older = older.image_id().unwrap().to_string();
    let tag = aws_sdk_ec2::types::Tag::builder().key("lifeboat:node").value("k8s-master").build();
    ec2.create_tags().resources(&older).tags(tag).send().await.unwrap();
    emu.control(
        "POST",
        &format!("/lifeboat/images/{older}"),
        &json!({"state": "available", "creation_date": "2026-11-20T01:00:00Z"}),
    );
    (node, ip, newest)
}

/// Runs the handler on `events` while the test terminates `old` after two
/// seconds, as EC2 does after its warning.
async fn handle_interruption(emu: &Emulator, old: &str, events: Vec<Value>) -> Run {
    let env = emu.env();
    let handler = tokio::task::spawn_blocking(move || invoke("interruption-handler", &env, &events, TIMEOUT));
    tokio::time::sleep(Duration::from_secs(2)).await;
    emu.ec2().await.terminate_instances().instance_ids(old).send().await.unwrap();
    handler.await.unwrap()
}

#[tokio::test]
async fn a_warning_relaunches_the_node_once_on_its_ip_from_the_newest_backup() {
    let emu = Emulator::new();
    let (old, ip, newest) = backed_up_node(&emu).await;
    let run = handle_interruption(&emu, &old, vec![warning(&old), warning(&old)]).await;
    assert_eq!(run.invocations.len(), 2, "{}", run.stderr);
    let mut answers = run.invocations.into_iter();
    let first = answers.next().unwrap().response();
    let second = answers.next().unwrap().response();

    let new = emu.replacements(&old).await;
    assert_eq!(new.len(), 1, "{new:?}");
    let new = &new[0];
    let new_id = new.instance_id().unwrap();
    assert_eq!(new.private_ip_address(), Some(ip.as_str()));
    assert_eq!(new.image_id(), Some(newest.as_str()));
    let tags = lifeboat_tests::tag_pairs(new.tags());
    for (k, v) in [("lifeboat:node", "k8s-master"), ("team", "platform"), ("lifeboat:restored-from", newest.as_str())] {
        assert!(tags.contains(&(k.to_string(), v.to_string())), "{k}={v} missing from {tags:?}");
    }
    assert_eq!(first["outcome"], "relaunched", "{first}");
    assert_eq!(first["replacement"], new_id);
    assert_eq!(first["same_ip"], true);
    assert_eq!(first["backup"]["name"], format!("k8s-master-final-{old}"));
    assert_eq!(second["outcome"], "already-done", "{second}");

    // One command, to the replacement only.
    assert_eq!(emu.calls("SendCommand"), 1);
    let commands = emu.ssm().await.list_commands().send().await.unwrap();
    assert_eq!(commands.commands().len(), 1, "{:?}", commands.commands());
    assert_eq!(commands.commands()[0].instance_ids(), [new_id.to_string()]);
    assert_eq!(emu.calls("RunInstances"), 2, "the test's own launch of the node, and the one relaunch");
}

#[tokio::test]
async fn the_relaunch_is_published_to_the_topic() {
    let emu = Emulator::new();
    let topic = emu.sns().await.create_topic().name("lifeboat").send().await.unwrap();
    let topic = topic.topic_arn().unwrap().to_string();
    let (old, _, _) = backed_up_node(&emu).await;
    let mut env = emu.env();
    env.push(("LIFEBOAT_NOTIFY_TOPIC_ARN".into(), topic.clone()));
    emu.ec2().await.terminate_instances().instance_ids(&old).send().await.unwrap();
    let run = invoke("interruption-handler", &env, &[warning(&old)], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["notification"], "sent", "{report}");
    let sent = emu.control("GET", "/lifeboat/notifications", &Value::Null);
    let sent = sent.as_array().unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["topic_arn"], topic.as_str());
    assert_eq!(sent[0]["subject"], "lifeboat: k8s-master relaunched");
    let message: Value = serde_json::from_str(sent[0]["message"].as_str().unwrap()).unwrap();
    assert_eq!(message["replacement"], report["replacement"]);
}

#[tokio::test]
async fn an_instance_that_is_not_a_node_is_acknowledged_and_nothing_launches() {
    let emu = Emulator::new();
    let web = emu.launch(&emu.subnet().await, &[("Name", "web")]).await;
    let launched = emu.calls("RunInstances");
    let run = invoke("interruption-handler", &emu.env(), &[warning(&web)], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "ignored");
    assert!(report["reason"].as_str().unwrap().contains("has no lifeboat:node tag"), "{report}");
    assert_eq!(emu.calls("RunInstances"), launched, "only the test's own launch");
    assert_eq!(emu.calls("CreateImage") + emu.calls("SendCommand"), 0);
}

#[tokio::test]
async fn refused_spot_capacity_falls_back_to_on_demand() {
    let emu = Emulator::new();
    let (old, ip, _) = backed_up_node(&emu).await;
    emu.control(
        "POST",
        "/lifeboat/faults",
        &json!({"operation": "RunInstances", "code": "InsufficientInstanceCapacity", "status": 500, "count": 100,
                "body_contains": "InstanceMarketOptions.MarketType=spot"}),
    );
    let run = handle_interruption(&emu, &old, vec![warning(&old)]).await;
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "relaunched", "{report}");
    assert_eq!(report["market"], "on-demand");
    assert_eq!(report["launch_attempts"][0]["market"], "spot");
    let new = emu.replacements(&old).await;
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].instance_lifecycle(), None, "on-demand instances have no lifecycle");
    assert_eq!(new[0].private_ip_address(), Some(ip.as_str()));
}

#[tokio::test]
async fn a_malformed_event_is_an_error_and_launches_nothing() {
    let emu = Emulator::new();
    let events = vec![
        fixture("aws-docs-samples/spot-interruption-warning.json"),
        json!({"action": "restore"}),
        fixture("scheduled-backup.json"),
    ];
    let run = invoke("interruption-handler", &emu.env(), &events, TIMEOUT);
    let messages: Vec<String> = run.invocations.into_iter().map(|i| i.error_message()).collect();
    assert_eq!(messages.len(), 3, "{}", run.stderr);
    assert!(messages[0].contains("not an EventBridge event"), "{}", messages[0]);
    assert!(messages[1].contains("missing field `node`"), "{}", messages[1]);
    assert!(messages[2].contains("got detail-type \"Scheduled Event\""), "{}", messages[2]);
    assert_eq!(emu.calls("DescribeInstances") + emu.calls("RunInstances"), 0);
}

#[tokio::test]
async fn a_restore_drill_checks_a_quarantined_clone_on_a_new_ip_and_removes_it() {
    let emu = Emulator::new();
    let (node, ip, newest) = backed_up_node(&emu).await;
    let node_before = emu.instance(&node).await;
    let drill = json!({"action": "test-restore", "node": "k8s-master", "keep": false});
    let run = invoke("interruption-handler", &emu.env(), &[drill], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "drill-passed", "{report}");

    let filter = aws_sdk_ec2::types::Filter::builder().name("tag:lifeboat:drill-of").values("k8s-master").build();
    let out = emu.ec2().await.describe_instances().filters(filter).send().await.unwrap();
    let clones: Vec<_> = out.reservations().iter().flat_map(|r| r.instances()).collect();
    assert_eq!(clones.len(), 1);
    let clone = clones[0];
    assert_eq!(clone.state().unwrap().name().unwrap().as_str(), "terminated");
    assert_eq!(clone.image_id(), Some(newest.as_str()));
    assert!(!lifeboat_tests::tag_pairs(clone.tags()).iter().any(|(k, _)| k == "lifeboat:node"));
    let clone_ip = report["private_ip"].as_str().unwrap();
    assert_ne!(clone_ip, ip, "the clone has an IP of its own");

    // The repair went to the clone in quarantine, then the health check.
    let commands = emu.ssm().await.list_commands().send().await.unwrap();
    let sent: Vec<(Vec<String>, String)> = commands
        .commands()
        .iter()
        .map(|c| {
            (c.instance_ids().to_vec(), c.parameters().unwrap()["commands"][0].lines().next().unwrap().to_string())
        })
        .collect();
    let clone_id = clone.instance_id().unwrap().to_string();
    assert_eq!(
        sent,
        [
            (vec![clone_id.clone()], "bash -s -- '--quarantine' <<'LIFEBOAT_SCRIPT'".to_string()),
            (vec![clone_id], "bash -s -- 'k8s-master' <<'LIFEBOAT_SCRIPT'".to_string()),
        ]
    );

    // The real node is untouched.
    let node_after = emu.instance(&node).await;
    assert_eq!(node_after.state(), node_before.state());
    assert_eq!(node_after.private_ip_address(), node_before.private_ip_address());
    assert_eq!(lifeboat_tests::tag_pairs(node_after.tags()), lifeboat_tests::tag_pairs(node_before.tags()));
    assert_eq!(emu.calls("TerminateInstances"), 1);
}
