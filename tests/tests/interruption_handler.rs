//! interruption-handler end to end: the real binary, the real SDK, the
//! emulator; EC2 interrupts the node as it does on AWS (the emulator's
//! /lifeboat/interrupt).

use lifeboat_tests::runtime::{Run, invoke};
use lifeboat_tests::{Emulator, Node, fixture, warning};
use serde_json::{Value, json};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(180);

/// What the repair prints on a healthy node that was guarded.
const REPAIRED: &str = r#"{"result":"ok","step":"verify","guard":"released","node":"k8s-master"}"#;

/// A backed-up node plus an older backup of it.
async fn backed_up_node(emu: &Emulator) -> Node {
    let node = emu.backed_up_node().await;
    let ec2 = emu.ec2().await;
    let older = ec2.create_image().instance_id(&node.instance).name("k8s-master-20261120-0100").send().await.unwrap();
    let older = older.image_id().unwrap().to_string();
    let tag = aws_sdk_ec2::types::Tag::builder().key("lifeboat:node").value("k8s-master").build();
    ec2.create_tags().resources(&older).tags(tag).send().await.unwrap();
    emu.control(
        "POST",
        &format!("/lifeboat/images/{older}"),
        &json!({"state": "available", "creation_date": "2026-11-20T01:00:00Z"}),
    );
    node
}

/// Runs the handler on `events`; EC2 terminates `old` two seconds after the
/// warning, as it does (two minutes) on AWS.
fn handle_interruption(emu: &Emulator, old: &str, events: Vec<Value>) -> Run {
    emu.interrupt(old, "terminate", 2.0);
    invoke("interruption-handler", &emu.function_env("interruption-handler"), &events, TIMEOUT)
}

#[tokio::test]
async fn a_warning_relaunches_the_node_once_on_its_own_disks_and_ip() {
    let emu = Emulator::new();
    let node = backed_up_node(&emu).await;
    // Data written after the 01:00 backup.
    let marker = aws_sdk_ec2::types::Tag::builder().key("written-after-the-backup").value("etcd revision 1042").build();
    emu.ec2().await.create_tags().resources(&node.root_volume).tags(marker).send().await.unwrap();
    emu.command_results(&[REPAIRED]);
    let run = handle_interruption(&emu, &node.instance, vec![warning(&node.instance), warning(&node.instance)]);
    assert_eq!(run.invocations.len(), 2, "{}", run.stderr);
    let mut answers = run.invocations.into_iter();
    let first = answers.next().unwrap().response();
    let second = answers.next().unwrap().response();

    let new = emu.replacements(&node.instance).await;
    assert_eq!(new.len(), 1, "{new:?}");
    let new_id = new[0].instance_id().unwrap();
    assert_eq!(new[0].private_ip_address(), Some(node.private_ip.as_str()));
    // The replacement's root volume is the old instance's root volume.
    let root_device = new[0].root_device_name().unwrap();
    assert_eq!(emu.volume_at(new_id, root_device).await.as_deref(), Some(node.root_volume.as_str()));
    assert_eq!(emu.volume_at(new_id, "/dev/sdf").await.as_deref(), Some(node.data_volume.as_str()));
    let root = emu.volume(&node.root_volume).await.unwrap();
    assert!(
        lifeboat_tests::tag_pairs(root.tags())
            .contains(&("written-after-the-backup".into(), "etcd revision 1042".into()))
    );
    let user_data = emu.user_data(new_id).await;
    assert!(user_data.contains("ConditionPathExists=/run/lifeboat/released"), "guarded from boot");
    // The guard may release itself on exactly the old root, data and address.
    assert!(user_data.contains(&format!("ROOT_VOLUME='{}'", node.root_volume)), "{user_data}");
    assert!(user_data.contains(&format!("DATA_VOLUMES='{}=/dev/sdf'", node.data_volume)));
    assert!(user_data.contains(&format!("PRIVATE_IP='{}'", node.private_ip)));
    let tags = lifeboat_tests::tag_pairs(new[0].tags());
    for (k, v) in [("lifeboat:node", "k8s-master"), ("team", "platform"), ("lifeboat:state-source", "old-volumes")] {
        assert!(tags.contains(&(k.to_string(), v.to_string())), "{k}={v} missing from {tags:?}");
    }
    assert!(!tags.iter().any(|(k, _)| k.starts_with("lifeboat:market-fallback")), "back on spot: {tags:?}");
    assert!(new[0].instance_lifecycle().is_some(), "a spot instance");
    assert_eq!(first["outcome"], "relaunched", "{first}");
    assert_eq!(first["replacement"]["id"], new_id);
    assert_eq!(first["replacement"]["same_ip"], true);
    assert_eq!(first["state"]["source"], "old-volumes");
    assert_eq!(first["guard"], "released");
    assert_eq!(first["backup"]["name"], format!("k8s-master-final-{}", node.instance));
    let steps: Vec<&str> = first["timeline"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(steps.contains(&"root-swapped") && steps.contains(&"data-attached"), "{steps:?}");
    assert_eq!(second["outcome"], "already-done", "{second}");
    // One swap, one command, to the replacement only.
    assert_eq!(emu.calls("CreateReplaceRootVolumeTask"), 1);
    assert_eq!(emu.calls("SendCommand"), 1);
    let commands = emu.ssm().await.list_commands().send().await.unwrap();
    assert_eq!(commands.commands()[0].instance_ids(), [new_id.to_string()]);
    assert_eq!(emu.calls("RunInstances"), 2, "the test's own launch of the node, and the one relaunch");
}

#[tokio::test]
async fn a_refused_swap_of_the_old_root_takes_the_final_images_root() {
    let emu = Emulator::new();
    let node = backed_up_node(&emu).await;
    // The final image is still pending at the launch (the replacement boots
    // the backup) and available soon after; EC2 refuses the old root.
    emu.refuse_next_old_root_swap();
    emu.command_results(&[REPAIRED]);
    let run = handle_interruption(&emu, &node.instance, vec![warning(&node.instance)]);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "relaunched", "{report}");
    let ec2 = emu.ec2().await;
    let final_name = format!("k8s-master-final-{}", node.instance);
    let images = ec2.describe_images().owners("self").send().await.unwrap();
    let final_image = images.images().iter().find(|i| i.name() == Some(final_name.as_str())).unwrap();
    let final_id = final_image.image_id().unwrap();
    assert_eq!(report["state"]["source"], "final-image", "{report}");
    assert_eq!(report["state"]["image_id"], final_id);
    assert!(report["state"]["fallback"].as_str().unwrap().contains("refused"), "{report}");

    let new = emu.replacements(&node.instance).await;
    assert_eq!(new.len(), 1);
    let new_id = new[0].instance_id().unwrap();
    let tags = lifeboat_tests::tag_pairs(new[0].tags());
    assert!(tags.contains(&("lifeboat:state-source".into(), "final-image".into())), "{tags:?}");
    assert!(!tags.contains(&("lifeboat:restored-from".into(), final_id.into())), "booted the backup: {tags:?}");
    // The final image's root, restored by EC2, replaced the backup's.
    let tasks = ec2.describe_replace_root_volume_tasks().send().await.unwrap();
    let task = tasks.replace_root_volume_tasks().iter().find(|t| t.instance_id() == Some(new_id)).unwrap();
    assert_eq!(task.image_id(), Some(final_id));
    assert_eq!(task.task_state().map(|s| s.as_str()), Some("succeeded"));
    let root = emu.volume_at(new_id, new[0].root_device_name().unwrap()).await.unwrap();
    assert_ne!(root, node.root_volume);
    assert_eq!(emu.volume_at(new_id, "/dev/sdf").await.as_deref(), Some(node.data_volume.as_str()));
    let old_root = emu.volume(&node.root_volume).await.expect("the old root is kept: the only copy");
    assert_eq!(old_root.state().map(|s| s.as_str()), Some("available"));
    assert_eq!(emu.calls("CreateReplaceRootVolumeTask"), 2, "the refused one, then the final image's");
}

/// An image of `source` made by hand with the spec lifeboat records for a
/// node at `ip` (nothing prepared); returns its id.
async fn hand_made_backup(emu: &Emulator, ip: &str, subnet: &str, source: &str, name: &str) -> String {
    let image = emu.ec2().await.create_image().instance_id(source).name(name).send().await.unwrap();
    let image = image.image_id().unwrap().to_string();
    let spec = [
        ("lifeboat:node", "k8s-master"),
        ("lifeboat:spec-instance-type", "t3.medium"),
        ("lifeboat:spec-subnet", subnet),
        ("lifeboat:spec-private-ip", ip),
    ];
    let tags: Vec<aws_sdk_ec2::types::Tag> =
        spec.iter().map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(*k).value(*v).build()).collect();
    emu.ec2().await.create_tags().resources(&image).set_tags(Some(tags)).send().await.unwrap();
    image
}

#[tokio::test]
async fn without_preparation_the_replacement_comes_back_from_the_final_image_and_says_so() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    let old = emu.launch_node(&subnet, &[("lifeboat:node", "k8s-master")]).await;
    emu.control("POST", "/lifeboat/config", &json!({"ami_pending_seconds": 0}));
    let ip = emu.instance(&old).await.private_ip_address().unwrap().to_string();
    hand_made_backup(&emu, &ip, &subnet, &old, "k8s-master-by-hand").await;

    let run = handle_interruption(&emu, &old, vec![warning(&old)]);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "relaunched", "{report}");
    // No old disks to use; the image started at the warning is available
    // at once here (ami_pending_seconds 0), so it is the state it comes back with.
    assert_eq!(report["state"]["source"], "final-image", "{report}");
    assert_eq!(report["state"]["image_id"], report["backup"]["image_id"]);
    assert!(report["state"]["fallback"].as_str().unwrap().contains("no preserved root volume"), "{report}");
    assert_eq!(report["replacement"]["same_ip"], true, "the address waited out and reused");
}

#[tokio::test]
async fn a_retry_whose_launch_differs_finds_the_instance_its_token_made() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    let old = emu.launch_node(&subnet, &[("lifeboat:node", "k8s-master")]).await;
    emu.control("POST", "/lifeboat/config", &json!({"ami_pending_seconds": 0}));
    let ip = emu.instance(&old).await.private_ip_address().unwrap().to_string();
    let first_image = hand_made_backup(&emu, &ip, &subnet, &old, "k8s-master-20261126-0100").await;
    emu.control("POST", &format!("/lifeboat/images/{first_image}"), &json!({"creation_date": "2026-11-26T01:00:00Z"}));
    emu.ec2().await.terminate_instances().instance_ids(&old).send().await.unwrap();
    // The first invocation launches, then is killed while the agent registers.
    emu.control("POST", "/lifeboat/config", &json!({"ssm_online_seconds": 120}));
    let run = invoke(
        "interruption-handler",
        &emu.function_env("interruption-handler"),
        &[warning(&old)],
        Duration::from_secs(15),
    );
    assert!(run.invocations.is_empty(), "killed before answering");
    let first = emu.replacements(&old).await;
    assert_eq!(first.len(), 1, "it had launched");
    let first = first[0].instance_id().unwrap().to_string();
    // A newer backup is available now, so the retry's launch differs, and
    // tag filters do not show the replacement yet (eventual consistency).
    let newer = hand_made_backup(&emu, &ip, &subnet, &first, "k8s-master-20261126-1300").await;
    emu.control("POST", &format!("/lifeboat/images/{newer}"), &json!({"creation_date": "2026-11-26T13:00:00Z"}));
    emu.control("POST", "/lifeboat/config", &json!({"ssm_online_seconds": 0, "tag_filter_lag_seconds": 600}));
    emu.command_results(&[REPAIRED]);
    let launches_before = emu.calls("RunInstances");
    let run = invoke("interruption-handler", &emu.function_env("interruption-handler"), &[warning(&old)], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["replacement"]["id"], first.as_str(), "{report}");
    assert_eq!(report["command"]["result"]["result"], "ok", "{report}");
    let steps: Vec<&str> = report["timeline"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(steps.contains(&"launched-before"), "{steps:?}");
    emu.control("POST", "/lifeboat/config", &json!({"tag_filter_lag_seconds": 0}));
    assert_eq!(emu.replacements(&old).await.len(), 1, "one launch, whatever the retry's parameters");
    assert_eq!(emu.calls("RunInstances") - launches_before, 1, "the retry's, refused: IdempotentParameterMismatch");
}

#[tokio::test]
async fn a_relaunch_from_the_state_change_alone_keeps_the_instance_profile() {
    let emu = Emulator::new();
    let node = emu.backed_up_node().await;
    // As on AWS: an instance without a profile never registers with SSM.
    emu.control("POST", "/lifeboat/config", &json!({"ssm_requires_instance_profile": true}));
    let profile = emu.instance(&node.instance).await.iam_instance_profile().and_then(|p| p.arn()).map(str::to_string);
    assert!(profile.is_some());
    // No warning: the instance is simply gone, and EC2 describes it without
    // its network, volumes and instance profile.
    emu.ec2().await.terminate_instances().instance_ids(&node.instance).send().await.unwrap();
    let mut event = fixture("state-change-terminated.json");
    event["detail"]["instance-id"] = json!(node.instance);
    // The guard released kubelet at boot; the repair only verified.
    emu.command_results(&[
        r#"{"result":"ok","step":"verify","guard":"self-released","guard_reason":"booted from the chosen root","node":"k8s-master"}"#,
    ]);
    let run = invoke("interruption-handler", &emu.function_env("interruption-handler"), &[event], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "relaunched", "{report}");
    assert_eq!(report["guard"], "self-released", "{report}");
    let new = &emu.replacements(&node.instance).await[0];
    assert_eq!(new.iam_instance_profile().and_then(|p| p.arn()).map(str::to_string), profile, "else SSM never sees it");
}

#[tokio::test]
async fn a_spot_stop_is_not_a_relaunch() {
    let emu = Emulator::new();
    let node = emu.backed_up_node().await;
    emu.interrupt(&node.instance, "stop", 1.0);
    let mut event = warning(&node.instance);
    event["detail"]["instance-action"] = json!("stop");
    let run = invoke("interruption-handler", &emu.function_env("interruption-handler"), &[event], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "stopping", "{report}");
    assert!(emu.replacements(&node.instance).await.is_empty());
    assert_eq!(emu.calls("RunInstances"), 1, "only the test's own launch");
}

#[tokio::test]
async fn a_late_event_for_an_instance_ec2_forgot_still_relaunches_the_node() {
    let emu = Emulator::new();
    let node = emu.backed_up_node().await;
    emu.ec2().await.terminate_instances().instance_ids(&node.instance).send().await.unwrap();
    emu.control("POST", &format!("/lifeboat/instances/{}", node.instance), &json!({"terminated_seconds_ago": 4000}));
    let run =
        invoke("interruption-handler", &emu.function_env("interruption-handler"), &[warning(&node.instance)], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "relaunched", "{report}");
    assert_eq!(report["node"], "k8s-master");
    assert_eq!(report["state"]["source"], "old-volumes");
}

#[tokio::test]
async fn the_relaunch_is_published_to_the_topic() {
    let emu = Emulator::new();
    let topic = emu.sns().await.create_topic().name("lifeboat").send().await.unwrap();
    let topic = topic.topic_arn().unwrap().to_string();
    let node = backed_up_node(&emu).await;
    let mut env = emu.function_env("interruption-handler");
    env.push(("LIFEBOAT_NOTIFY_TOPIC_ARN".into(), topic.clone()));
    emu.ec2().await.terminate_instances().instance_ids(&node.instance).send().await.unwrap();
    let run = invoke("interruption-handler", &env, &[warning(&node.instance)], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["notification"], "sent", "{report}");
    let sent = emu.control("GET", "/lifeboat/notifications", &Value::Null);
    let sent = sent.as_array().unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["topic_arn"], topic.as_str());
    assert_eq!(sent[0]["subject"], "lifeboat: k8s-master relaunched");
    let (summary, json) = sent[0]["message"].as_str().unwrap().split_once("\n\n{").unwrap();
    assert!(summary.contains("the old instance's own disks"), "{summary}");
    let message: Value = serde_json::from_str(&format!("{{{json}")).unwrap();
    assert_eq!(message["replacement"]["id"], report["replacement"]["id"]);
}

#[tokio::test]
async fn an_instance_that_is_not_a_node_is_acknowledged_and_nothing_launches() {
    let emu = Emulator::new();
    let web = emu.launch(&emu.subnet().await, &[("Name", "web")]).await;
    let launched = emu.calls("RunInstances");
    let run = invoke("interruption-handler", &emu.function_env("interruption-handler"), &[warning(&web)], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "ignored");
    assert!(report["reason"].as_str().unwrap().contains("has no lifeboat:node tag"), "{report}");
    assert_eq!(emu.calls("RunInstances"), launched, "only the test's own launch");
    assert_eq!(emu.calls("CreateImage") + emu.calls("SendCommand"), 0);
}

#[tokio::test]
async fn refused_spot_capacity_falls_back_to_on_demand() {
    let emu = Emulator::new();
    let node = backed_up_node(&emu).await;
    emu.control(
        "POST",
        "/lifeboat/faults",
        &json!({"operation": "RunInstances", "code": "InsufficientInstanceCapacity", "status": 500, "count": 100,
                "body_contains": "InstanceMarketOptions.MarketType=spot"}),
    );
    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    let run = handle_interruption(&emu, &node.instance, vec![warning(&node.instance)]);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "relaunched", "{report}");
    assert_eq!(report["replacement"]["market"], "on-demand");
    assert_eq!(report["launch_attempts"][0]["market"], "spot");
    let new = emu.replacements(&node.instance).await;
    assert_eq!(new.len(), 1);
    assert_eq!(new[0].instance_lifecycle(), None, "on-demand instances have no lifecycle");
    assert_eq!(new[0].private_ip_address(), Some(node.private_ip.as_str()));
    // The fallback is recorded on the replacement, as DescribeInstances shows it.
    let tags: std::collections::BTreeMap<String, String> =
        lifeboat_tests::tag_pairs(new[0].tags()).into_iter().collect();
    let at = chrono::DateTime::parse_from_rfc3339(&tags["lifeboat:market-fallback"]).unwrap();
    assert!(started <= at && at <= chrono::Utc::now(), "{at}");
    let old_type = emu.instance(&node.instance).await.instance_type().unwrap().as_str().to_string();
    assert_eq!(tags["lifeboat:market-fallback-reason"], format!("{old_type} InsufficientInstanceCapacity"));

    // The on-demand node's next backup still records spot as its market
    // (a scheduled slot: the manual backup above may share this minute's name).
    let new_id = new[0].instance_id().unwrap();
    let event = fixture("scheduled-backup.json");
    let run = invoke("scheduled-backup", &emu.function_env("scheduled-backup"), &[event], TIMEOUT);
    let backup = run.invocations.into_iter().next().expect(&run.stderr).response();
    let images = emu.ec2().await.describe_images().owners("self").send().await.unwrap();
    let image = images
        .images()
        .iter()
        .find(|i| i.tags().iter().any(|t| t.key() == Some("lifeboat:source-instance") && t.value() == Some(new_id)))
        .unwrap_or_else(|| panic!("no backup of {new_id}: {backup}"));
    let image_tags = lifeboat_tests::tag_pairs(image.tags());
    assert!(image_tags.contains(&("lifeboat:spec-market".into(), "spot".into())), "{image_tags:?}");
}

#[tokio::test]
async fn comments_fit_ssm_whatever_the_node_name() {
    let emu = Emulator::new();
    let name = "n".repeat(114);
    let node = emu.backed_up(&name).await;
    emu.ec2().await.terminate_instances().instance_ids(&node.instance).send().await.unwrap();
    let run =
        invoke("interruption-handler", &emu.function_env("interruption-handler"), &[warning(&node.instance)], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "relaunched", "{report}");
    let commands = emu.ssm().await.list_commands().send().await.unwrap();
    assert!(commands.commands()[0].comment().unwrap().len() <= 100);
}

#[tokio::test]
async fn a_malformed_event_is_rejected_once_counted_and_launches_nothing() {
    let emu = Emulator::new();
    let events = vec![
        fixture("aws-docs-samples/spot-interruption-warning.json"),
        json!({"action": "restore"}),
        fixture("scheduled-backup.json"),
        json!({"action": "test-restore", "node": "k8s-master", "keep": true}),
    ];
    // The environment's setup (the drill's profile and group) is the test's own.
    let env = emu.function_env("interruption-handler");
    let before = emu.total_calls();
    let run = invoke("interruption-handler", &env, &events, TIMEOUT);
    // Answered, not failed: no retry can mend an invalid event.
    let (kinds, messages): (Vec<String>, Vec<String>) = run.invocations.into_iter().map(|i| i.rejection()).unzip();
    assert!(kinds.iter().all(|k| k == "InvalidEvent"), "{kinds:?}");
    assert_eq!(messages.len(), 4, "{}", run.stderr);
    assert!(messages[0].contains("not an EventBridge event"), "{}", messages[0]);
    assert!(messages[1].contains("missing field `node`"), "{}", messages[1]);
    assert!(messages[2].contains("got detail-type \"Scheduled Event\""), "{}", messages[2]);
    assert!(messages[3].contains("LIFEBOAT_DRILL_ALLOW_KEEP"), "{}", messages[3]);
    assert_eq!(emu.total_calls(), before, "no AWS call from the handler");
    // Each is counted for the PermanentFailure alarm, and its event logged.
    let counted = run.stdout.lines().filter(|l| l.starts_with('{') && l.contains("\"PermanentFailure\":1")).count();
    assert_eq!(counted, 4, "{}", run.stdout);
    assert!(run.stdout.contains("send the event again"), "{}", run.stdout);
}

#[tokio::test]
async fn a_restore_of_a_live_node_is_answered_notified_and_counted_not_retried() {
    let emu = Emulator::new();
    let topic = emu.sns().await.create_topic().name("lifeboat").send().await.unwrap();
    let topic = topic.topic_arn().unwrap().to_string();
    backed_up_node(&emu).await;
    let mut env = emu.function_env("interruption-handler");
    env.push(("LIFEBOAT_NOTIFY_TOPIC_ARN".into(), topic));
    let launched = emu.calls("RunInstances");
    let restore = json!({"action": "restore", "node": "k8s-master"});
    let run = invoke("interruption-handler", &env, &[restore], TIMEOUT);
    let invocation = run.invocations.into_iter().next().expect(&run.stderr);
    assert_eq!(invocation.error_type(), None, "a response: Lambda must not retry it");
    let report = invocation.response();
    assert_eq!((report["outcome"].as_str(), report["failure"]["kind"].as_str()), (Some("failed"), Some("node-alive")));
    assert_eq!(report["notification"], "sent", "{report}");
    let sent = emu.control("GET", "/lifeboat/notifications", &Value::Null);
    assert_eq!(sent[0]["subject"], "lifeboat: relaunch of k8s-master FAILED", "{sent}");
    assert!(run.stdout.lines().any(|l| l.starts_with('{') && l.contains("\"PermanentFailure\":1")), "{}", run.stdout);
    assert_eq!(emu.calls("RunInstances"), launched, "nothing launched");
}

/// The stack's SSM documents, made from the scripts as the template carries
/// them, in this account.
async fn stack_documents(emu: &Emulator, prefix: &str) {
    let dir = std::env::temp_dir().join(format!("lifeboat-documents-{}", emu.account));
    let status = std::process::Command::new("python3")
        .arg(lifeboat_tests::workspace_root().join("infra/sync-repair-document.py"))
        .args(["--check", "--write-documents"])
        .arg(&dir)
        .args(["--prefix", prefix])
        .status()
        .unwrap();
    assert!(status.success());
    let ssm = emu.ssm().await;
    for name in ["repair", "health"] {
        let name = format!("{prefix}-{name}");
        let content = std::fs::read_to_string(dir.join(format!("{name}.yaml"))).unwrap();
        ssm.create_document()
            .name(&name)
            .document_type(aws_sdk_ssm::types::DocumentType::Command)
            .document_format(aws_sdk_ssm::types::DocumentFormat::Yaml)
            .content(content)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_repair_goes_through_the_stacks_own_document_with_parameters_it_admits() {
    let emu = Emulator::new();
    stack_documents(&emu, "lifeboat").await;
    let node = emu.backed_up_node().await;
    emu.command_results(&[REPAIRED]);
    emu.interrupt(&node.instance, "terminate", 2.0);
    let env = emu.function_env("interruption-handler");
    let run = invoke("interruption-handler", &env, &[warning(&node.instance)], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "relaunched", "{report}");
    let commands = emu.ssm().await.list_commands().send().await.unwrap();
    let command = &commands.commands()[0];
    assert_eq!(command.document_name(), Some("lifeboat-repair"));
    let parameters = command.parameters().unwrap();
    assert_eq!(parameters["args"], ["--timeout 480"]);
    assert_eq!(parameters["executionTimeout"], ["600"]);
}

#[tokio::test]
async fn a_swap_that_leaves_the_replacement_without_a_root_ends_it_and_relaunches_on_the_same_disks() {
    // EC2 ends the first root swap failed-detached: that replacement can
    // never boot again. Under its own policy, the handler marks it,
    // terminates it (the only node instance it may), and the next one takes
    // the old root.
    let emu = Emulator::new();
    let node = emu.backed_up_node().await;
    emu.control("POST", "/lifeboat/config", &json!({"root_task_failures": [{"detached": true, "failing_seconds": 1}]}));
    emu.command_results(&[REPAIRED]);
    let run = handle_interruption(&emu, &node.instance, vec![warning(&node.instance)]);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["outcome"], "relaunched", "{report}");
    assert_eq!(emu.iam_denials(), Vec::<Value>::new());
    let steps: Vec<&str> = report["timeline"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert!(steps.contains(&"root-lost"), "{steps:?}");

    let all = emu.instances_tagged("lifeboat:node", "k8s-master").await;
    let lost: Vec<_> = all
        .iter()
        .filter(|i| lifeboat_tests::tag_pairs(i.tags()).iter().any(|(k, _)| k == "lifeboat:root-lost"))
        .collect();
    assert_eq!(lost.len(), 1, "{all:?}");
    assert_eq!(lost[0].state().unwrap().name().unwrap().as_str(), "terminated");
    let live: Vec<_> = all.iter().filter(|i| i.state().unwrap().name().unwrap().as_str() == "running").collect();
    assert_eq!(live.len(), 1, "{all:?}");
    let new_id = live[0].instance_id().unwrap();
    assert_eq!(report["replacement"]["id"], new_id);
    assert!(!lifeboat_tests::tag_pairs(live[0].tags()).iter().any(|(k, _)| k == "lifeboat:root-lost"), "not inherited");
    assert_eq!(
        emu.volume_at(new_id, live[0].root_device_name().unwrap()).await.as_deref(),
        Some(node.root_volume.as_str())
    );
    assert_eq!(emu.volume_at(new_id, "/dev/sdf").await.as_deref(), Some(node.data_volume.as_str()));
}
