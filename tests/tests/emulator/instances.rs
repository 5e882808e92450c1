//! RunInstances' ClientToken and addresses, tag filters' lag, what a terminated instance keeps.

use super::*;

#[tokio::test]
async fn run_instances_honours_client_token_and_refuses_a_taken_ip() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    let ec2 = emu.ec2().await;
    let launch = || {
        ec2.run_instances()
            .image_id(BASE_AMI)
            .min_count(1)
            .max_count(1)
            .subnet_id(&subnet)
            .private_ip_address("10.0.1.10")
    };
    let first = launch().client_token("replace-i-1").send().await.unwrap();
    let again = launch().client_token("replace-i-1").send().await.unwrap();
    assert_eq!(first.instances()[0].instance_id(), again.instances()[0].instance_id());

    let err = launch().client_token("another-token").send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidIPAddress.InUse"));

    let all = ec2.describe_instances().send().await.unwrap();
    let count: usize = all.reservations().iter().map(|r| r.instances().len()).sum();
    assert_eq!(count, 1, "one launch, whatever the retries and the refused IP");
}

#[tokio::test]
async fn a_client_token_stays_bound_to_its_launch_and_its_parameters() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    let ec2 = emu.ec2().await;
    let launch = |ip: &str| {
        ec2.run_instances().image_id(BASE_AMI).min_count(1).max_count(1).subnet_id(&subnet).private_ip_address(ip)
    };
    launch("10.0.1.20").client_token("holder").send().await.unwrap();
    let err = launch("10.0.1.20").client_token("relaunch-1").send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidIPAddress.InUse"));

    // The refused launch bound nothing: the token is still free.
    let first = launch("10.0.1.21").client_token("relaunch-1").send().await.unwrap();
    let first = first.instances()[0].instance_id().unwrap().to_string();
    let err = launch("10.0.1.22").client_token("relaunch-1").send().await.unwrap_err();
    assert_eq!(err.code(), Some("IdempotentParameterMismatch"));
    assert_eq!(
        err.message(),
        Some("Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
    );
    assert_eq!(instances_where(&ec2, "client-token", "relaunch-1").await, std::slice::from_ref(&first));

    ec2.terminate_instances().instance_ids(&first).send().await.unwrap();
    let err = launch("10.0.1.21").client_token("relaunch-1").send().await.unwrap_err();
    assert_eq!(err.code(), Some("IdempotentInstanceTerminated"));
    // A day after the termination, long after EC2 stopped describing it.
    emu.control("POST", &format!("/lifeboat/instances/{first}"), &json!({"terminated_seconds_ago": 25 * 3600}));
    let err = launch("10.0.1.21").client_token("relaunch-1").send().await.unwrap_err();
    assert_eq!(err.code(), Some("IdempotentInstanceTerminated"));
    let err = launch("10.0.1.22").client_token("relaunch-1").send().await.unwrap_err();
    assert_eq!(err.code(), Some("IdempotentParameterMismatch"), "still bound after the termination");
    let err = launch("10.0.1.23").client_token("t".repeat(65)).send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "at most 64 characters");
}

#[tokio::test]
async fn tag_filters_can_lag_behind_a_launch_as_ec2_s_eventual_consistency_allows() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    let ec2 = emu.ec2().await;
    emu.control("POST", "/lifeboat/config", &json!({"tag_filter_lag_seconds": 600}));
    let launched = ec2
        .run_instances()
        .image_id(BASE_AMI)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .client_token("lagging")
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .tags(aws_sdk_ec2::types::Tag::builder().key("lifeboat:replaces").value("i-old").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let new = launched.instances()[0].instance_id().unwrap().to_string();
    // Filtered by tag: not yet.
    assert!(instances_where(&ec2, "tag:lifeboat:replaces", "i-old").await.is_empty());
    assert!(instances_where(&ec2, "tag-key", "lifeboat:replaces").await.is_empty());
    // By id or by its token: at once.
    assert_eq!(instances_where(&ec2, "client-token", "lagging").await, std::slice::from_ref(&new));
    let by_id = ec2.describe_instances().instance_ids(&new).send().await.unwrap();
    assert_eq!(by_id.reservations().len(), 1);
    emu.control("POST", "/lifeboat/config", &json!({"tag_filter_lag_seconds": 0}));
    assert_eq!(instances_where(&ec2, "tag:lifeboat:replaces", "i-old").await, [new]);
}

#[tokio::test]
async fn a_terminated_instance_loses_its_network_disks_and_profile_then_disappears() {
    let emu = Emulator::new();
    let (status, body) = emu.query("iam", "Action=CreateInstanceProfile&Version=2010-05-08&InstanceProfileName=node");
    assert_eq!(status, 200, "{body}");
    let subnet = emu.subnet().await;
    let ec2 = emu.ec2().await;
    let out = ec2
        .run_instances()
        .image_id(BASE_AMI)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Medium)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .key_name("ops")
        .client_token("launch-1")
        .iam_instance_profile(aws_sdk_ec2::types::IamInstanceProfileSpecification::builder().name("node").build())
        .tag_specifications(tag_spec(ResourceType::Instance, "lifeboat:node", "k8s-master"))
        .send()
        .await
        .unwrap();
    let id = out.instances()[0].instance_id().unwrap().to_string();
    let running = emu.instance(&id).await;
    assert!(running.iam_instance_profile().is_some());
    assert!(running.private_ip_address().is_some());
    assert!(!running.network_interfaces().is_empty());
    assert!(!running.block_device_mappings().is_empty());

    ec2.terminate_instances().instance_ids(&id).send().await.unwrap();
    let dead = emu.instance(&id).await;
    assert_eq!(dead.state().unwrap().name().unwrap().as_str(), "terminated");
    assert_eq!(dead.iam_instance_profile(), None);
    assert_eq!(dead.private_ip_address(), None);
    assert!(dead.network_interfaces().is_empty());
    assert!(dead.block_device_mappings().is_empty());
    assert_eq!(dead.key_name(), Some("ops"));
    assert_eq!(dead.instance_type().unwrap().as_str(), "t3.medium");
    assert_eq!(dead.image_id(), Some(BASE_AMI));
    assert_eq!(dead.client_token(), Some("launch-1"));
    assert_eq!(tag_pairs(dead.tags()), [("lifeboat:node".to_string(), "k8s-master".to_string())]);

    let age = |seconds: u64| {
        emu.control("POST", &format!("/lifeboat/instances/{id}"), &json!({"terminated_seconds_ago": seconds}))
    };
    assert_eq!(age(3500)["visible"], true);
    assert_eq!(instances_where(&ec2, "tag:lifeboat:node", "k8s-master").await, std::slice::from_ref(&id));
    assert_eq!(age(4000)["visible"], false);
    let err = ec2.describe_instances().instance_ids(&id).send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidInstanceID.NotFound"));
    assert!(instances_where(&ec2, "tag:lifeboat:node", "k8s-master").await.is_empty());
    assert!(ec2.describe_instances().send().await.unwrap().reservations().is_empty());
}
