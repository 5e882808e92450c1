use super::*;
use chrono::TimeZone;
use lifeboat_core::model::{AttachedVolume, Attachment, Tags};

const TAG: &str = "lifeboat:node";

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

fn instance(id: &str, node: &str, state: InstanceState, launched: DateTime<Utc>) -> Instance {
    Instance {
        id: id.into(),
        state,
        launch_time: Some(launched),
        tags: Tags::from([(TAG.into(), node.into())]),
        instance_type: "t3.medium".into(),
        private_ip: Some("10.0.1.4".into()),
        primary_interface: Some(Attachment {
            interface_id: "eni-1".into(),
            attachment_id: "a".into(),
            delete_on_termination: false,
        }),
        volumes: vec![
            AttachedVolume { device: "/dev/xvda".into(), volume_id: "vol-1".into(), delete_on_termination: false },
            AttachedVolume { device: "/dev/sdf".into(), volume_id: "vol-2".into(), delete_on_termination: true },
        ],
        spot: true,
        ..Instance::default()
    }
}

fn image(id: &str, node: &str, state: ImageState, created: DateTime<Utc>, drill: Option<&str>) -> Image {
    let mut tags = Tags::from([(TAG.into(), node.into())]);
    if let Some(d) = drill {
        tags.insert(tags::DRILL.into(), d.into());
    }
    Image {
        id: id.into(),
        name: format!("{node}-{id}"),
        state,
        creation_date: Some(created),
        root_device: None,
        devices: vec![],
        tags,
    }
}

#[test]
fn the_drill_tag_reads_as_outcome_and_time() {
    assert_eq!(parse_drill("passed 2026-11-29T03:00:00Z"), Some((DrillOutcome::Passed, at(29, 3))));
    assert_eq!(parse_drill("failed 2026-11-29T04:00:00+01:00"), Some((DrillOutcome::Failed, at(29, 3))));
    assert_eq!(parse_drill("passed"), None);
    assert_eq!(parse_drill("maybe 2026-11-29T03:00:00Z"), None);
    assert_eq!(parse_drill("passed yesterday"), None);
}

#[test]
fn a_row_says_what_is_kept_the_newest_backup_and_its_age() {
    let instances = [instance("i-1", "k8s-master", InstanceState::Running, at(28, 0))];
    let images = [
        image("ami-old", "k8s-master", ImageState::Available, at(28, 1), None),
        image("ami-new", "k8s-master", ImageState::Available, at(29, 1), None),
        image("ami-pending", "k8s-master", ImageState::Pending, at(30, 1), None),
    ];
    let rows = nodes(TAG, &instances, &images, None, at(30, 4));
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!((r.instance.as_deref(), r.state.as_deref(), r.market), (Some("i-1"), Some("running"), Some("spot")));
    assert_eq!(r.interface_kept, Some(true));
    assert_eq!(r.volumes_kept, Some(KeptCount { kept: 1, total: 2 }));
    assert_eq!(r.backups, 2, "pending images are not backups yet");
    let newest = r.newest_backup.as_ref().unwrap();
    assert_eq!(newest.image_id, "ami-new");
    assert_eq!(age(newest.age_seconds.unwrap()), "1 d 3 h");
    assert_eq!(r.last_relaunch, None);
    assert_eq!(r.last_drill, None, "never drilled: the reader shows never");
}

#[test]
fn the_last_relaunch_is_read_from_the_running_instances_generation_tags() {
    let old = instance("i-old", "k8s-master", InstanceState::Terminated, at(20, 0));
    let mut new = instance("i-new", "k8s-master", InstanceState::Running, at(29, 2));
    new.tags.insert(tags::REPLACES.into(), "i-old".into());
    new.tags.insert(tags::STATE_SOURCE.into(), "old-volumes".into());
    new.tags.insert(tags::STATE_AS_OF.into(), "2026-11-29T01:58:00Z".into());
    let rows = nodes(TAG, &[old, new], &[], None, at(30, 0));
    let relaunch = rows[0].last_relaunch.clone().unwrap();
    assert_eq!(rows[0].instance.as_deref(), Some("i-new"));
    assert_eq!(relaunch.replaces, "i-old");
    assert_eq!(relaunch.state_source.as_deref(), Some("old-volumes"));
    assert_eq!(relaunch.state_as_of.as_deref(), Some("2026-11-29T01:58:00Z"));
    assert_eq!(relaunch.launched, Some(at(29, 2)));
}

#[test]
fn the_last_drill_is_the_newest_drill_tag_among_the_nodes_images() {
    let images = [
        image("ami-1", "k8s-master", ImageState::Available, at(27, 1), Some("passed 2026-11-27T03:00:00Z")),
        image("ami-2", "k8s-master", ImageState::Available, at(28, 1), Some("failed 2026-11-28T03:00:00Z")),
        image("ami-3", "k8s-master", ImageState::Available, at(29, 1), Some("garbage")),
    ];
    let drill = nodes(TAG, &[], &images, None, at(30, 0))[0].last_drill.clone().unwrap();
    assert_eq!(drill, Drill { outcome: DrillOutcome::Failed, at: at(28, 3), image_id: "ami-2".into() });
}

#[test]
fn a_node_whose_instance_is_gone_is_listed_from_its_backups() {
    let gone = instance("i-1", "k8s-master", InstanceState::Terminated, at(28, 0));
    let images = [
        image("ami-1", "k8s-master", ImageState::Available, at(29, 1), None),
        image("ami-2", "other", ImageState::Available, at(29, 1), None),
    ];
    let rows = nodes(TAG, &[gone], &images, None, at(30, 0));
    assert_eq!(rows.iter().map(|r| r.node.as_str()).collect::<Vec<_>>(), ["k8s-master", "other"]);
    assert_eq!(rows[0].state.as_deref(), Some("terminated"));
    assert_eq!(rows[0].interface_kept, None, "a terminated instance keeps nothing EC2 still shows");
    assert_eq!(rows[1].instance, None);
    let only = nodes(TAG, &[], &images, Some("other"), at(30, 0));
    assert_eq!(only.len(), 1);
}

#[test]
fn ages_read_in_the_largest_useful_units() {
    assert_eq!(age(-5), "0 s");
    assert_eq!(age(59), "59 s");
    assert_eq!(age(61), "1 min");
    assert_eq!(age(3 * 3600 + 12 * 60), "3 h 12 min");
    assert_eq!(age(2 * 86400 + 4 * 3600), "2 d 4 h");
}

#[test]
fn the_last_guard_line_of_the_console_is_the_guards_decision() {
    let console = "[    3.1] cloud-init[612]: lifeboat-guard: not-confirmed: systemd did not load the guard's drop-in\r\n\
                   [    9.2] sh[701]: lifeboat-guard: held: booted from vol-9, not vol-1\r\n\
                   [   10.0] systemd[1]: Finished lifeboat-guard.service - lifeboat boot guard: kubelet starts only\n\
                   lifeboat-guard: refusing to release kubelet: /var/lib/etcd is not mounted\n\
                   Ubuntu 24.04 LTS ip-10-0-1-4 ttyS0\n";
    let g = last_guard(console).unwrap();
    assert_eq!(g, BootGuard { guard: "held".into(), reason: "booted from vol-9, not vol-1".into() });
    assert!(g.is_held());

    let released = format!("{console}[ 11.0] sh[702]: lifeboat-guard: self-released: booted from vol-1 on 10.0.1.4\n");
    let g = last_guard(&released).unwrap();
    assert_eq!(g.guard, "self-released");
    assert_eq!(g.reason, "booted from vol-1 on 10.0.1.4");
    assert!(!g.is_held());

    assert_eq!(last_guard("Linux version 6.8\nlogin:\n"), None, "no guard this boot");
    assert!(HELD_FIX.contains("sudo sh /run/lifeboat/guard release") && HELD_FIX.contains("etcd"));
}

#[test]
fn a_row_has_no_guard_until_the_console_is_read() {
    let i = instance("i-1", "k8s-master", InstanceState::Running, at(1, 0));
    let rows = nodes(TAG, &[i], &[], None, at(2, 0));
    assert_eq!(rows[0].boot_guard, None);
    assert_eq!(rows[0].boot_guard_error, None);
}

#[test]
fn an_on_demand_node_says_since_when_and_why_from_its_fallback_record() {
    let mut fell_back = instance("i-1", "k8s-master", InstanceState::Running, at(29, 2));
    fell_back.spot = false;
    fell_back.tags.insert(tags::MARKET_FALLBACK.into(), "2026-11-29T02:00:00Z".into());
    fell_back.tags.insert(tags::MARKET_FALLBACK_REASON.into(), "m6i.large InsufficientInstanceCapacity".into());
    let mut chosen = instance("i-2", "other", InstanceState::Running, at(29, 2));
    chosen.spot = false;
    let spot = instance("i-3", "third", InstanceState::Running, at(29, 2));
    let rows = nodes(TAG, &[fell_back.clone(), chosen, spot], &[], None, at(30, 4));
    assert_eq!(rows[0].market, Some("on-demand"));
    assert_eq!(
        rows[0].market_fallback,
        Some(MarketFallback {
            since: Some(at(29, 2)),
            age_seconds: Some(26 * 3600),
            reason: Some("m6i.large InsufficientInstanceCapacity".into()),
        })
    );
    assert_eq!((rows[1].market, &rows[1].market_fallback), (Some("on-demand"), &None), "no record: launched so");
    assert_eq!((rows[2].market, &rows[2].market_fallback), (Some("spot"), &None));

    // A record on an instance that runs on spot again says nothing.
    fell_back.spot = true;
    assert_eq!(nodes(TAG, &[fell_back.clone()], &[], None, at(30, 4))[0].market_fallback, None);
    // An unreadable time is shown as such, the reason still.
    fell_back.spot = false;
    fell_back.tags.insert(tags::MARKET_FALLBACK.into(), "yesterday".into());
    let row = &nodes(TAG, &[fell_back], &[], None, at(30, 4))[0];
    let f = row.market_fallback.as_ref().unwrap();
    assert_eq!(
        (f.since, f.age_seconds, f.reason.as_deref()),
        (None, None, Some("m6i.large InsufficientInstanceCapacity"))
    );
}
