//! retention-pruner: the pure plan (unit and property tests) and the flow
//! against the in-memory cloud.

use chrono::{DateTime, Duration, TimeZone, Utc};
use lifeboat_core::Config;
use lifeboat_core::memory::MemoryCloud;
use lifeboat_core::model::{
    ErrorKind, Image, ImageDevice, ImageState, Instance, InstanceState, Refusal, Snapshot, SnapshotState, Tags, Volume,
    VolumeState,
};
use lifeboat_core::prune::{self, DeleteStatus, KeepReason, Policy, PruneError};
use proptest::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

const TAG: &str = "lifeboat:node";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap()
}

fn days_ago(days: i64) -> Option<DateTime<Utc>> {
    Some(now() - Duration::days(days))
}

fn image(id: &str, node: Option<&str>, state: ImageState, created: Option<DateTime<Utc>>, snapshots: &[&str]) -> Image {
    Image {
        id: id.to_string(),
        name: format!("name-{id}"),
        state,
        creation_date: created,
        root_device: Some("/dev/xvda".into()),
        devices: snapshots
            .iter()
            .enumerate()
            .map(|(i, s)| ImageDevice {
                device: if i == 0 { "/dev/xvda".into() } else { format!("/dev/sd{}", (b'f' + i as u8) as char) },
                snapshot_id: Some(s.to_string()),
                size_gib: Some(8),
                delete_on_termination: true,
            })
            .collect(),
        tags: node.map(|n| Tags::from([(TAG.to_string(), n.to_string())])).unwrap_or_default(),
    }
}

const POLICY: Policy = Policy { retention_days: 7, keep_min: 3 };

#[test]
fn keeps_newest_k_and_recent_deletes_old_and_failed_never_pending_or_untagged() {
    use ImageState::*;
    let images = vec![
        image("a1", Some("a"), Available, days_ago(1), &["s1"]),
        image("a2", Some("a"), Pending, days_ago(30), &["s2"]),
        image("a3", Some("a"), Available, days_ago(9), &["s3"]),
        image("a4", Some("a"), Available, days_ago(10), &["s4"]),
        image("a5", Some("a"), Available, days_ago(11), &["s5"]),
        image("a6", Some("a"), Failed, days_ago(0), &[]),
        image("a7", Some("a"), Available, days_ago(2), &["s7"]),
        image("a8", Some("a"), Available, days_ago(3), &["s8"]),
        image("a9", Some("a"), Available, days_ago(5), &["s9"]),
        image("x1", None, Available, days_ago(300), &["sx"]),
        image("b1", Some("b"), Other, days_ago(300), &["sb"]),
    ];
    let plan = prune::plan(&images, &[], TAG, POLICY, now());
    let a = &plan["a"];
    let kept: Vec<(&str, KeepReason)> = a.keep.iter().map(|k| (k.image.image_id.as_str(), k.reason)).collect();
    assert_eq!(
        kept,
        [
            ("a1", KeepReason::NewestK),
            ("a7", KeepReason::NewestK),
            ("a8", KeepReason::NewestK),
            ("a9", KeepReason::WithinRetention),
            ("a2", KeepReason::Pending),
        ]
    );
    let deleted: Vec<&str> = a.delete.iter().map(|d| d.image.image_id.as_str()).collect();
    assert_eq!(deleted, ["a6", "a3", "a4", "a5"]);
    assert_eq!(a.delete[1].snapshot_ids, ["s3"]);
    assert_eq!(plan["b"].keep[0].reason, KeepReason::OtherState);
    assert!(plan["b"].delete.is_empty());
    assert_eq!(plan.len(), 2, "the untagged image is not in the plan at all");
}

#[test]
fn when_everything_is_old_exactly_the_newest_k_available_remain() {
    let images: Vec<Image> =
        (0..10).map(|i| image(&format!("i{i}"), Some("n"), ImageState::Available, days_ago(20 + i), &[])).collect();
    let plan = prune::plan(&images, &[], TAG, POLICY, now());
    let kept: Vec<&str> = plan["n"].keep.iter().map(|k| k.image.image_id.as_str()).collect();
    assert_eq!(kept, ["i0", "i1", "i2"]);
    assert_eq!(plan["n"].delete.len(), 7);
}

#[test]
fn a_snapshot_another_image_uses_is_not_deleted_with_the_image() {
    let images = vec![
        image("new1", Some("n"), ImageState::Available, days_ago(0), &[]),
        image("new2", Some("n"), ImageState::Available, days_ago(0), &[]),
        image("new3", Some("n"), ImageState::Available, days_ago(0), &[]),
        image("old", Some("n"), ImageState::Available, days_ago(30), &["shared", "own"]),
        image("copy", None, ImageState::Available, days_ago(30), &["shared"]),
    ];
    let plan = prune::plan(&images, &[], TAG, POLICY, now());
    assert_eq!(plan["n"].delete[0].snapshot_ids, ["own"]);
}

#[test]
fn orphans_are_swept_by_the_same_age_rule() {
    let snapshot = |id: &str, state, age, node: Option<&str>| Snapshot {
        id: id.to_string(),
        state,
        start_time: days_ago(age),
        tags: node.map(|n| Tags::from([(TAG.to_string(), n.to_string())])).unwrap_or_default(),
    };
    let images = vec![image("img", Some("n"), ImageState::Available, days_ago(1), &["used"])];
    let snapshots = vec![
        snapshot("used", SnapshotState::Completed, 30, Some("n")),
        snapshot("old-orphan", SnapshotState::Completed, 30, Some("n")),
        snapshot("young-orphan", SnapshotState::Completed, 2, Some("n")),
        snapshot("pending-orphan", SnapshotState::Pending, 30, Some("n")),
        snapshot("other-node", SnapshotState::Error, 30, Some("m")),
    ];
    let plan = prune::plan(&images, &snapshots, TAG, POLICY, now());
    assert_eq!(plan["n"].orphans, ["old-orphan"]);
    let kept: Vec<(&str, &str)> =
        plan["n"].orphans_kept.iter().map(|o| (o.snapshot_id.as_str(), o.reason.as_str())).collect();
    assert_eq!(kept, [("young-orphan", "within retention"), ("pending-orphan", "pending")]);
    assert_eq!(plan["m"].orphans, ["other-node"]);
}

fn arb_images() -> impl Strategy<Value = Vec<Image>> {
    let one = (
        prop::option::weighted(0.85, 0..3u8),
        prop_oneof![
            Just(ImageState::Available),
            Just(ImageState::Pending),
            Just(ImageState::Failed),
            Just(ImageState::Disabled),
            Just(ImageState::Other)
        ],
        prop::option::weighted(0.95, 0..40i64),
        prop::collection::vec(0..12u8, 0..3),
    );
    prop::collection::vec(one, 0..40).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (node, state, age, snaps))| {
                let node = node.map(|n| format!("node-{n}"));
                let snaps: Vec<String> = snaps.into_iter().map(|s| format!("snap-{s}")).collect();
                let snaps: Vec<&str> = snaps.iter().map(String::as_str).collect();
                image(&format!("ami-{i:03}"), node.as_deref(), state, age.and_then(days_ago), &snaps)
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn the_plan_never_deletes_what_the_policy_protects_and_deletes_all_it_names(
        images in arb_images(), retention_days in 0..15u32, keep_min in 1..5u32,
    ) {
        let policy = Policy { retention_days, keep_min };
        let plan = prune::plan(&images, &[], TAG, policy, now());
        let deleted: BTreeSet<&str> =
            plan.values().flat_map(|p| p.delete.iter().map(|d| d.image.image_id.as_str())).collect();
        let kept: BTreeSet<&str> =
            plan.values().flat_map(|p| p.keep.iter().map(|k| k.image.image_id.as_str())).collect();
        let by_id: BTreeMap<&str, &Image> = images.iter().map(|i| (i.id.as_str(), i)).collect();

        for id in &deleted {
            let image = by_id[id];
            prop_assert!(image.tags.contains_key(TAG), "untagged {id} planned for deletion");
            prop_assert!(image.state != ImageState::Pending, "pending {id} planned for deletion");
            prop_assert!(image.state != ImageState::Other, "{id} in a state lifeboat never deletes");
            prop_assert!(image.state != ImageState::Disabled, "disabled {id} planned for deletion");
        }
        prop_assert!(deleted.is_disjoint(&kept));

        let mut nodes: BTreeMap<&str, Vec<&Image>> = BTreeMap::new();
        for image in &images {
            match image.tags.get(TAG) {
                Some(node) => nodes.entry(node).or_default().push(image),
                None => prop_assert!(!kept.contains(image.id.as_str()) && !deleted.contains(image.id.as_str())),
            }
        }
        for (node, mut node_images) in nodes {
            // The newest K available images of the node survive.
            node_images.sort_by(|a, b| b.creation_date.cmp(&a.creation_date).then(a.id.cmp(&b.id)));
            let newest: Vec<&str> = node_images.iter()
                .filter(|i| i.state == ImageState::Available)
                .take(keep_min as usize)
                .map(|i| i.id.as_str())
                .collect();
            for id in &newest {
                prop_assert!(!deleted.contains(id), "{id}, one of the newest {keep_min} of {node}, planned for deletion");
            }
            // Everything old and unprotected is planned, and failed images too.
            for image in node_images {
                let old = image.creation_date.is_some_and(|c| now() - c > Duration::days(retention_days.into()));
                let unprotected = image.state == ImageState::Available && !newest.contains(&image.id.as_str());
                if image.state == ImageState::Failed || (unprotected && old) {
                    prop_assert!(deleted.contains(image.id.as_str()), "{} should be deleted", image.id);
                } else {
                    prop_assert!(kept.contains(image.id.as_str()), "{} should be kept", image.id);
                }
            }
        }

        // No snapshot a surviving image uses is ever on the list.
        let in_use: BTreeSet<&str> = images.iter()
            .filter(|i| !deleted.contains(i.id.as_str()))
            .flat_map(|i| i.snapshot_ids().map(String::as_str))
            .collect();
        for deletion in plan.values().flat_map(|p| &p.delete) {
            for snapshot in &deletion.snapshot_ids {
                prop_assert!(!in_use.contains(snapshot.as_str()), "{snapshot} is still used");
            }
        }
    }
}

fn seeded() -> (MemoryCloud, Vec<String>) {
    let cloud = MemoryCloud::new();
    let mut ids = Vec::new();
    for age in [1, 2, 3, 10, 12] {
        ids.push(cloud.add_image(&format!("n-{age}"), ImageState::Available, days_ago(age), &[(TAG, "n")]).0);
    }
    cloud.add_image("someone-elses", ImageState::Available, days_ago(100), &[]);
    (cloud, ids)
}

#[tokio::test]
async fn prune_deletes_the_old_images_and_their_snapshots() {
    let (cloud, ids) = seeded();
    let orphan = cloud.add_snapshot(SnapshotState::Completed, days_ago(40), &[(TAG, "n")]);
    let report = prune::handle(&cloud, &Config::default(), &json!({}), now()).await.unwrap();
    let remaining: Vec<String> = cloud.images().iter().map(|i| i.name.clone()).collect();
    assert_eq!(remaining, ["n-1", "n-2", "n-3", "someone-elses"]);
    assert_eq!(cloud.snapshots().len(), 4, "each remaining image keeps its one snapshot; the orphan is gone");
    let node = &report.nodes[0];
    let deleted: Vec<(&str, DeleteStatus)> =
        node.deleted.iter().map(|d| (d.image.image_id.as_str(), d.status)).collect();
    assert_eq!(deleted, [(ids[3].as_str(), DeleteStatus::Deleted), (ids[4].as_str(), DeleteStatus::Deleted)]);
    assert_eq!(node.orphans_deleted, [orphan]);
    assert!(node.snapshots_deleted.is_empty(), "DeleteAssociatedSnapshots did it");
}

#[tokio::test]
async fn snapshots_left_by_deregistration_are_deleted_after() {
    let (cloud, _) = seeded();
    cloud.keep_snapshots_on_deregister(true);
    let report = prune::handle(&cloud, &Config::default(), &json!({}), now()).await.unwrap();
    assert_eq!(cloud.snapshots().len(), 4);
    assert_eq!(report.nodes[0].snapshots_deleted.len(), 2);
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let (cloud, _) = seeded();
    let report = prune::handle(&cloud, &Config::default(), &json!({"dry_run": true}), now()).await.unwrap();
    assert_eq!(cloud.images().len(), 6);
    assert!(report.nodes[0].deleted.iter().all(|d| d.status == DeleteStatus::WouldDelete));
    assert_eq!(report.nodes[0].deleted.len(), 2);
    assert!(!cloud.calls().iter().any(|c| c == "DeregisterImage" || c == "DeleteSnapshot"));
}

#[tokio::test]
async fn one_failure_does_not_stop_the_rest_and_fails_the_invocation() {
    let (cloud, ids) = seeded();
    cloud.fail_next("DeregisterImage", ErrorKind::Other, "InternalError", 1);
    let err = prune::handle(&cloud, &Config::default(), &json!({}), now()).await.unwrap_err();
    let PruneError::Failed(report) = &err else { panic!("{err}") };
    assert_eq!(report.failure_count(), 1);
    assert!(err.to_string().contains(&format!("n {}: DeregisterImage failed: InternalError", ids[3])), "{err}");
    // The other old image went; the failed one is still there for the retry.
    let remaining: Vec<String> = cloud.images().iter().map(|i| i.id.clone()).collect();
    assert!(remaining.contains(&ids[3]) && !remaining.contains(&ids[4]));
    prune::handle(&cloud, &Config::default(), &json!({}), now()).await.unwrap();
    assert_eq!(cloud.images().len(), 4);
}

#[tokio::test]
async fn a_listing_failure_deletes_nothing() {
    let (cloud, _) = seeded();
    cloud.fail_next("DescribeSnapshots", ErrorKind::Refused(Refusal::Authorization), "UnauthorizedOperation", 1);
    let err = prune::handle(&cloud, &Config::default(), &json!({}), now()).await.unwrap_err();
    assert!(matches!(err, PruneError::Describe(_)), "{err}");
    assert_eq!(cloud.images().len(), 6);
}

#[tokio::test]
async fn ages_come_from_the_event_time() {
    let (cloud, _) = seeded();
    let event = json!({
        "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
        "time": "2026-11-16T02:00:00Z", "region": "eu-west-1", "resources": [], "detail": {}
    });
    // Ten days earlier, nothing is old yet (the images would be from the future).
    let report = prune::handle(&cloud, &Config::default(), &event, now()).await.unwrap();
    assert!(report.nodes[0].deleted.is_empty());
    assert_eq!(cloud.images().len(), 6);
}

#[test]
fn bad_events_are_rejected() {
    for (event, expected) in [
        (json!({"dryrun": true}), "unknown field `dryrun`"),
        (json!({"dry_run": "yes"}), "invalid type: string"),
        (json!(null), "expected a JSON object, got null"),
    ] {
        let err = prune::parse_event(&event, now()).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[tokio::test]
async fn an_event_from_the_future_counts_as_now() {
    let (cloud, _) = seeded();
    // Forged or skewed: a year ahead would age every backup into deletion.
    let event = json!({
        "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
        "time": "2027-11-26T02:00:00Z", "region": "eu-west-1", "resources": [], "detail": {}
    });
    let report = prune::handle(&cloud, &Config::default(), &event, now()).await.unwrap();
    assert_eq!(report.time, now());
    let remaining: Vec<String> = cloud.images().iter().map(|i| i.name.clone()).collect();
    assert_eq!(remaining, ["n-1", "n-2", "n-3", "someone-elses"], "only what is old by the real clock");
}

#[tokio::test]
async fn a_disabled_image_is_kept_with_its_snapshots_and_no_failure() {
    let cloud = MemoryCloud::new();
    for age in [1, 2, 3] {
        cloud.add_image(&format!("n-{age}"), ImageState::Available, days_ago(age), &[(TAG, "n")]);
    }
    let (disabled, snapshot) = cloud.add_image("n-30", ImageState::Disabled, days_ago(30), &[(TAG, "n")]);
    // An orphan sweep must not take a disabled image's snapshot for an orphan.
    let report = prune::handle(&cloud, &Config::default(), &json!({}), now()).await.unwrap();
    let node = &report.nodes[0];
    assert!(node.kept.iter().any(|k| k.image.image_id == disabled && k.reason == KeepReason::Disabled), "{node:?}");
    assert!(node.orphans_deleted.is_empty() && node.failures.is_empty(), "{node:?}");
    assert!(cloud.snapshots().iter().any(|s| s.id == snapshot));
}

#[tokio::test]
async fn a_snapshot_still_in_use_is_kept_and_reported_not_failed() {
    let cloud = MemoryCloud::new();
    for age in [1, 2, 3] {
        cloud.add_image(&format!("n-{age}"), ImageState::Available, days_ago(age), &[(TAG, "n")]);
    }
    cloud.add_image("n-30", ImageState::Available, days_ago(30), &[(TAG, "n")]);
    cloud.keep_snapshots_on_deregister(true);
    // Between the listing and the deletion, the snapshot got used again
    // (say, an image registered from it): DeleteSnapshot says InvalidSnapshot.InUse.
    cloud.fail_next("DeleteSnapshot", ErrorKind::InUse, "InvalidSnapshot.InUse", 1);
    let report = prune::handle(&cloud, &Config::default(), &json!({}), now()).await.unwrap();
    assert_eq!(report.nodes[0].snapshots_in_use.len(), 1);
    assert_eq!(report.failure_count(), 0);
}

fn volume(id: &str, owner: &str, created: i64, state: VolumeState) -> Volume {
    Volume {
        id: id.into(),
        state,
        availability_zone: "eu-west-1a".into(),
        encrypted: false,
        size_gib: 8,
        create_time: days_ago(created),
        attached_to: None,
        tags: Tags::from([(TAG.into(), "n".into()), ("lifeboat:instance".into(), owner.into())]),
    }
}

fn node_instance(id: &str, launched: i64, state: InstanceState) -> Instance {
    Instance {
        id: id.into(),
        state,
        launch_time: days_ago(launched),
        tags: Tags::from([(TAG.into(), "n".into())]),
        ..Instance::default()
    }
}

fn backup_of(instance: &str) -> Image {
    let mut image = image(&format!("ami-{instance}"), Some("n"), ImageState::Available, days_ago(1), &["s"]);
    image.tags.insert("lifeboat:source-instance".into(), instance.into());
    image
}

#[test]
fn preserved_volumes_go_only_after_a_healthy_successor_outlived_the_retention() {
    let volumes = [
        // The old instance's, superseded ten days ago by a backed-up successor.
        volume("vol-superseded", "i-old", 40, VolumeState::Available),
        // Superseded three days ago: within the retention.
        volume("vol-recent", "i-mid", 4, VolumeState::Available),
        // Of the running instance itself (never deleted while it is its own).
        volume("vol-own", "i-new", 3, VolumeState::Available),
        // Newer than every instance: a relaunch may still need it.
        volume("vol-newest", "i-dead", 0, VolumeState::Available),
        volume("vol-attached", "i-new", 40, VolumeState::InUse),
    ];
    let instances =
        [node_instance("i-ten", 10, InstanceState::Terminated), node_instance("i-new", 3, InstanceState::Running)];
    let images = [backup_of("i-new")];
    let plan = prune::plan_volumes(&volumes, &instances, &images, TAG, POLICY, now());
    assert_eq!(plan["n"].delete, Vec::<String>::new(), "the successor i-new is 3 days old: within 7");
    let instances = [node_instance("i-new", 10, InstanceState::Running)];
    let plan = prune::plan_volumes(&volumes, &instances, &images, TAG, POLICY, now());
    assert_eq!(plan["n"].delete, ["vol-superseded"]);
    let kept: Vec<&str> = plan["n"].keep.iter().map(|k| k.volume_id.as_str()).collect();
    assert_eq!(kept, ["vol-recent", "vol-own", "vol-newest"]);
    // Without a backup of the successor it is not known healthy: nothing goes.
    let plan = prune::plan_volumes(&volumes, &instances, &[], TAG, POLICY, now());
    assert!(plan["n"].delete.is_empty());
}

#[tokio::test(start_paused = true)]
async fn preserved_volumes_are_deleted_by_the_rule_and_a_dry_run_only_lists_them() {
    let cloud = MemoryCloud::new();
    let config = Config { node_tag: TAG.into(), ..Config::default() };
    let old = cloud.add_node("n");
    let data = cloud.add_data_volume(&old, "/dev/sdf");
    lifeboat_core::backup::handle(&cloud, &config, &json!({}), Utc::now()).await.unwrap();
    cloud.terminate_in(&old, std::time::Duration::ZERO);
    tokio::time::advance(std::time::Duration::from_secs(10)).await;
    // Its successor runs and has its own backup.
    cloud.add_node("n");
    let next_slot = Utc::now() + Duration::hours(1);
    lifeboat_core::backup::handle(&cloud, &config, &json!({"node": "n"}), next_slot).await.unwrap();
    cloud.finish_images();
    let preserved: Vec<String> =
        cloud.volumes().into_iter().filter(|v| v.tags.get("lifeboat:instance") == Some(&old)).map(|v| v.id).collect();
    assert_eq!(preserved.len(), 2, "root and data kept on termination");
    assert!(preserved.contains(&data));

    // Within the retention of the successor: listed as kept, and why.
    let report = prune::handle(&cloud, &config, &json!({}), Utc::now()).await.unwrap();
    assert_eq!(report.nodes[0].volumes_kept.len(), 2);
    assert!(report.nodes[0].volumes_kept[0].reason.starts_with("within retention"), "{:?}", report.nodes[0]);
    // Ten days later: the dry run lists them, the real run deletes them.
    let later = Utc::now() + Duration::days(10);
    let report = prune::handle(&cloud, &config, &json!({"dry_run": true}), later).await.unwrap();
    let mut listed = report.nodes[0].volumes_deleted.clone();
    listed.sort();
    let mut expected = preserved.clone();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(preserved.iter().all(|id| cloud.volumes().iter().any(|v| &v.id == id)), "a dry run deletes nothing");
    prune::handle(&cloud, &config, &json!({}), later).await.unwrap();
    assert!(!cloud.volumes().iter().any(|v| preserved.contains(&v.id)));
    assert_eq!(cloud.volumes().iter().filter(|v| v.state == VolumeState::InUse).count(), 1, "the successor's own root");
}

#[tokio::test]
async fn each_run_reports_the_pruned_images_and_the_newest_backups_age_per_node() {
    let cloud = MemoryCloud::new();
    for age in [1, 2, 3, 30] {
        cloud.add_image(&format!("n-{age}"), ImageState::Available, days_ago(age), &[(TAG, "n")]);
    }
    cloud.add_image("n-pending", ImageState::Pending, Some(now()), &[(TAG, "n")]);
    let metric = |lines: &[String], name: &str| -> Option<f64> {
        lines
            .iter()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find_map(|v| (v["Node"] == "n").then(|| v[name].as_f64()).flatten())
    };
    let dry = prune::handle(&cloud, &Config::default(), &json!({"dry_run": true}), now()).await.unwrap();
    let lines = dry.metrics(now());
    assert_eq!(metric(&lines, "NewestBackupAgeHours"), Some(24.0), "the pending image is not a backup yet: {lines:?}");
    assert_eq!(metric(&lines, "ImagesPruned"), None, "a dry run prunes nothing");
    let report = prune::handle(&cloud, &Config::default(), &json!({}), now()).await.unwrap();
    let lines = report.metrics(now());
    assert_eq!(metric(&lines, "ImagesPruned"), Some(1.0));
    assert_eq!(metric(&lines, "NewestBackupAgeHours"), Some(24.0));
}
