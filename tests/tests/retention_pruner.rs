//! retention-pruner end to end: the real binary, the real SDK, the emulator.

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use chrono::{Duration, TimeZone, Utc};
use lifeboat_tests::Emulator;
use lifeboat_tests::runtime::invoke;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
const NODE_TAG: &str = "lifeboat:node";

/// The time every test prunes at: the Scheduled Event's.
fn event() -> Value {
    json!({
        "version": "0", "id": "0d7f3a52-2a43-4c1e-9a57-4fd6ec1b9b11", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-26T02:00:00Z",
        "region": "eu-west-1", "resources": [], "detail": {}
    })
}

fn ago(days: i64) -> String {
    (Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap() - Duration::days(days)).to_rfc3339()
}

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()
}

/// An image of `instance` made `days` ago in `state`, tagged for `node` (or
/// not); returns (image id, snapshot id).
async fn image(
    emu: &Emulator,
    instance: &str,
    name: &str,
    node: Option<&str>,
    days: i64,
    state: &str,
) -> (String, String) {
    let ec2 = emu.ec2().await;
    let mut request = ec2.create_image().instance_id(instance).name(name).no_reboot(true);
    if let Some(node) = node {
        let pairs = [(NODE_TAG, node), ("lifeboat:kind", "scheduled"), ("Name", name)];
        for resource in [ResourceType::Image, ResourceType::Snapshot] {
            request = request.tag_specifications(
                TagSpecification::builder().resource_type(resource).set_tags(Some(tags(&pairs))).build(),
            );
        }
    }
    let id = request.send().await.unwrap().image_id().unwrap().to_string();
    emu.control("POST", &format!("/lifeboat/images/{id}"), &json!({"state": state, "creation_date": ago(days)}));
    let out = ec2.describe_images().image_ids(&id).send().await.unwrap();
    let snapshot = out.images()[0].block_device_mappings()[0].ebs().unwrap().snapshot_id().unwrap().to_string();
    emu.control("POST", &format!("/lifeboat/snapshots/{snapshot}"), &json!({"start_time": ago(days)}));
    (id, snapshot)
}

async fn image_ids(emu: &Emulator) -> BTreeSet<String> {
    let out = emu.ec2().await.describe_images().owners("self").send().await.unwrap();
    out.images().iter().map(|i| i.image_id().unwrap().to_string()).collect()
}

async fn snapshot_ids(emu: &Emulator) -> BTreeSet<String> {
    let out = emu.ec2().await.describe_snapshots().owner_ids("self").send().await.unwrap();
    out.snapshots().iter().map(|s| s.snapshot_id().unwrap().to_string()).collect()
}

struct Seeded {
    /// Node images by age in days, newest first.
    node: Vec<(i64, String, String)>,
    untagged: Vec<(String, String)>,
    pending: (String, String),
    orphan: String,
}

/// The mixed case: 12 images of k8s-master over 20 days, two old untagged
/// images, an old pending image, and an old orphaned snapshot of the node.
async fn seed_mixed(emu: &Emulator) -> Seeded {
    let subnet = emu.subnet().await;
    let instance = emu.launch(&subnet, &[(NODE_TAG, "k8s-master")]).await;
    let mut node = Vec::new();
    for days in [0, 1, 2, 3, 5, 6, 8, 10, 12, 14, 17, 20] {
        let (id, snap) =
            image(emu, &instance, &format!("k8s-master-{days}"), Some("k8s-master"), days, "available").await;
        node.push((days, id, snap));
    }
    let mut untagged = Vec::new();
    for name in ["golden-base", "k8s-master-manual"] {
        untagged.push(image(emu, &instance, name, None, 60, "available").await);
    }
    let pending = image(emu, &instance, "k8s-master-stuck", Some("k8s-master"), 15, "pending").await;

    let ec2 = emu.ec2().await;
    let volume = ec2.create_volume().availability_zone("eu-west-1a").size(8).send().await.unwrap();
    let snapshot = ec2
        .create_snapshot()
        .volume_id(volume.volume_id().unwrap())
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Snapshot)
                .set_tags(Some(tags(&[(NODE_TAG, "k8s-master")])))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let orphan = snapshot.snapshot_id().unwrap().to_string();
    emu.control("POST", &format!("/lifeboat/snapshots/{orphan}"), &json!({"start_time": ago(30)}));
    Seeded { node, untagged, pending, orphan }
}

#[tokio::test]
async fn mixed_case_prunes_exactly_what_the_policy_names() {
    let emu = Emulator::new();
    let seeded = seed_mixed(&emu).await;
    let run = invoke("retention-pruner", &emu.function_env("retention-pruner"), &[event()], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();

    // Kept: the newest 3, the rest within 7 days, the pending one, the untagged ones.
    let mut expected_images: BTreeSet<String> =
        seeded.node.iter().filter(|(days, _, _)| *days <= 6).map(|(_, id, _)| id.clone()).collect();
    expected_images.insert(seeded.pending.0.clone());
    expected_images.extend(seeded.untagged.iter().map(|(id, _)| id.clone()));
    assert_eq!(image_ids(&emu).await, expected_images);

    // Their snapshots remain; those of the deleted images and the orphan are gone.
    let mut expected_snapshots: BTreeSet<String> =
        seeded.node.iter().filter(|(days, _, _)| *days <= 6).map(|(_, _, s)| s.clone()).collect();
    expected_snapshots.insert(seeded.pending.1.clone());
    expected_snapshots.extend(seeded.untagged.iter().map(|(_, s)| s.clone()));
    let mut seeded_snapshots: BTreeSet<String> = seeded.node.iter().map(|(_, _, s)| s.clone()).collect();
    seeded_snapshots.extend(expected_snapshots.iter().cloned());
    seeded_snapshots.insert(seeded.orphan.clone());
    // (moto's built-in images bring snapshots of their own: only ours are compared.)
    let existing: BTreeSet<String> = snapshot_ids(&emu).await.intersection(&seeded_snapshots).cloned().collect();
    assert_eq!(existing, expected_snapshots);

    let node = &report["nodes"][0];
    assert_eq!(node["node"], "k8s-master");
    let reasons: Vec<&str> = node["kept"].as_array().unwrap().iter().map(|k| k["reason"].as_str().unwrap()).collect();
    assert_eq!(
        reasons,
        ["newest-k", "newest-k", "newest-k", "within-retention", "within-retention", "within-retention", "pending"]
    );
    assert_eq!(node["deleted"].as_array().unwrap().len(), 6);
    assert!(node["deleted"].as_array().unwrap().iter().all(|d| d["status"] == "deleted"));
    assert_eq!(node["orphans_deleted"], json!([seeded.orphan]));
    assert_eq!(report["nodes"].as_array().unwrap().len(), 1, "untagged images are not in the report");
}

#[tokio::test]
async fn when_everything_is_old_exactly_the_newest_k_remain() {
    let emu = Emulator::new();
    let instance = emu.launch(&emu.subnet().await, &[(NODE_TAG, "k8s-master")]).await;
    let mut ids = Vec::new();
    for days in [10, 11, 12, 13, 14] {
        ids.push(image(&emu, &instance, &format!("k8s-master-{days}"), Some("k8s-master"), days, "available").await.0);
    }
    let run = invoke("retention-pruner", &emu.function_env("retention-pruner"), &[event()], TIMEOUT);
    run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(image_ids(&emu).await, ids[..3].iter().cloned().collect());
}

#[tokio::test]
async fn dry_run_reports_the_plan_and_changes_nothing() {
    let emu = Emulator::new();
    seed_mixed(&emu).await;
    let (images_before, snapshots_before) = (image_ids(&emu).await, snapshot_ids(&emu).await);
    let run = invoke("retention-pruner", &emu.function_env("retention-pruner"), &[json!({"dry_run": true})], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    assert_eq!(report["dry_run"], true);
    let deleted = report["nodes"][0]["deleted"].as_array().unwrap();
    assert!(!deleted.is_empty() && deleted.iter().all(|d| d["status"] == "would-delete"));
    assert_eq!(image_ids(&emu).await, images_before);
    assert_eq!(snapshot_ids(&emu).await, snapshots_before);
    assert_eq!(emu.calls("DeregisterImage") + emu.calls("DeleteSnapshot"), 0);
}

#[tokio::test]
async fn throttling_and_a_failed_deregistration_end_in_the_right_state_and_an_honest_error() {
    let emu = Emulator::new();
    let seeded = seed_mixed(&emu).await;
    emu.control(
        "POST",
        "/lifeboat/faults",
        &json!({"operation": "DeregisterImage", "code": "UnauthorizedOperation", "status": 403, "count": 1}),
    );
    emu.control(
        "POST",
        "/lifeboat/faults",
        &json!({"operation": "*", "code": "RequestLimitExceeded", "rate": 0.3, "seed": 7}),
    );
    let run = invoke("retention-pruner", &emu.function_env("retention-pruner"), &[event()], TIMEOUT);
    let invocation = run.invocations.into_iter().next().expect(&run.stderr);
    assert_eq!(invocation.error_type(), Some("PruneFailed"), "an error Lambda retries, named by its kind");
    let message = invocation.error_message();
    assert!(message.starts_with("1 failures while pruning: k8s-master ami-"), "{message}");
    assert!(message.contains("UnauthorizedOperation"), "{message}");

    // Five of the six old images are gone, one is left for the retry.
    let old: BTreeSet<String> = seeded.node.iter().filter(|(d, _, _)| *d > 6).map(|(_, id, _)| id.clone()).collect();
    let remaining = image_ids(&emu).await;
    assert_eq!(remaining.intersection(&old).count(), 1);
    assert!(remaining.contains(&seeded.pending.0));
    assert!(!snapshot_ids(&emu).await.contains(&seeded.orphan));

    // The retry, still throttled, converges.
    let run = invoke("retention-pruner", &emu.function_env("retention-pruner"), &[event()], TIMEOUT);
    run.invocations.into_iter().next().expect(&run.stderr).response();
    assert!(image_ids(&emu).await.is_disjoint(&old));
    assert!(emu.calls("DeregisterImage") > 6, "throttled calls were retried");
}

#[tokio::test]
async fn a_disabled_image_is_kept_with_its_snapshot_and_never_taken_for_an_orphan() {
    let emu = Emulator::new();
    let instance = emu.launch(&emu.subnet().await, &[(NODE_TAG, "k8s-master")]).await;
    for days in [1, 2, 3] {
        image(&emu, &instance, &format!("k8s-master-{days}"), Some("k8s-master"), days, "available").await;
    }
    let (disabled, snapshot) = image(&emu, &instance, "k8s-master-30", Some("k8s-master"), 30, "available").await;
    // DescribeImages leaves it out unless asked (IncludeDisabled).
    emu.ec2().await.disable_image().image_id(&disabled).send().await.unwrap();
    let run = invoke("retention-pruner", &emu.function_env("retention-pruner"), &[event()], TIMEOUT);
    let report = run.invocations.into_iter().next().expect(&run.stderr).response();
    let node = &report["nodes"][0];
    let kept = node["kept"].as_array().unwrap();
    assert!(kept.iter().any(|k| k["image_id"] == disabled.as_str() && k["reason"] == "disabled"), "{report}");
    assert_eq!(node["orphans_deleted"], json!([]), "{report}");
    assert_eq!(node["failures"], json!([]), "{report}");
    assert_eq!(emu.calls("DeleteSnapshot") + emu.calls("DeregisterImage"), 0, "nothing the policy names");
    assert!(snapshot_ids(&emu).await.contains(&snapshot));
}
