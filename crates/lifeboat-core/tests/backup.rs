//! scheduled-backup: event parsing against the fixtures in events/, the pure
//! plan, and the flow against the in-memory cloud.

use chrono::{DateTime, TimeZone, Utc};
use lifeboat_core::Config;
use lifeboat_core::backup::{self, Action, BackupError, BackupOutcome, EventError, Trigger};
use lifeboat_core::memory::MemoryCloud;
use lifeboat_core::model::{ErrorKind, ImageState, Instance, InstanceState};
use lifeboat_core::node::NodeName;
use lifeboat_core::prepare::Prepared;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 9, 30, 12).unwrap()
}

#[test]
fn scheduled_event_fixture_gives_its_time_as_slot() {
    let req = backup::parse_event(&fixture("scheduled-backup.json"), now()).unwrap();
    assert_eq!(req.slot, Utc.with_ymd_and_hms(2026, 11, 26, 1, 0, 0).unwrap());
    assert_eq!(req.trigger, Trigger::ScheduledEvent);
    assert_eq!((req.node, req.dry_run), (None, false));
}

#[test]
fn scheduler_and_manual_events_use_now() {
    let req = backup::parse_event(&fixture("scheduler-empty.json"), now()).unwrap();
    assert_eq!((req.slot, req.trigger), (now(), Trigger::Scheduler));
    let req = backup::parse_event(&fixture("manual-backup.json"), now()).unwrap();
    assert_eq!((req.slot, req.trigger), (now(), Trigger::Manual));
    assert_eq!((req.node.as_ref().map(|n| n.as_str()), req.dry_run), (Some("k8s-master"), true));
}

#[test]
fn malformed_events_are_rejected_with_the_reason() {
    let cases: Vec<(Value, &str)> = vec![
        (fixture("aws-docs-samples/scheduled-event.json"), "input contains invalid characters"),
        (fixture("spot-interruption-warning.json"), "EC2 Spot Instance Interruption Warning"),
        (json!([1, 2]), "expected a JSON object, got an array"),
        (json!("backup"), "got a string"),
        (json!({"node": 42}), "invalid type: integer `42`"),
        (json!({"nodes": "k8s-master"}), "unknown field `nodes`"),
        (json!({"node": "k8s master!"}), "character '!'"),
        (json!({"node": ""}), "is empty"),
        (json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}), "has no time"),
    ];
    for (event, expected) in cases {
        let err = backup::parse_event(&event, now()).unwrap_err();
        assert!(err.to_string().contains(expected), "{event}: {err}");
    }
}

#[test]
fn image_name_is_node_and_slot_in_utc() {
    let slot = DateTime::parse_from_rfc3339("2026-11-26T02:05:59+01:00").unwrap().with_timezone(&Utc);
    assert_eq!(NodeName::new("k8s-master").unwrap().slot_image(slot), "k8s-master-20261126-0105");
}

fn instance(id: &str, state: InstanceState, node: Option<&str>, launched: i64) -> Instance {
    Instance {
        id: id.into(),
        state,
        launch_time: Some(Utc.timestamp_opt(launched, 0).unwrap()),
        tags: node.map(|n| ("lifeboat:node".to_string(), n.to_string())).into_iter().collect(),
        ..Instance::default()
    }
}

#[test]
fn plan_backs_up_one_instance_per_node_and_says_why_it_skips_the_rest() {
    let instances = vec![
        instance("i-old", InstanceState::Stopped, Some("k8s-master"), 100),
        instance("i-new", InstanceState::Running, Some("k8s-master"), 50),
        instance("i-gone", InstanceState::Terminated, Some("k8s-master"), 200),
        instance("i-untagged", InstanceState::Running, None, 1),
        instance("i-bad", InstanceState::Running, Some("bad{name}"), 1),
        instance("i-etcd", InstanceState::Stopped, Some("etcd-1"), 1),
    ];
    let plan = backup::plan(&instances, &[], "lifeboat:node", None, now());
    let summary: Vec<(String, String, String)> = plan
        .iter()
        .map(|p| {
            let what = match &p.action {
                Action::Create(spec) => format!("create {}", spec.name),
                Action::Skip(reason) => format!("skip: {reason}"),
            };
            (p.node.clone(), p.instance_id.clone(), what)
        })
        .collect();
    let expected = [
        ("bad{name}", "i-bad", "skip: node name character '{' is not allowed in an AMI name"),
        ("etcd-1", "i-etcd", "create etcd-1-20261126-0930"),
        ("k8s-master", "i-gone", "skip: instance is terminated"),
        ("k8s-master", "i-new", "create k8s-master-20261126-0930"),
        ("k8s-master", "i-old", "skip: node k8s-master is backed up from i-new instead"),
    ];
    let expected: Vec<(String, String, String)> =
        expected.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(summary, expected);
    let Action::Create(spec) = &plan[3].action else { panic!("not a create: {:?}", plan[3]) };
    let tags: Vec<(&str, &str)> = spec.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        tags,
        [
            ("AutoBackup", "true"),
            ("Name", "k8s-master-20261126-0930"),
            ("lifeboat:kind", "scheduled"),
            ("lifeboat:node", "k8s-master"),
            ("lifeboat:source-instance", "i-new"),
        ]
    );
}

#[test]
fn plan_for_one_node_ignores_the_others() {
    let instances = vec![
        instance("i-a", InstanceState::Running, Some("a"), 1),
        instance("i-b", InstanceState::Running, Some("b"), 1),
    ];
    let plan = backup::plan(&instances, &[], "lifeboat:node", Some(&NodeName::new("b").unwrap()), now());
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].instance_id, "i-b");
}

#[tokio::test]
async fn backup_is_idempotent_per_slot() {
    let cloud = MemoryCloud::new();
    let master = cloud.add_instance(InstanceState::Running, &[("lifeboat:node", "k8s-master")]);
    cloud.add_instance(InstanceState::Running, &[("Name", "web")]);
    let config = Config::default();
    let event = fixture("scheduled-backup.json");

    let first = backup::handle(&cloud, &config, &event, now()).await.unwrap();
    assert_eq!(first.nodes.len(), 1);
    assert_eq!(first.nodes[0].outcome, BackupOutcome::Created);
    assert_eq!(first.nodes[0].instance, master);
    let images = cloud.images();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].name, "k8s-master-20261126-0100");
    assert_eq!(first.nodes[0].image_id.as_deref(), Some(images[0].id.as_str()));

    let second = backup::handle(&cloud, &config, &event, now()).await.unwrap();
    assert_eq!(second.nodes[0].outcome, BackupOutcome::AlreadyExisted);
    assert_eq!(second.nodes[0].image_id.as_deref(), Some(images[0].id.as_str()));
    assert_eq!(cloud.images().len(), 1);
}

#[tokio::test]
async fn dry_run_creates_nothing() {
    let cloud = MemoryCloud::new();
    cloud.add_instance(InstanceState::Running, &[("lifeboat:node", "k8s-master")]);
    let report = backup::handle(&cloud, &Config::default(), &fixture("manual-backup.json"), now()).await.unwrap();
    assert_eq!(report.nodes[0].outcome, BackupOutcome::WouldCreate);
    assert!(report.dry_run);
    assert!(cloud.images().is_empty());
    assert!(!cloud.calls().contains(&"CreateImage".to_string()));

    let config = Config { dry_run: true, ..Config::default() };
    let report = backup::handle(&cloud, &config, &json!({}), now()).await.unwrap();
    assert_eq!(report.nodes[0].outcome, BackupOutcome::WouldCreate);
    assert!(cloud.images().is_empty());
}

#[tokio::test]
async fn invalid_event_makes_no_call() {
    let cloud = MemoryCloud::new();
    cloud.add_instance(InstanceState::Running, &[("lifeboat:node", "k8s-master")]);
    let err = backup::handle(&cloud, &Config::default(), &json!({"dry-run": true}), now()).await.unwrap_err();
    assert!(matches!(err, BackupError::Event(EventError::Manual { .. })), "{err}");
    assert!(cloud.calls().is_empty());
}

#[tokio::test]
async fn unknown_manual_node_is_an_error() {
    let cloud = MemoryCloud::new();
    cloud.add_instance(InstanceState::Running, &[("lifeboat:node", "k8s-master")]);
    let err = backup::handle(&cloud, &Config::default(), &json!({"node": "k8s-mastr"}), now()).await.unwrap_err();
    assert_eq!(err.to_string(), "no instance carries the tag lifeboat:node=k8s-mastr");
    assert!(cloud.images().is_empty());
}

#[tokio::test]
async fn one_failed_node_does_not_stop_the_others_and_fails_the_invocation() {
    let cloud = MemoryCloud::new();
    cloud.add_instance(InstanceState::Running, &[("lifeboat:node", "a")]);
    cloud.add_instance(InstanceState::Running, &[("lifeboat:node", "b")]);
    cloud.fail_next("CreateImage", ErrorKind::Throttled, "RequestLimitExceeded", 1);
    let err = backup::handle(&cloud, &Config::default(), &json!({}), now()).await.unwrap_err();
    let BackupError::Failed(report) = &err else { panic!("{err}") };
    let outcomes: Vec<BackupOutcome> = report.nodes.iter().map(|n| n.outcome).collect();
    assert_eq!(outcomes, [BackupOutcome::Failed, BackupOutcome::Created]);
    assert!(err.to_string().starts_with("1 of 2 backups failed: a ("), "{err}");
    assert_eq!(cloud.images().len(), 1);

    // The retry creates what failed and finds the rest done.
    let report = backup::handle(&cloud, &Config::default(), &json!({}), now()).await.unwrap();
    let outcomes: Vec<BackupOutcome> = report.nodes.iter().map(|n| n.outcome).collect();
    assert_eq!(outcomes, [BackupOutcome::Created, BackupOutcome::AlreadyExisted]);
    assert_eq!(cloud.images().len(), 2);
}

#[tokio::test]
async fn a_slot_whose_image_failed_is_a_failed_backup_not_a_made_one() {
    let cloud = MemoryCloud::new();
    cloud.add_node("k8s-master");
    let event = fixture("scheduled-backup.json");
    backup::handle(&cloud, &Config::default(), &event, now()).await.unwrap();
    let image = cloud.images().remove(0);
    cloud.set_image_state(&image.id, ImageState::Failed);

    let err = backup::handle(&cloud, &Config::default(), &event, now()).await.unwrap_err();
    let report = err.report().unwrap();
    assert_eq!(report.nodes[0].outcome, BackupOutcome::Failed);
    assert!(report.nodes[0].reason.as_deref().unwrap().contains("failed"), "{report:?}");
    let metrics = report.metrics(now()).join("\n");
    assert!(!metrics.contains("BackupSucceeded"), "{metrics}");
    assert!(metrics.contains("\"NodesBackedUp\":0.0"), "the alarm must see it: {metrics}");
}

#[tokio::test]
async fn every_run_prepares_the_nodes_volumes_once() {
    let cloud = MemoryCloud::new();
    let node = cloud.add_node("k8s-master");
    let data = cloud.add_data_volume(&node, "/dev/sdf");
    let first = backup::handle(&cloud, &Config::default(), &json!({}), now()).await.unwrap();
    let prepared = first.nodes[0].preparation.as_ref().unwrap();
    assert_eq!(prepared.volumes.outcome, Prepared::Kept);
    assert_eq!(prepared.interface.as_ref().unwrap().outcome, Prepared::Kept);
    let instance = cloud.instance(&node).unwrap();
    assert!(instance.volumes.iter().all(|v| !v.delete_on_termination), "{instance:?}");
    let eni = &instance.primary_interface.as_ref().unwrap().interface_id;
    assert_eq!(cloud.interface_tags(eni).unwrap()["lifeboat:node"], "k8s-master", "tagged before it was changed");
    for volume in cloud.volumes() {
        assert_eq!(volume.tags["lifeboat:node"], "k8s-master");
        assert_eq!(volume.tags["lifeboat:instance"], node);
        let role = if volume.id == data { "data" } else { "root" };
        assert_eq!(volume.tags["lifeboat:volume"], role);
    }

    let calls = cloud.calls().len();
    let second = backup::handle(&cloud, &Config::default(), &json!({"node": "k8s-master"}), now()).await.unwrap();
    let prepared = second.nodes[0].preparation.as_ref().unwrap();
    assert_eq!(prepared.volumes.outcome, Prepared::AlreadyKept);
    let made: Vec<String> = cloud.calls()[calls..].to_vec();
    assert!(!made.iter().any(|c| c == "ModifyInstanceAttribute" || c == "CreateTags"), "{made:?}");
}
