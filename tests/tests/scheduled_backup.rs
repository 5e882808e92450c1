//! scheduled-backup end to end: the real binary, the real SDK, the emulator.

use lifeboat_tests::runtime::invoke;
use lifeboat_tests::{Emulator, fixture, tag_pairs};
use serde_json::{Value, json};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

async fn images(emu: &Emulator) -> Vec<aws_sdk_ec2::types::Image> {
    emu.ec2().await.describe_images().owners("self").send().await.unwrap().images().to_vec()
}

#[tokio::test]
async fn backs_up_the_tagged_node_once_per_slot() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    let master = emu.launch(&subnet, &[("lifeboat:node", "k8s-master"), ("Name", "k8s-master")]).await;
    let web = emu.launch(&subnet, &[("Name", "web")]).await;

    let event = fixture("scheduled-backup.json");
    let run = invoke("scheduled-backup", &emu.function_env("scheduled-backup"), &[event.clone(), event], TIMEOUT);
    assert_eq!(run.invocations.len(), 2, "{}", run.stderr);
    // Both invocations tell CloudWatch the node has its backup (EMF lines).
    let metrics: Vec<Value> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some() && v.get("BackupSucceeded").is_some())
        .collect();
    assert_eq!(metrics.len(), 2, "{}", run.stdout);
    assert!(metrics.iter().all(|m| m["BackupSucceeded"] == 1.0 && m["Node"] == "k8s-master"));
    let mut results = run.invocations.into_iter();
    let first = results.next().unwrap().response();
    let second = results.next().unwrap().response();

    // One image, named after the slot, from the tagged instance only.
    let images = images(&emu).await;
    assert_eq!(images.len(), 1, "{images:?}");
    let image = &images[0];
    let image_id = image.image_id().unwrap();
    assert_eq!(image.name(), Some("k8s-master-20261126-0100"));
    assert_eq!(image.source_instance_id(), Some(master.as_str()));
    assert_ne!(image.source_instance_id(), Some(web.as_str()));
    let expected_tags = pairs(&[
        ("AutoBackup", "true"),
        ("Name", "k8s-master-20261126-0100"),
        ("lifeboat:kind", "scheduled"),
        ("lifeboat:node", "k8s-master"),
        ("lifeboat:source-instance", &master),
    ]);
    // The image carries the backup tags, plus the launch spec a relaunch reads back.
    let image_tags = tag_pairs(image.tags());
    let (spec, backup): (Vec<_>, Vec<_>) = image_tags.into_iter().partition(|(k, _)| k.starts_with("lifeboat:spec-"));
    assert_eq!(backup, expected_tags);
    let spec_keys: Vec<&str> = spec.iter().map(|(k, _)| k.as_str()).collect();
    for key in [
        "lifeboat:spec-instance-type",
        "lifeboat:spec-subnet",
        "lifeboat:spec-private-ip",
        "lifeboat:spec-interface",
        "lifeboat:spec-market",
    ] {
        assert!(spec_keys.contains(&key), "{key} missing from {spec:?}");
    }
    assert!(spec.contains(&("lifeboat:spec-market".to_string(), "spot".to_string())));

    // Its snapshots carry the same tags.
    let snapshot_ids: Vec<String> =
        image.block_device_mappings().iter().filter_map(|m| m.ebs()?.snapshot_id().map(str::to_string)).collect();
    assert!(!snapshot_ids.is_empty());
    let snapshots = emu.ec2().await.describe_snapshots().set_snapshot_ids(Some(snapshot_ids)).send().await.unwrap();
    for snapshot in snapshots.snapshots() {
        assert_eq!(tag_pairs(snapshot.tags()), expected_tags, "{snapshot:?}");
    }

    // The reports: created, then already done; the untagged instance is not in them.
    assert_eq!(first["nodes"].as_array().unwrap().len(), 1, "{first}");
    assert_eq!(first["nodes"][0]["outcome"], "created");
    assert_eq!(first["nodes"][0]["instance"], master.as_str());
    assert_eq!(first["nodes"][0]["image_id"], image_id);
    assert_eq!(first["slot"], "2026-11-26T01:00:00Z");
    assert_eq!(second["nodes"][0]["outcome"], "already-existed");
    assert_eq!(second["nodes"][0]["image_id"], image_id);
    assert_eq!(emu.calls("CreateImage"), 2);

    // The node was prepared: its interface now outlives the instance, once.
    assert_eq!(first["nodes"][0]["interface"]["outcome"], "kept");
    assert_eq!(second["nodes"][0]["interface"]["outcome"], "already-kept");
    let described = emu.ec2().await.describe_instances().instance_ids(&master).send().await.unwrap();
    let attachment = described.reservations()[0].instances()[0].network_interfaces()[0].attachment().unwrap().clone();
    assert_eq!(attachment.delete_on_termination(), Some(false));
    assert_eq!(emu.calls("ModifyNetworkInterfaceAttribute"), 1);
}

#[tokio::test]
async fn a_malformed_event_is_rejected_once_counted_and_creates_nothing() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    emu.launch(&subnet, &[("lifeboat:node", "k8s-master")]).await;

    let events: Vec<Value> = vec![
        fixture("aws-docs-samples/scheduled-event.json"),
        fixture("spot-interruption-warning.json"),
        json!({"node": "k8s-master", "dryrun": true}),
        json!("2026-11-26T01:00:00Z"),
    ];
    let run = invoke("scheduled-backup", &emu.function_env("scheduled-backup"), &events, TIMEOUT);
    // Answered, not failed: no retry can mend an invalid event.
    let (kinds, messages): (Vec<String>, Vec<String>) = run.invocations.into_iter().map(|i| i.rejection()).unzip();
    assert!(kinds.iter().all(|k| k == "InvalidEvent"), "{kinds:?}");
    assert_eq!(messages.len(), 4, "{}", run.stderr);
    assert!(messages[0].contains("not an EventBridge event"), "{}", messages[0]);
    assert!(messages[1].contains("EC2 Spot Instance Interruption Warning"), "{}", messages[1]);
    assert!(messages[2].contains("unknown field `dryrun`"), "{}", messages[2]);
    assert!(messages[3].contains("expected a JSON object, got a string"), "{}", messages[3]);
    assert!(images(&emu).await.is_empty());
    assert_eq!(emu.calls("CreateImage"), 0);
    assert_eq!(emu.calls("DescribeInstances"), 0, "a bad event makes no AWS call at all");
    let counted = run.stdout.lines().filter(|l| l.starts_with('{') && l.contains("\"PermanentFailure\":1")).count();
    assert_eq!(counted, 4, "{}", run.stdout);
}

#[tokio::test]
async fn dry_run_reports_the_plan_and_creates_nothing() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    let master = emu.launch(&subnet, &[("lifeboat:node", "k8s-master")]).await;
    let run =
        invoke("scheduled-backup", &emu.function_env("scheduled-backup"), &[fixture("manual-backup.json")], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["nodes"][0]["outcome"], "would-create");
    assert_eq!(report["nodes"][0]["instance"], master.as_str());
    assert!(images(&emu).await.is_empty());
}

#[tokio::test]
async fn an_invalid_setting_stops_the_function_before_any_call() {
    let emu = Emulator::new();
    let mut env = emu.function_env("scheduled-backup");
    env.push(("LIFEBOAT_KEEP_MIN".into(), "none".into()));
    let run = invoke("scheduled-backup", &env, &[json!({})], TIMEOUT);
    assert!(run.invocations.is_empty());
    assert_ne!(run.exit_code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("LIFEBOAT_KEEP_MIN"), "{}", run.stderr);
    assert_eq!(emu.calls("DescribeInstances"), 0);
}
