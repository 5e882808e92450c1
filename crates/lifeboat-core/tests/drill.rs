//! Restore drills: a fenced, guarded clone that goes through the relaunch's
//! own mechanisms, and is removed with everything made for it whatever
//! happened; the live node is never touched.

mod common;

use common::*;
use lifeboat_core::config::Config;
use lifeboat_core::memory::MemoryCloud;
use lifeboat_core::model::{ErrorKind, Instance, InstanceState, Refusal};
use lifeboat_core::ports::{CommandState, Network, Script};
use lifeboat_core::relaunch::{self, Cloud, Outcome, RelaunchError, Timing};
use lifeboat_core::tags::{DRILL_OF, REPLACES};
use std::time::Duration;

const DRILL_PROFILE: &str = "arn:aws:iam::123456789012:instance-profile/lifeboat-drill";

/// A deployment's drill settings as the stack sets them: the drill's own
/// instance profile and security group.
fn drill_config() -> Config {
    Config {
        drill_security_group: Some("sg-0drill".into()),
        drill_instance_profile: Some(DRILL_PROFILE.into()),
        ..Config::default()
    }
}

fn clones(cloud: &MemoryCloud) -> Vec<Instance> {
    cloud.instances().into_iter().filter(|i| i.tags.contains_key(DRILL_OF)).collect()
}

/// Every volume made for a drill that still exists.
fn drill_volumes(cloud: &MemoryCloud) -> Vec<String> {
    cloud.volumes().into_iter().filter(|v| v.tags.contains_key(DRILL_OF)).map(|v| v.id).collect()
}

#[tokio::test(start_paused = true)]
async fn a_healthy_drill_goes_through_the_relaunchs_mechanisms_fenced_and_cleans_up() {
    let cloud = MemoryCloud::new();
    let node = prepared_node(&cloud).await;
    let node_before = cloud.instance(&node).unwrap();
    let volumes_before = cloud.volumes();
    let config = drill_config();
    let report = run(&cloud, &config, &drill(false)).await.unwrap();
    assert_eq!(report.outcome, Outcome::DrillPassed);
    let clone = &clones(&cloud)[0];
    let replacement = report.replacement.as_ref().unwrap();
    assert_eq!(replacement.id, clone.id);
    assert_eq!(clone.state, InstanceState::Terminated, "cleaned up");
    assert_eq!(replacement.same_ip, Some(false));
    assert!(!clone.tags.contains_key("lifeboat:node") && !clone.tags.contains_key(REPLACES), "a clone is never a node");
    assert!(
        matches!(&replacement.network, Some(Network::Address { private_ip: None, security_group_ids, .. }) if security_group_ids == &["sg-0drill"])
    );
    // Guarded and fenced from its first boot: off the live node's address
    // and the rest of its VPC, with the VPC's resolver.
    let user_data = cloud.user_data(&clone.id).unwrap();
    let live_ip = node_before.private_ip.clone().unwrap();
    assert!(user_data.contains("ConditionPathExists=/run/lifeboat/released"));
    assert!(user_data.contains(&format!("FENCE='{live_ip}'")), "{user_data}");
    assert!(user_data.contains("VPC='10.0.0.0/16'") && user_data.contains("RESOLVER='10.0.0.2'"));
    assert!(user_data.contains("SSM_HOSTS=''"), "no region configured: SSM only through HTTPS outside the VPC");
    // The root was swapped for a volume made from the image's root snapshot.
    assert_eq!(cloud.root_tasks_of(&clone.id).len(), 1);
    // The repair ran in quarantine, then the health check; both on the clone.
    let commands = cloud.commands();
    let sent: Vec<(Script, Vec<String>)> = commands.iter().map(|c| (c.script, c.args.clone())).collect();
    assert_eq!(
        sent,
        [
            (Script::Repair, vec!["--quarantine".into(), "--timeout".into(), "480".into()]),
            (Script::Health, vec!["k8s-master".into(), "--timeout".into(), "120".into()]),
        ]
    );
    assert!(commands.iter().all(|c| c.instance_id == clone.id));
    // Everything made for it is gone; the live node and its volumes are untouched.
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(drill_volumes(&cloud).is_empty(), "{:?}", drill_volumes(&cloud));
    assert_eq!(cloud.instance(&node).unwrap(), node_before);
    assert_eq!(cloud.volumes(), volumes_before);
    assert_eq!(
        steps(&report),
        [
            "image",
            "launched",
            "guarded",
            "running",
            "root-swapped",
            "ssm-online",
            "command-sent",
            "repaired",
            "released",
            "isolated",
            "command-sent",
            "healthy",
            "cleaned-up"
        ]
    );
    assert_eq!(report.duration_ms, report.timeline.last().unwrap().at_ms);
    // The image remembers it was proven.
    let image =
        cloud.images().into_iter().find(|i| Some(&i.id) == report.state.as_ref().unwrap().image_id.as_ref()).unwrap();
    assert!(image.tags["lifeboat:drill"].starts_with("passed 2026-"), "{:?}", image.tags);
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_drill_fails_and_still_cleans_up() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    cloud.command_results(vec![
        CommandState::Failed {
            ssm_status: "Failed".into(),
            exit_code: 3,
            output: format!(r#"{{"result":"repaired","guard":"released","isolation":{{"instance_profile":"{DRILL_PROFILE}"}}}}"#),
            error: String::new(),
        },
        CommandState::Failed {
            ssm_status: "Failed".into(),
            exit_code: 1,
            output: "{\"result\":\"failed\",\"step\":\"health\",\"readyz\":true,\"node_ready\":false,\"message\":\"node k8s-master is NotReady\"}".into(),
            error: String::new(),
        },
    ]);
    let report = failed(run(&cloud, &drill_config(), &drill(false)).await);
    assert!(report.reason.as_deref().unwrap().starts_with("the clone is not healthy"), "{report:?}");
    let image = report.state.as_ref().unwrap().image_id.clone().unwrap();
    assert!(cloud.images().iter().any(|i| i.id == image && i.tags["lifeboat:drill"].starts_with("failed ")));
    assert_eq!(clones(&cloud)[0].state, InstanceState::Terminated);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(drill_volumes(&cloud).is_empty(), "deleted with the clone: {:?}", drill_volumes(&cloud));
}

#[tokio::test(start_paused = true)]
async fn a_clone_that_never_reaches_ssm_names_the_likely_cause_and_is_cleaned_up() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    cloud.agents_never_online();
    let config = drill_config();
    let report = failed(run(&cloud, &config, &drill(false)).await);
    let reason = report.reason.as_deref().unwrap();
    assert!(reason.contains("needs HTTPS to SSM") && reason.contains("sg-0drill"), "{reason}");
    assert_eq!(clones(&cloud)[0].state, InstanceState::Terminated);
    assert!(cloud.commands().is_empty());
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(drill_volumes(&cloud).is_empty(), "deleted with the clone: {:?}", drill_volumes(&cloud));
}

#[tokio::test(start_paused = true)]
async fn a_clone_is_fenced_off_the_live_nodes_public_address_too() {
    let cloud = MemoryCloud::new();
    let node = prepared_node(&cloud).await;
    cloud.set_public_ip(&node, "203.0.113.7");
    let live_ip = cloud.instance(&node).unwrap().private_ip.unwrap();
    run(&cloud, &drill_config(), &drill(false)).await.unwrap();
    let user_data = cloud.user_data(&clones(&cloud)[0].id).unwrap();
    assert!(user_data.contains(&format!("FENCE='{live_ip} 203.0.113.7'")), "{user_data}");
}

#[tokio::test(start_paused = true)]
async fn a_clone_in_a_region_reaches_its_ssm_endpoints_through_the_fence() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    let config = Config { region: Some("eu-west-1".into()), ..drill_config() };
    run(&cloud, &config, &drill(false)).await.unwrap();
    let user_data = cloud.user_data(&clones(&cloud)[0].id).unwrap();
    assert!(
        user_data.contains(
            "SSM_HOSTS='ssm.eu-west-1.amazonaws.com ssmmessages.eu-west-1.amazonaws.com ec2messages.eu-west-1.amazonaws.com'"
        ),
        "{user_data}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_clone_whose_vpc_cannot_be_read_is_never_launched() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    cloud.fail_next("DescribeSubnets", ErrorKind::Refused(Refusal::Authorization), "UnauthorizedOperation", 1);
    let report = failed(run(&cloud, &drill_config(), &drill(false)).await);
    assert!(report.reason.as_deref().unwrap().contains("DescribeSubnets"), "{:?}", report.reason);
    assert!(clones(&cloud).is_empty(), "no clone without its fence");
}

#[tokio::test(start_paused = true)]
async fn a_failed_root_swap_fails_the_drill_and_leaves_no_volume() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    cloud.fail_root_tasks();
    let report = failed(run(&cloud, &drill_config(), &drill(false)).await);
    assert!(report.reason.as_deref().unwrap().contains("ended Failed"), "{report:?}");
    assert_eq!(clones(&cloud)[0].state, InstanceState::Terminated);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert!(drill_volumes(&cloud).is_empty(), "the volume made for the swap is deleted: {:?}", drill_volumes(&cloud));
}

#[tokio::test(start_paused = true)]
async fn a_drill_that_cannot_launch_fails_with_nothing_left_running() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    cloud.refuse_capacity(None, None, "InsufficientInstanceCapacity");
    let report = failed(run(&cloud, &drill_config(), &drill(false)).await);
    assert!(report.reason.as_deref().unwrap().starts_with("no capacity"), "{report:?}");
    assert!(clones(&cloud).is_empty());
    assert_eq!(report.launch_attempts.len(), 2, "spot, then on-demand");
}

#[tokio::test(start_paused = true)]
async fn keep_is_refused_unless_the_deployment_allows_it() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    let before = cloud.calls().len();
    let err = run(&cloud, &drill_config(), &drill(true)).await.unwrap_err();
    assert!(matches!(err, RelaunchError::Event(_)) && err.to_string().contains("LIFEBOAT_DRILL_ALLOW_KEEP"), "{err}");
    assert_eq!(cloud.calls().len(), before, "no AWS call at all");

    let config = Config { drill_allow_keep: true, ..drill_config() };
    let report = run(&cloud, &config, &drill(true)).await.unwrap();
    assert_eq!(report.outcome, Outcome::DrillPassed);
    let kept = &clones(&cloud)[0];
    assert_eq!(kept.state, InstanceState::Running);
    assert_eq!(kept.tags["lifeboat:drill-kept"], "true");
    // A later drill (an invocation an hour later) leaves a kept clone alone.
    tokio::time::advance(Duration::from_secs(3600)).await;
    let handler = Cloud { ec2: &cloud, ssm: &cloud, notifier: &cloud };
    let later = now() + chrono::Duration::hours(1);
    relaunch::handle(handler, &drill_config(), Timing::default(), &drill(false), later, None).await.unwrap();
    assert_eq!(cloud.instance(&kept.id).unwrap().state, InstanceState::Running);
}

#[tokio::test(start_paused = true)]
async fn a_clone_an_earlier_drill_could_not_remove_is_removed_by_the_next() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    // The invocation is killed while the clone boots: no cleanup ran.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    let _ = run_until(&cloud, &drill_config(), &drill(false), Some(deadline)).await;
    let leftover = clones(&cloud)[0].id.clone();
    // Its cleanup ran here; on AWS a killed invocation never gets to it.
    cloud.revive(&leftover);
    // Half an hour later (EC2 stamped the clone with the wall clock).
    let later = chrono::Utc::now() + chrono::Duration::minutes(30);
    let handler = Cloud { ec2: &cloud, ssm: &cloud, notifier: &cloud };
    let report =
        relaunch::handle(handler, &drill_config(), Timing::default(), &drill(false), later, None).await.unwrap();
    assert!(steps(&report).contains(&"leftover-removed"), "{:?}", steps(&report));
    assert_eq!(cloud.instance(&leftover).unwrap().state, InstanceState::Terminated);
}

#[tokio::test(start_paused = true)]
async fn a_clone_runs_with_the_drills_own_profile_and_group_out_of_reach_of_its_pods() {
    let cloud = MemoryCloud::new();
    let node = prepared_node(&cloud).await;
    let node_profile = cloud.instance(&node).unwrap().instance_profile_arn.unwrap();
    let config = Config { drill_allow_keep: true, ..drill_config() };
    run(&cloud, &config, &drill(true)).await.unwrap();
    let clone = &clones(&cloud)[0];
    assert_eq!(clone.state, InstanceState::Running, "kept, to be looked at");
    assert_eq!(clone.instance_profile_arn.as_deref(), Some(DRILL_PROFILE));
    assert_ne!(clone.instance_profile_arn.as_deref(), Some(node_profile.as_str()), "never the node's credentials");
    assert_eq!(clone.http_put_response_hop_limit, Some(1), "a pod is one hop further: no instance credentials");
    assert_eq!(clone.http_tokens.as_deref(), Some("required"));
    assert_eq!(clone.security_group_ids, ["sg-0drill"]);
}

#[tokio::test(start_paused = true)]
async fn a_drill_without_its_own_profile_or_group_refuses_and_launches_nothing() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    for (config, named, not_named) in [
        (
            Config { drill_instance_profile: None, ..drill_config() },
            "LIFEBOAT_DRILL_INSTANCE_PROFILE",
            "LIFEBOAT_DRILL_SECURITY_GROUP",
        ),
        (
            Config { drill_security_group: None, ..drill_config() },
            "LIFEBOAT_DRILL_SECURITY_GROUP",
            "LIFEBOAT_DRILL_INSTANCE_PROFILE",
        ),
    ] {
        let before = cloud.calls().len();
        let report = failed(run(&cloud, &config, &drill(false)).await);
        let reason = report.reason.as_deref().unwrap();
        assert!(reason.contains("refuses") && reason.contains(named) && !reason.contains(not_named), "{reason}");
        if named == "LIFEBOAT_DRILL_SECURITY_GROUP" {
            assert!(
                reason.contains("DrillSecurityGroup") && reason.contains("VpcId"),
                "both parameters named: {reason}"
            );
        }
        assert!(!cloud.calls()[before..].iter().any(|c| c == "RunInstances"), "{:?}", &cloud.calls()[before..]);
    }
    assert!(clones(&cloud).is_empty());
    let report = failed(run(&cloud, &Config::default(), &drill(false)).await);
    let reason = report.reason.unwrap();
    assert!(
        reason.contains("LIFEBOAT_DRILL_INSTANCE_PROFILE") && reason.contains("LIFEBOAT_DRILL_SECURITY_GROUP"),
        "{reason}"
    );
    assert!(clones(&cloud).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_clone_with_another_identity_than_the_drills_fails_before_its_health_check() {
    let cloud = MemoryCloud::new();
    prepared_node(&cloud).await;
    for (hour, isolation) in [
        r#","isolation":{"live_unreachable":["10.0.1.4:6443"],"instance_profile":"arn:aws:iam::123456789012:instance-profile/k8s-node"}"#,
        "",
    ]
    .into_iter()
    .enumerate()
    {
        cloud.command_results(vec![CommandState::Failed {
            ssm_status: "Failed".into(),
            exit_code: 3,
            output: format!(r#"{{"result":"repaired","guard":"released"{isolation}}}"#),
            error: String::new(),
        }]);
        // Each drill a separate invocation, an hour apart (its launch token
        // is the invocation's time).
        let handler = Cloud { ec2: &cloud, ssm: &cloud, notifier: &cloud };
        let at = now() + chrono::Duration::hours(hour as i64);
        let report =
            failed(relaunch::handle(handler, &drill_config(), Timing::default(), &drill(false), at, None).await);
        let reason = report.reason.as_deref().unwrap();
        assert!(reason.contains(&format!("not of the drill's instance profile {DRILL_PROFILE}")), "{reason}");
        assert!(cloud.commands().iter().all(|c| c.script == Script::Repair), "no health check");
    }
}
