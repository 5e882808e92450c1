//! Malformed input: for any JSON value, every event parser returns a value or
//! a clear error, never a panic; a failed parse makes no AWS call at all. Any
//! configuration string is accepted or names its variable.

use chrono::{TimeZone, Utc};
use lifeboat_core::config::Config;
use lifeboat_core::memory::MemoryCloud;
use lifeboat_core::model::InstanceState;
use lifeboat_core::relaunch::{Cloud, Timing};
use lifeboat_core::{backup, prune, relaunch};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("Scheduled Event"),
            Just("aws.events"),
            Just("aws.ec2"),
            Just("EC2 Spot Instance Interruption Warning"),
            Just("EC2 Instance State-change Notification"),
            Just("terminated"),
            Just("i-0123456789abcdef0"),
            Just("2026-11-26T01:00:00Z"),
            Just("restore"),
            Just("test-restore"),
            Just("k8s-master"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        let keys = prop_oneof![
            Just("detail-type"),
            Just("source"),
            Just("time"),
            Just("detail"),
            Just("instance-id"),
            Just("state"),
            Just("node"),
            Just("dry_run"),
            Just("action"),
            Just("keep"),
            Just("id"),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys, inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>())),
        ]
    })
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap()
}

proptest! {
    #[test]
    fn parsers_never_panic(event in arb_json()) {
        for result in [
            backup::parse_event(&event, now()).map(|_| ()),
            prune::parse_event(&event, now()).map(|_| ()),
            relaunch::parse_event(&event, now()).map(|_| ()),
        ] {
            if let Err(e) = result {
                prop_assert!(e.to_string().starts_with("invalid event: "), "{e}");
            }
        }
    }

    #[test]
    fn a_rejected_event_makes_no_aws_call(event in arb_json()) {
        let cloud = MemoryCloud::new();
        cloud.add_instance(InstanceState::Running, &[("lifeboat:node", "k8s-master")]);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        let config = Config::default();
        if backup::parse_event(&event, now()).is_err() {
            runtime.block_on(backup::handle(&cloud, &config, &event, now())).unwrap_err();
        }
        if prune::parse_event(&event, now()).is_err() {
            runtime.block_on(prune::handle(&cloud, &config, &event, now())).unwrap_err();
        }
        if relaunch::parse_event(&event, now()).is_err() {
            runtime
                .block_on(relaunch::handle(Cloud { ec2: &cloud, ssm: &cloud, notifier: &cloud }, &config, Timing::default(), &event, now(), None))
                .unwrap_err();
        }
        prop_assert!(cloud.calls().is_empty(), "{:?}", cloud.calls());
    }

    #[test]
    fn any_configuration_string_is_accepted_or_names_its_variable(
        name in prop::sample::select(vec![
            "LIFEBOAT_NODE_TAG", "LIFEBOAT_RETENTION_DAYS", "LIFEBOAT_KEEP_MIN", "LIFEBOAT_DRY_RUN",
            "LIFEBOAT_INSTANCE_TYPES", "LIFEBOAT_CAPACITY", "LIFEBOAT_NOTIFY_TOPIC_ARN", "LIFEBOAT_FINAL_BACKUP",
            "LIFEBOAT_DRILL_SECURITY_GROUP",
        ]),
        value in "\\PC{0,40}",
    ) {
        if let Err(e) = Config::from_lookup(|n| (n == name).then(|| value.clone())) {
            prop_assert_eq!(e.variable, name);
            prop_assert!(e.to_string().contains(name));
        }
    }
}
