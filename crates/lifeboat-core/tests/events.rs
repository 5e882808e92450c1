//! Every fixture in events/ is what its function accepts (or, for the AWS
//! documentation's samples, rejects), so `cargo lambda invoke --data-file`
//! and the tests use events that are true.

use chrono::{DateTime, TimeZone, Utc};
use lifeboat_core::node::NodeName;
use lifeboat_core::relaunch::{self, Request};
use lifeboat_core::{backup, prune};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 14, 0, 0).unwrap()
}

fn relaunch(name: &str) -> (Request, DateTime<Utc>) {
    relaunch::parse_event(&fixture(name), now()).unwrap()
}

#[test]
fn the_ec2_events_are_what_interruption_handler_acts_on() {
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let id = "i-0b2f5e7c1d3a49e86".to_string();
    assert_eq!(
        relaunch("spot-interruption-warning.json"),
        (
            Request::Relaunch { instance_id: id.clone(), trigger: "interruption-warning".into() },
            at("2026-11-26T13:42:07Z")
        )
    );
    assert_eq!(
        relaunch("state-change-terminated.json"),
        (
            Request::Relaunch { instance_id: id.clone(), trigger: "state-change:terminated".into() },
            at("2026-11-26T13:44:09Z")
        )
    );
    assert_eq!(
        relaunch("rebalance-recommendation.json"),
        (Request::Rebalance { instance_id: id }, at("2026-11-26T13:31:55Z"))
    );
    assert_eq!(relaunch("restore.json"), (Request::Restore { node: NodeName::new("k8s-master").unwrap() }, now()));
    assert_eq!(
        relaunch("test-restore.json"),
        (Request::Drill { node: NodeName::new("k8s-master").unwrap(), keep: false }, now())
    );
}

#[test]
fn the_schedule_events_are_what_the_scheduled_functions_act_on() {
    for name in ["scheduled-backup.json", "scheduler-empty.json", "manual-backup.json"] {
        backup::parse_event(&fixture(name), now()).unwrap();
    }
    for name in ["scheduled-backup.json", "scheduler-empty.json"] {
        prune::parse_event(&fixture(name), now()).unwrap();
    }
}

#[test]
fn the_aws_documentation_samples_are_rejected_for_their_placeholder_time() {
    for name in ["spot-interruption-warning.json", "rebalance-recommendation.json"] {
        let err = relaunch::parse_event(&fixture(&format!("aws-docs-samples/{name}")), now()).unwrap_err();
        assert!(err.to_string().starts_with("invalid event: not an EventBridge event"), "{name}: {err}");
    }
    let err = backup::parse_event(&fixture("aws-docs-samples/scheduled-event.json"), now()).unwrap_err();
    assert!(err.to_string().starts_with("invalid event: not an EventBridge event"), "{err}");
}
