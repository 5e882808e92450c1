//! Each emulator patch, checked with the real AWS SDK for Rust: the emulator
//! answers as AWS does where moto alone would not (tests/emulator/patches/).

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use lifeboat_tests::{BASE_AMI, Emulator, tag_pairs};
use serde_json::json;
use std::time::{Duration, Instant};

fn tag_spec(resource: ResourceType, key: &str, value: &str) -> TagSpecification {
    TagSpecification::builder().resource_type(resource).tags(Tag::builder().key(key).value(value).build()).build()
}

async fn image_state(ec2: &aws_sdk_ec2::Client, image: &str) -> String {
    let out = ec2.describe_images().image_ids(image).send().await.unwrap();
    out.images()[0].state().unwrap().as_str().to_string()
}

#[tokio::test]
async fn create_image_tags_snapshots_refuses_duplicate_names_and_starts_pending() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"ami_pending_seconds": 0.5}));
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ec2 = emu.ec2().await;
    let image = ec2
        .create_image()
        .instance_id(&instance)
        .name("node-20261126-0100")
        .no_reboot(true)
        .tag_specifications(tag_spec(ResourceType::Image, "k", "image"))
        .tag_specifications(tag_spec(ResourceType::Snapshot, "k", "snapshot"))
        .send()
        .await
        .expect("a snapshot TagSpecification is accepted")
        .image_id()
        .unwrap()
        .to_string();
    assert_eq!(image_state(&ec2, &image).await, "pending");

    let described = ec2.describe_images().image_ids(&image).send().await.unwrap();
    let snapshot = described.images()[0].block_device_mappings()[0].ebs().unwrap().snapshot_id().unwrap().to_string();
    let snapshots = ec2.describe_snapshots().snapshot_ids(&snapshot).send().await.unwrap();
    assert_eq!(tag_pairs(snapshots.snapshots()[0].tags()), [("k".to_string(), "snapshot".to_string())]);

    let err = ec2.create_image().instance_id(&instance).name("node-20261126-0100").send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidAMIName.Duplicate"));

    let deadline = Instant::now() + Duration::from_secs(10);
    while image_state(&ec2, &image).await == "pending" {
        assert!(Instant::now() < deadline, "the image never became available");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(image_state(&ec2, &image).await, "available");
}

#[tokio::test]
async fn deregister_image_deletes_associated_snapshots_when_asked() {
    let emu = Emulator::new();
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ec2 = emu.ec2().await;
    let snapshot_of = async |image: &str| {
        let out = ec2.describe_images().image_ids(image).send().await.unwrap();
        out.images()[0].block_device_mappings()[0].ebs().unwrap().snapshot_id().unwrap().to_string()
    };
    let keep = ec2.create_image().instance_id(&instance).name("keep-snapshot").send().await.unwrap();
    let keep = keep.image_id().unwrap();
    let drop = ec2.create_image().instance_id(&instance).name("drop-snapshot").send().await.unwrap();
    let drop = drop.image_id().unwrap();
    let (kept_snapshot, dropped_snapshot) = (snapshot_of(keep).await, snapshot_of(drop).await);

    ec2.deregister_image().image_id(keep).send().await.unwrap();
    let out = ec2.deregister_image().image_id(drop).delete_associated_snapshots(true).send().await.unwrap();
    let results: Vec<(String, String)> = out
        .delete_snapshot_results()
        .iter()
        .map(|r| (r.snapshot_id().unwrap().to_string(), r.return_code().unwrap().as_str().to_string()))
        .collect();
    assert_eq!(results, [(dropped_snapshot.clone(), "success".to_string())]);

    let remaining = ec2.describe_snapshots().owner_ids("self").send().await.unwrap();
    let remaining: Vec<&str> = remaining.snapshots().iter().filter_map(|s| s.snapshot_id()).collect();
    assert!(remaining.contains(&kept_snapshot.as_str()));
    assert!(!remaining.contains(&dropped_snapshot.as_str()));
}

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

/// The ids of the instances DescribeInstances finds with this filter.
async fn instances_where(ec2: &aws_sdk_ec2::Client, name: &str, value: &str) -> Vec<String> {
    let filter = aws_sdk_ec2::types::Filter::builder().name(name).values(value).build();
    let out = ec2.describe_instances().filters(filter).send().await.unwrap();
    out.reservations().iter().flat_map(|r| r.instances()).map(|i| i.instance_id().unwrap().to_string()).collect()
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

/// GetCommandInvocation once the invocation exists (it does not, for a
/// moment after SendCommand).
async fn invocation(
    ssm: &aws_sdk_ssm::Client,
    command: &str,
    instance: &str,
) -> aws_sdk_ssm::operation::get_command_invocation::GetCommandInvocationOutput {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match ssm.get_command_invocation().command_id(command).instance_id(instance).send().await {
            Ok(out) => return out,
            Err(e) if e.code() == Some("InvocationDoesNotExist") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

#[tokio::test]
async fn ssm_sees_online_instances_and_sends_only_to_the_requested_one() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    let target = emu.launch(&subnet, &[]).await;
    let bystander = emu.launch(&subnet, &[]).await;
    let offline = emu.launch(&subnet, &[]).await;
    emu.control("POST", "/lifeboat/config", &json!({"offline_instances": [offline]}));
    let ssm = emu.ssm().await;

    let info = ssm.describe_instance_information().send().await.unwrap();
    let mut online: Vec<(String, String)> = info
        .instance_information_list()
        .iter()
        .map(|i| (i.instance_id().unwrap().to_string(), i.ping_status().unwrap().as_str().to_string()))
        .collect();
    online.sort();
    let mut expected = vec![(target.clone(), "Online".to_string()), (bystander.clone(), "Online".to_string())];
    expected.sort();
    assert_eq!(online, expected);

    let err = ssm
        .send_command()
        .instance_ids(&offline)
        .document_name("AWS-RunShellScript")
        .parameters("commands", vec!["true".to_string()])
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInstanceId"));

    emu.control(
        "POST",
        "/lifeboat/config",
        &json!({"command_results": [{"status": "Failed", "response_code": 3, "stdout": "{\"result\":\"failed\"}"}]}),
    );
    let sent = ssm
        .send_command()
        .instance_ids(&target)
        .document_name("AWS-RunShellScript")
        .parameters("commands", vec!["true".to_string()])
        .send()
        .await
        .unwrap();
    let command = sent.command().unwrap();
    assert_eq!(command.instance_ids(), std::slice::from_ref(&target));
    let invocation = invocation(&ssm, command.command_id().unwrap(), &target).await;
    assert_eq!(invocation.status().unwrap().as_str(), "Failed");
    assert_eq!(invocation.response_code(), 3);
    assert_eq!(invocation.standard_output_content(), Some("{\"result\":\"failed\"}"));
    let err = ssm
        .get_command_invocation()
        .command_id(command.command_id().unwrap())
        .instance_id(&bystander)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvocationDoesNotExist"));
}

#[tokio::test]
async fn injected_faults_are_retried_by_the_sdk_or_surface_with_their_code() {
    let emu = Emulator::new();
    let ec2 = emu.ec2().await;
    emu.control(
        "POST",
        "/lifeboat/faults",
        &json!({"operation": "DescribeVpcs", "code": "RequestLimitExceeded", "count": 2}),
    );
    ec2.describe_vpcs().send().await.expect("throttling is retried");
    assert_eq!(emu.calls("DescribeVpcs"), 3);

    emu.control(
        "POST",
        "/lifeboat/faults",
        &json!({"operation": "DescribeSubnets", "code": "UnauthorizedOperation", "status": 403, "count": 1}),
    );
    let err = ec2.describe_subnets().send().await.unwrap_err();
    assert_eq!(err.code(), Some("UnauthorizedOperation"));
    assert_eq!(emu.calls("DescribeSubnets"), 1, "a client error is not retried");
}

#[tokio::test]
async fn control_api_sets_image_state_and_age() {
    let emu = Emulator::new();
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ec2 = emu.ec2().await;
    let image = ec2.create_image().instance_id(&instance).name("aged-image").send().await.unwrap();
    let image = image.image_id().unwrap();
    emu.control(
        "POST",
        &format!("/lifeboat/images/{image}"),
        &json!({"state": "failed", "creation_date": "2026-11-01T01:00:00Z"}),
    );
    let out = ec2.describe_images().image_ids(image).send().await.unwrap();
    assert_eq!(out.images()[0].state().unwrap().as_str(), "failed");
    assert!(
        out.images()[0].creation_date().unwrap().starts_with("2026-11-01T01:00:00"),
        "{:?}",
        out.images()[0].creation_date()
    );
}

// --- The model's constraints (strict.py) ------------------------------------

#[tokio::test]
async fn ssm_refuses_a_comment_over_100_characters_as_aws_does() {
    let emu = Emulator::new();
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ssm = emu.ssm().await;
    let send = |comment: String| {
        ssm.send_command()
            .instance_ids(&instance)
            .document_name("AWS-RunShellScript")
            .comment(comment)
            .parameters("commands", vec!["true".to_string()])
            .send()
    };
    let err = send("c".repeat(101)).await.unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
    assert_eq!(
        err.message(),
        Some(
            format!(
                "1 validation error detected: Value '{}' at 'comment' failed to satisfy constraint: \
                 Member must have length less than or equal to 100",
                "c".repeat(101)
            )
            .as_str()
        )
    );
    assert_eq!(emu.calls("SendCommand"), 1, "a validation error is not retried");
    send("c".repeat(100)).await.expect("100 characters are allowed");
}

#[tokio::test]
async fn ssm_lists_every_violation_and_refuses_values_outside_an_enum() {
    let emu = Emulator::new();
    let ssm = emu.ssm().await;
    let err = ssm
        .send_command()
        .instance_ids("i-123")
        .document_name("AWS-RunShellScript")
        .comment("c".repeat(101))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
    let message = err.message().unwrap();
    assert!(message.starts_with("2 validation errors detected: Value '[i-123]' at 'instanceIds' "), "{message}");
    assert!(message.contains("; Value 'ccc"), "{message}");

    let filter = aws_sdk_ssm::types::CommandFilter::builder()
        .key(aws_sdk_ssm::types::CommandFilterKey::from("Color"))
        .value("blue")
        .build()
        .unwrap();
    let err = ssm.list_commands().filters(filter).send().await.unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
    assert!(
        err.message()
            .unwrap()
            .contains("at 'filters.1.member.key' failed to satisfy constraint: Member must satisfy enum value set: ["),
        "{err:?}"
    );
}

#[tokio::test]
async fn ec2_refuses_a_missing_required_member_and_a_value_outside_an_enum() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    let ec2 = emu.ec2().await;
    // The SDK sends what it is given; EC2 checks the required members.
    let err = ec2.run_instances().image_id(BASE_AMI).min_count(1).subnet_id(&subnet).send().await.unwrap_err();
    assert_eq!(err.code(), Some("MissingParameter"));
    assert_eq!(err.message(), Some("The request must contain the parameter MaxCount"));

    let err = ec2
        .run_instances()
        .image_id(BASE_AMI)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .instance_type(aws_sdk_ec2::types::InstanceType::from("t3.colossal"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    assert_eq!(err.message(), Some("Invalid value 't3.colossal' for InstanceType."));
    let all = ec2.describe_instances().send().await.unwrap();
    assert!(all.reservations().is_empty(), "nothing launched");
}

#[tokio::test]
async fn sns_refuses_a_missing_required_member_with_validation_error() {
    let emu = Emulator::new();
    let topic = emu.sns().await.create_topic().name("lifeboat").send().await.unwrap();
    let topic = topic.topic_arn().unwrap().to_string();
    let err = emu.sns().await.publish().topic_arn(&topic).send().await.unwrap_err();
    assert_eq!(err.code(), Some("ValidationError"));
    assert_eq!(
        err.message(),
        Some(
            "1 validation error detected: Value null at 'message' failed to satisfy constraint: Member must not be null"
        )
    );
    let sent = emu.control("GET", "/lifeboat/notifications", &serde_json::Value::Null);
    assert_eq!(sent, json!([]));
}

#[tokio::test]
async fn sns_refuses_subjects_and_messages_as_aws_does() {
    let emu = Emulator::new();
    let sns = emu.sns().await;
    let topic = sns.create_topic().name("lifeboat").send().await.unwrap();
    let topic = topic.topic_arn().unwrap().to_string();
    let publish =
        |subject: String, message: &str| sns.publish().topic_arn(&topic).subject(subject).message(message).send();
    for subject in ["s".repeat(101), "two\nlines".to_string(), String::new()] {
        let err = publish(subject.clone(), "m").await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Some("InvalidParameter"), Some("Invalid parameter: Subject")),
            "{subject:?}"
        );
    }
    let err = publish("lifeboat: k8s-master relaunched".to_string(), "").await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Some("InvalidParameter"), Some("Invalid parameter: Empty message")));
    publish("s".repeat(100), "m").await.expect("100 characters are allowed");
}

// --- The event log ------------------------------------------------------------

/// The time of `event` for `resource` in the account's event log.
fn event_at(events: &serde_json::Value, resource: &str, event: &str) -> Option<f64> {
    events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"] == resource && e["event"] == event)
        .map(|e| e["at"].as_f64().unwrap())
}

#[tokio::test]
async fn the_event_log_tells_when_aws_reached_each_state() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"ami_pending_seconds": 0.4, "ssm_online_seconds": 0.2}));
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ec2 = emu.ec2().await;
    let image = ec2.create_image().instance_id(&instance).name("logged").send().await.unwrap();
    let image = image.image_id().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(600)).await;
    ec2.terminate_instances().instance_ids(&instance).send().await.unwrap();

    let events = emu.control("GET", "/lifeboat/events", &serde_json::Value::Null);
    let running = event_at(&events, &instance, "running").expect("running");
    let online = event_at(&events, &instance, "online").expect("online");
    let available = event_at(&events, &image, "image-available").expect("image-available");
    let terminated = event_at(&events, &instance, "terminated").expect("terminated");
    assert!((online - running - 0.2).abs() < 0.1, "{events}");
    assert!(available > online && available < terminated, "{events}");
    let times: Vec<f64> = events.as_array().unwrap().iter().map(|e| e["at"].as_f64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in time order: {events}");
}

// --- Interfaces and addresses after a termination ------------------------------

#[tokio::test]
async fn a_termination_frees_addresses_and_kept_interfaces_only_a_moment_later() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"ip_release_seconds": 3.0, "eni_release_seconds": 1.0}));
    let subnet = emu.subnet().await;
    let ec2 = emu.ec2().await;
    let on_address = |ip: &str| {
        ec2.run_instances().image_id(BASE_AMI).min_count(1).max_count(1).subnet_id(&subnet).private_ip_address(ip)
    };
    let on_interface = |eni: &str| {
        let spec = aws_sdk_ec2::types::InstanceNetworkInterfaceSpecification::builder()
            .device_index(0)
            .network_interface_id(eni)
            .build();
        ec2.run_instances().image_id(BASE_AMI).min_count(1).max_count(1).network_interfaces(spec)
    };
    let dropped = on_address("10.0.1.30").send().await.unwrap();
    let dropped = dropped.instances()[0].instance_id().unwrap().to_string();
    let eni = ec2.create_network_interface().subnet_id(&subnet).private_ip_address("10.0.1.31").send().await.unwrap();
    let eni = eni.network_interface().unwrap().network_interface_id().unwrap().to_string();
    let kept = on_interface(&eni).send().await.unwrap();
    let kept = kept.instances()[0].instance_id().unwrap().to_string();
    let err =
        ec2.create_network_interface().subnet_id(&subnet).private_ip_address("10.0.1.31").send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidIPAddress.InUse"), "the kept interface's own address");

    ec2.terminate_instances().instance_ids(&dropped).instance_ids(&kept).send().await.unwrap();
    let err = on_address("10.0.1.30").send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidIPAddress.InUse"));
    let err =
        ec2.create_network_interface().subnet_id(&subnet).private_ip_address("10.0.1.30").send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidIPAddress.InUse"));
    let described = ec2.describe_network_interfaces().network_interface_ids(&eni).send().await.unwrap();
    let interface = &described.network_interfaces()[0];
    assert_eq!(interface.status().unwrap().as_str(), "in-use");
    assert_eq!(interface.attachment().unwrap().status().unwrap().as_str(), "detaching");
    let err = on_interface(&eni).send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidNetworkInterface.InUse"));

    let available = || async {
        let described = ec2.describe_network_interfaces().network_interface_ids(&eni).send().await.unwrap();
        described.network_interfaces()[0].status().unwrap().as_str() == "available"
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !available().await {
        assert!(Instant::now() < deadline, "the kept interface never became available");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let described = ec2.describe_network_interfaces().network_interface_ids(&eni).send().await.unwrap();
    assert_eq!(described.network_interfaces()[0].private_ip_address(), Some("10.0.1.31"));
    let err = on_address("10.0.1.30").send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidIPAddress.InUse"), "still within ip_release_seconds");
    on_interface(&eni).send().await.expect("the kept interface is free");

    while let Err(e) = on_address("10.0.1.30").send().await {
        assert_eq!(e.code(), Some("InvalidIPAddress.InUse"));
        assert!(Instant::now() < deadline, "the address was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = emu.control("GET", "/lifeboat/events", &serde_json::Value::Null);
    let terminated = event_at(&events, &kept, "terminated").unwrap();
    let available = event_at(&events, &eni, "interface-available").unwrap();
    assert!((available - terminated - 1.0).abs() < 0.01, "{events}");
}

// --- Disabled images ------------------------------------------------------------

#[tokio::test]
async fn a_disabled_image_is_described_only_when_asked_and_keeps_its_snapshot() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"ami_pending_seconds": 0}));
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ec2 = emu.ec2().await;
    let image = ec2.create_image().instance_id(&instance).name("to-disable").send().await.unwrap();
    let image = image.image_id().unwrap().to_string();
    let own = || ec2.describe_images().owners("self");
    assert_eq!(own().send().await.unwrap().images().len(), 1);

    ec2.disable_image().image_id(&image).send().await.unwrap();
    assert!(own().send().await.unwrap().images().is_empty(), "left out by default");
    assert!(ec2.describe_images().image_ids(&image).send().await.unwrap().images().is_empty());
    let all = own().include_disabled(true).send().await.unwrap();
    assert_eq!(all.images().len(), 1);
    assert_eq!(all.images()[0].state().unwrap().as_str(), "disabled");

    let snapshot = all.images()[0].block_device_mappings()[0].ebs().unwrap().snapshot_id().unwrap().to_string();
    let err = ec2.delete_snapshot().snapshot_id(&snapshot).send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidSnapshot.InUse"));

    let events = emu.control("GET", "/lifeboat/events", &serde_json::Value::Null);
    assert!(event_at(&events, &image, "image-disabled").is_some(), "{events}");
    // The control API disables too (state), for images made by other means.
    ec2.enable_image().image_id(&image).send().await.unwrap();
    emu.control("POST", &format!("/lifeboat/images/{image}"), &json!({"state": "disabled"}));
    assert!(own().send().await.unwrap().images().is_empty());
}

// --- EBS as the relaunch uses it ---------------------------------------------------

use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice, EbsInstanceBlockDeviceSpecification};
use aws_sdk_ec2::types::{Filter, InstanceBlockDeviceMappingSpecification};

fn ebs(device: &str, ebs: EbsBlockDevice) -> BlockDeviceMapping {
    BlockDeviceMapping::builder().device_name(device).ebs(ebs).build()
}

fn delete_on_termination(device: &str, value: Option<bool>) -> InstanceBlockDeviceMappingSpecification {
    let ebs = EbsInstanceBlockDeviceSpecification::builder().set_delete_on_termination(value).build();
    InstanceBlockDeviceMappingSpecification::builder().device_name(device).ebs(ebs).build()
}

/// (device, volume id, DeleteOnTermination) of each block device, by device.
async fn devices(emu: &Emulator, instance: &str) -> Vec<(String, String, bool)> {
    let described = emu.instance(instance).await;
    let mut devices: Vec<(String, String, bool)> = described
        .block_device_mappings()
        .iter()
        .map(|m| {
            let ebs = m.ebs().unwrap();
            (
                m.device_name().unwrap().to_string(),
                ebs.volume_id().unwrap().to_string(),
                ebs.delete_on_termination().unwrap(),
            )
        })
        .collect();
    devices.sort();
    devices
}

async fn volume(ec2: &aws_sdk_ec2::Client, id: &str) -> aws_sdk_ec2::types::Volume {
    ec2.describe_volumes().volume_ids(id).send().await.unwrap().volumes()[0].clone()
}

/// A node as preparation leaves it: a root and a data volume, both kept on
/// termination and tagged; returns (instance, root volume, data volume).
async fn prepared_node(emu: &Emulator, subnet: &str) -> (String, String, String) {
    let ec2 = emu.ec2().await;
    let out = ec2
        .run_instances()
        .image_id(BASE_AMI)
        .min_count(1)
        .max_count(1)
        .subnet_id(subnet)
        .block_device_mappings(ebs(
            "/dev/sdf",
            EbsBlockDevice::builder().volume_size(20).volume_type(aws_sdk_ec2::types::VolumeType::Gp3).build(),
        ))
        .user_data("I2Nsb3VkLWJvb3Rob29r")
        .send()
        .await
        .unwrap();
    let node = out.instances()[0].instance_id().unwrap().to_string();
    let before = devices(emu, &node).await;
    assert_eq!(
        before.iter().map(|d| (d.0.as_str(), d.2)).collect::<Vec<_>>(),
        [("/dev/sda1", true), ("/dev/sdf", true)]
    );
    let (root, data) = (before[0].1.clone(), before[1].1.clone());
    ec2.modify_instance_attribute()
        .instance_id(&node)
        .block_device_mappings(delete_on_termination("/dev/sda1", Some(false)))
        .block_device_mappings(delete_on_termination("/dev/sdf", Some(false)))
        .send()
        .await
        .unwrap();
    for (id, kind) in [(&root, "root"), (&data, "data")] {
        let tags = [("lifeboat:node", "k8s-master"), ("lifeboat:volume", kind)];
        let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect();
        ec2.create_tags().resources(id).set_tags(Some(tags)).send().await.unwrap();
    }
    (node, root, data)
}

#[tokio::test]
async fn block_device_mappings_show_and_change_delete_on_termination_and_keep_user_data() {
    let emu = Emulator::new();
    let (node, root, data) = prepared_node(&emu, &emu.subnet().await).await;
    let ec2 = emu.ec2().await;
    assert_eq!(emu.instance(&node).await.root_device_name(), Some("/dev/sda1"));
    assert_eq!(
        devices(&emu, &node).await,
        [("/dev/sda1".to_string(), root.clone(), false), ("/dev/sdf".to_string(), data.clone(), false)]
    );
    // DeleteOnTermination omitted means true (API reference).
    ec2.modify_instance_attribute()
        .instance_id(&node)
        .block_device_mappings(delete_on_termination("/dev/sdf", None))
        .send()
        .await
        .unwrap();
    assert!(devices(&emu, &node).await[1].2);
    let err = ec2
        .modify_instance_attribute()
        .instance_id(&node)
        .block_device_mappings(delete_on_termination("/dev/sdz", Some(false)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidInstanceAttributeValue"));

    let attribute = ec2
        .describe_instance_attribute()
        .instance_id(&node)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .unwrap();
    assert_eq!(attribute.user_data().unwrap().value(), Some("I2Nsb3VkLWJvb3Rob29r"));

    let err = ec2.delete_volume().volume_id(&data).send().await.unwrap_err();
    assert_eq!(err.code(), Some("VolumeInUse"));
}

#[tokio::test]
async fn images_record_each_volume_and_launches_apply_or_override_them() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"ami_pending_seconds": 0}));
    let subnet = emu.subnet().await;
    let (node, _, _) = prepared_node(&emu, &subnet).await;
    let ec2 = emu.ec2().await;
    let image = ec2
        .create_image()
        .instance_id(&node)
        .name("node-20261126-0100")
        .tag_specifications(tag_spec(ResourceType::Snapshot, "lifeboat:node", "k8s-master"))
        .send()
        .await
        .unwrap();
    let image = image.image_id().unwrap().to_string();
    let described = ec2.describe_images().image_ids(&image).send().await.unwrap();
    let described = &described.images()[0];
    assert_eq!(described.root_device_name(), Some("/dev/sda1"));
    let recorded: Vec<(String, i32, String, bool)> = described
        .block_device_mappings()
        .iter()
        .map(|m| {
            let ebs = m.ebs().unwrap();
            let kind = ebs.volume_type().unwrap().as_str().to_string();
            (
                m.device_name().unwrap().to_string(),
                ebs.volume_size().unwrap(),
                kind,
                ebs.delete_on_termination().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        recorded,
        [
            ("/dev/sda1".to_string(), 8, "gp2".to_string(), false),
            ("/dev/sdf".to_string(), 20, "gp3".to_string(), false)
        ]
    );
    let snapshots: Vec<String> =
        described.block_device_mappings().iter().map(|m| m.ebs().unwrap().snapshot_id().unwrap().to_string()).collect();
    let tagged = ec2.describe_snapshots().snapshot_ids(&snapshots[0]).snapshot_ids(&snapshots[1]).send().await.unwrap();
    for snapshot in tagged.snapshots() {
        assert_eq!(tag_pairs(snapshot.tags()), [("lifeboat:node".to_string(), "k8s-master".to_string())]);
    }

    // As launched by a relaunch: the root deleted on termination, the data
    // device suppressed (a preserved volume will be attached there).
    let replacement = ec2
        .run_instances()
        .image_id(&image)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .block_device_mappings(ebs("/dev/sda1", EbsBlockDevice::builder().delete_on_termination(true).build()))
        .block_device_mappings(BlockDeviceMapping::builder().device_name("/dev/sdf").no_device("").build())
        .tag_specifications(tag_spec(ResourceType::Volume, "lifeboat:restored-from", &image))
        .send()
        .await
        .unwrap();
    let replacement = replacement.instances()[0].instance_id().unwrap().to_string();
    let launched = devices(&emu, &replacement).await;
    assert_eq!(launched.len(), 1, "{launched:?}");
    assert_eq!((launched[0].0.as_str(), launched[0].2), ("/dev/sda1", true));
    let root = volume(&ec2, &launched[0].1).await;
    assert_eq!(root.snapshot_id(), Some(snapshots[0].as_str()));
    assert_eq!(root.size(), Some(8));
    assert_eq!(tag_pairs(root.tags()), [("lifeboat:restored-from".to_string(), image.clone())]);

    // Without a mapping of its own, a launch takes the image's, flags included.
    let clone = ec2.run_instances().image_id(&image).min_count(1).max_count(1).subnet_id(&subnet).send().await.unwrap();
    let clone = clone.instances()[0].instance_id().unwrap().to_string();
    let flags: Vec<(String, bool)> = devices(&emu, &clone).await.into_iter().map(|d| (d.0, d.2)).collect();
    assert_eq!(flags, [("/dev/sda1".to_string(), false), ("/dev/sdf".to_string(), false)]);
    let data = volume(&ec2, &devices(&emu, &clone).await[1].1).await;
    assert_eq!((data.snapshot_id(), data.size()), (Some(snapshots[1].as_str()), Some(20)));
}

#[tokio::test]
async fn volumes_kept_on_termination_are_found_and_attached_where_they_belong() {
    let emu = Emulator::new();
    let subnet = emu.subnet().await;
    let (node, root, data) = prepared_node(&emu, &subnet).await;
    let ec2 = emu.ec2().await;
    let zone = emu.instance(&node).await.placement().unwrap().availability_zone().unwrap().to_string();
    ec2.terminate_instances().instance_ids(&node).send().await.unwrap();

    let filter = |name: &str, value: &str| Filter::builder().name(name).values(value).build();
    let kept = ec2
        .describe_volumes()
        .filters(filter("tag:lifeboat:node", "k8s-master"))
        .filters(filter("status", "available"))
        .filters(filter("availability-zone", &zone))
        .send()
        .await
        .unwrap();
    let mut kept: Vec<String> = kept.volumes().iter().map(|v| v.volume_id().unwrap().to_string()).collect();
    kept.sort();
    let mut expected = vec![root.clone(), data.clone()];
    expected.sort();
    assert_eq!(kept, expected, "both survive, tags intact");

    let replacement = emu.launch(&subnet, &[]).await;
    let attach = |volume: &str, device: &str| {
        ec2.attach_volume().volume_id(volume).instance_id(&replacement).device(device).send()
    };
    attach(&data, "/dev/sdf").await.unwrap();
    let attached = ec2.describe_volumes().filters(filter("attachment.instance-id", &replacement)).send().await.unwrap();
    assert!(attached.volumes().iter().any(|v| v.volume_id() == Some(data.as_str())));
    assert!(!devices(&emu, &replacement).await[1].2, "an attached volume is kept on termination by default");
    assert_eq!(attach(&data, "/dev/sdg").await.unwrap_err().code(), Some("VolumeInUse"));
    let err = attach(&root, "/dev/sdf").await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValue"));
    assert_eq!(
        err.message(),
        Some("Invalid value '/dev/sdf' for unixDevice. Attachment point /dev/sdf is already in use")
    );
    let other_zone = if zone == "eu-west-1a" { "eu-west-1b" } else { "eu-west-1a" };
    let elsewhere = ec2.create_volume().availability_zone(other_zone).size(8).send().await.unwrap();
    let err = attach(elsewhere.volume_id().unwrap(), "/dev/sdh").await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidVolume.ZoneMismatch"));

    // A drill's volume: made from a snapshot, tagged as it is created.
    let snapshot = ec2.create_snapshot().volume_id(&root).send().await.unwrap();
    let drill = ec2
        .create_volume()
        .availability_zone(&zone)
        .snapshot_id(snapshot.snapshot_id().unwrap())
        .tag_specifications(tag_spec(ResourceType::Volume, "lifeboat:drill-of", "k8s-master"))
        .send()
        .await
        .unwrap();
    assert_eq!(drill.size(), Some(8));
    assert_eq!(tag_pairs(drill.tags()), [("lifeboat:drill-of".to_string(), "k8s-master".to_string())]);
    ec2.delete_volume().volume_id(drill.volume_id().unwrap()).send().await.unwrap();
}

// --- Spot interruptions --------------------------------------------------------------

async fn state_of(emu: &Emulator, instance: &str) -> String {
    emu.instance(instance).await.state().unwrap().name().unwrap().as_str().to_string()
}

async fn wait_for_state(emu: &Emulator, instance: &str, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while state_of(emu, instance).await != wanted {
        assert!(Instant::now() < deadline, "{instance} never became {wanted}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_spot_termination_shuts_down_then_keeps_what_was_kept() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"shutdown_seconds": 0.5, "eni_release_seconds": 0.5}));
    let (node, root, data) = prepared_node(&emu, &emu.subnet().await).await;
    let ec2 = emu.ec2().await;
    let eni = emu.instance(&node).await.network_interfaces()[0].clone();
    let attachment = eni.attachment().unwrap().attachment_id().unwrap().to_string();
    let eni = eni.network_interface_id().unwrap().to_string();
    let keep = aws_sdk_ec2::types::NetworkInterfaceAttachmentChanges::builder()
        .attachment_id(attachment)
        .delete_on_termination(false)
        .build();
    ec2.modify_network_interface_attribute().network_interface_id(&eni).attachment(keep).send().await.unwrap();

    emu.control("POST", &format!("/lifeboat/interrupt/{node}"), &json!({"action": "terminate", "after_seconds": 0.3}));
    assert_eq!(state_of(&emu, &node).await, "running");
    wait_for_state(&emu, &node, "shutting-down").await;
    wait_for_state(&emu, &node, "terminated").await;
    let dead = emu.instance(&node).await;
    assert_eq!(dead.state_reason().unwrap().code(), Some("Server.SpotInstanceTermination"));
    for id in [&root, &data] {
        assert_eq!(volume(&ec2, id).await.state().unwrap().as_str(), "available");
    }
    let events = emu.control("GET", "/lifeboat/events", &serde_json::Value::Null);
    let shutting_down = event_at(&events, &node, "shutting-down").unwrap();
    let terminated = event_at(&events, &node, "terminated").unwrap();
    assert!((terminated - shutting_down - 0.5).abs() < 0.01, "{events}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let described = ec2.describe_network_interfaces().network_interface_ids(&eni).send().await.unwrap();
    assert_eq!(described.network_interfaces()[0].status().unwrap().as_str(), "available");
    let events = emu.control("GET", "/lifeboat/events", &serde_json::Value::Null);
    assert!((event_at(&events, &eni, "interface-available").unwrap() - terminated - 0.5).abs() < 0.01, "{events}");
    assert!(event_at(&events, &root, "volume-available").is_some(), "{events}");
}

#[tokio::test]
async fn a_spot_stop_or_hibernation_keeps_the_disks_and_the_interface() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"shutdown_seconds": 0.2}));
    let subnet = emu.subnet().await;
    for action in ["stop", "hibernate"] {
        let (node, root, _) = prepared_node(&emu, &subnet).await;
        let ip = emu.instance(&node).await.private_ip_address().unwrap().to_string();
        emu.control("POST", &format!("/lifeboat/interrupt/{node}"), &json!({"action": action, "after_seconds": 0}));
        wait_for_state(&emu, &node, "stopped").await;
        let stopped = emu.instance(&node).await;
        assert_eq!(stopped.state_reason().unwrap().code(), Some("Server.SpotInstanceShutdown"));
        assert_eq!(stopped.private_ip_address(), Some(ip.as_str()));
        assert_eq!(stopped.network_interfaces().len(), 1);
        assert_eq!(devices(&emu, &node).await.len(), 2, "{action}");
        assert_eq!(volume(&emu.ec2().await, &root).await.state().unwrap().as_str(), "in-use");
        let events = emu.control("GET", "/lifeboat/events", &serde_json::Value::Null);
        assert!(event_at(&events, &node, "stopping").unwrap() < event_at(&events, &node, "stopped").unwrap());
    }
    let (status, body) =
        emu.raw("POST", &format!("/lifeboat/interrupt/i-0?account={}", emu.account), &[], "{\"action\": \"reboot\"}");
    assert_eq!(status, 400, "{body}");
}

// --- Run Command -------------------------------------------------------------------

async fn run_shell(ssm: &aws_sdk_ssm::Client, instance: &str, timeout: &str) -> Result<String, String> {
    ssm.send_command()
        .instance_ids(instance)
        .document_name("AWS-RunShellScript")
        .parameters("commands", vec!["/usr/local/sbin/lifeboat-repair.sh".to_string()])
        .parameters("executionTimeout", vec![timeout.to_string()])
        .send()
        .await
        .map(|out| out.command().unwrap().command_id().unwrap().to_string())
        .map_err(|e| e.code().unwrap_or_default().to_string())
}

#[tokio::test]
async fn an_invocation_exists_a_moment_after_send_command() {
    let emu = Emulator::new();
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ssm = emu.ssm().await;
    let command = run_shell(&ssm, &instance, "600").await.unwrap();
    let err = ssm.get_command_invocation().command_id(&command).instance_id(&instance).send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvocationDoesNotExist"));
    let sent = Instant::now();
    let done = invocation(&ssm, &command, &instance).await;
    assert!(sent.elapsed() > Duration::from_millis(300), "ssm_invocation_delay_seconds is 0.5 by default");
    assert_eq!(done.status().unwrap().as_str(), "Success");
}

#[tokio::test]
async fn a_command_running_past_its_execution_timeout_ends_timed_out() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"ssm_invocation_delay_seconds": 0}));
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ssm = emu.ssm().await;
    emu.control(
        "POST",
        "/lifeboat/config",
        &json!({"command_results": [{"seconds": 30, "stdout": "{\"result\":\"repaired\"}"}, {"seconds": 0.2}]}),
    );
    let slow = run_shell(&ssm, &instance, "1").await.unwrap();
    let quick = run_shell(&ssm, &instance, "1").await.unwrap();
    assert_eq!(invocation(&ssm, &slow, &instance).await.status().unwrap().as_str(), "InProgress");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let timed_out = invocation(&ssm, &slow, &instance).await;
    assert_eq!(timed_out.status().unwrap().as_str(), "TimedOut");
    assert_eq!(timed_out.status_details(), Some("ExecutionTimedOut"));
    assert_eq!(timed_out.response_code(), -1);
    assert_eq!(timed_out.standard_output_content(), Some(""));
    assert_eq!(invocation(&ssm, &quick, &instance).await.status().unwrap().as_str(), "Success");

    // AWS-RunShellScript's own parameters, as AWS declares them.
    assert_eq!(run_shell(&ssm, &instance, "0").await, Err("InvalidParameters".to_string()));
    assert_eq!(run_shell(&ssm, &instance, "172801").await, Err("InvalidParameters".to_string()));
    let err = ssm
        .send_command()
        .instance_ids(&instance)
        .document_name("AWS-RunShellScript")
        .parameters("commands", vec!["true".to_string()])
        .parameters("color", vec!["blue".to_string()])
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameters"));
}

#[tokio::test]
async fn a_command_document_of_the_stack_is_sent_with_its_declared_parameters() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"ssm_invocation_delay_seconds": 0}));
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ssm = emu.ssm().await;
    let content = json!({
        "schemaVersion": "2.2",
        "description": "lifeboat repair",
        "parameters": {
            "mode": {"type": "String", "allowedValues": ["repair", "dry-run"]},
            "timeout": {"type": "String", "default": "600", "allowedPattern": "^[0-9]{1,5}$"}
        },
        "mainSteps": [{
            "action": "aws:runShellScript",
            "name": "repair",
            "inputs": {"runCommand": ["lifeboat-repair.sh --{{ mode }}"], "timeoutSeconds": "{{ timeout }}"}
        }]
    });
    ssm.create_document()
        .name("lifeboat-repair")
        .content(content.to_string())
        .document_type(aws_sdk_ssm::types::DocumentType::Command)
        .document_format(aws_sdk_ssm::types::DocumentFormat::Json)
        .send()
        .await
        .unwrap();
    let send = async |params: &[(&str, &str)], document: &str| -> Result<String, String> {
        let mut call = ssm.send_command().instance_ids(&instance).document_name(document);
        for (k, v) in params {
            call = call.parameters(*k, vec![v.to_string()]);
        }
        let out = call.send().await.map_err(|e| e.code().unwrap_or_default().to_string())?;
        Ok(out.command().unwrap().command_id().unwrap().to_string())
    };
    let refused = |code: &str| Err::<String, String>(code.to_string());
    assert!(send(&[("mode", "repair")], "lifeboat-repair").await.is_ok());
    assert_eq!(send(&[], "lifeboat-repair").await, refused("InvalidParameters"), "mode has no default");
    assert_eq!(send(&[("mode", "rebuild")], "lifeboat-repair").await, refused("InvalidParameters"));
    assert_eq!(send(&[("mode", "repair"), ("timeout", "ten")], "lifeboat-repair").await, refused("InvalidParameters"));
    assert_eq!(send(&[("mode", "repair"), ("node", "x")], "lifeboat-repair").await, refused("InvalidParameters"));
    assert_eq!(send(&[("mode", "repair")], "lifeboat-missing").await, refused("InvalidDocument"));

    // Its timeoutSeconds comes from its own parameter.
    emu.control("POST", "/lifeboat/config", &json!({"command_results": [{"seconds": 5}]}));
    let command = send(&[("mode", "repair"), ("timeout", "1")], "lifeboat-repair").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(invocation(&ssm, &command, &instance).await.status().unwrap().as_str(), "TimedOut");
}

// --- Root volume replacement ---------------------------------------------------------

use aws_sdk_ec2::types::ReplaceRootVolumeTask;

async fn task(ec2: &aws_sdk_ec2::Client, id: &str) -> ReplaceRootVolumeTask {
    let out = ec2.describe_replace_root_volume_tasks().replace_root_volume_task_ids(id).send().await.unwrap();
    out.replace_root_volume_tasks()[0].clone()
}

async fn wait_for_task(ec2: &aws_sdk_ec2::Client, id: &str) -> ReplaceRootVolumeTask {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let task = task(ec2, id).await;
        if !matches!(task.task_state().unwrap().as_str(), "pending" | "in-progress") {
            return task;
        }
        assert!(Instant::now() < deadline, "the task never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ping_status(emu: &Emulator, instance: &str) -> Option<String> {
    let info = emu.ssm().await.describe_instance_information().send().await.unwrap();
    info.instance_information_list()
        .iter()
        .find(|i| i.instance_id() == Some(instance))
        .map(|i| i.ping_status().unwrap().as_str().to_string())
}

/// The old node's preserved root (marked as holding data written after the
/// last backup) and a replacement launched next to it.
async fn preserved_root_and_replacement(emu: &Emulator) -> (String, String) {
    let subnet = emu.subnet().await;
    let (node, root, _) = prepared_node(emu, &subnet).await;
    let ec2 = emu.ec2().await;
    ec2.create_tags()
        .resources(&root)
        .tags(Tag::builder().key("marker").value("after-backup").build())
        .send()
        .await
        .unwrap();
    ec2.terminate_instances().instance_ids(&node).send().await.unwrap();
    (root, emu.launch(&subnet, &[]).await)
}

#[tokio::test]
async fn a_root_volume_task_swaps_in_the_given_volume_and_reboots_the_instance() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"root_task_seconds": 0.6, "reboot_seconds": 1.5}));
    let (root, replacement) = preserved_root_and_replacement(&emu).await;
    let ec2 = emu.ec2().await;
    let image_root = devices(&emu, &replacement).await[0].clone();
    assert_eq!(image_root.0, "/dev/sda1");
    let create = |volume: &str, token: &str| {
        ec2.create_replace_root_volume_task()
            .instance_id(&replacement)
            .volume_id(volume)
            .delete_replaced_root_volume(true)
            .client_token(token)
            .tag_specifications(tag_spec(ResourceType::ReplaceRootVolumeTask, "lifeboat:node", "k8s-master"))
            .send()
    };
    let created = create(&root, "swap-1").await.unwrap();
    let created = created.replace_root_volume_task().unwrap();
    let id = created.replace_root_volume_task_id().unwrap().to_string();
    assert_eq!(created.task_state().unwrap().as_str(), "pending");
    assert_eq!(created.delete_replaced_root_volume(), Some(true));
    assert_eq!(tag_pairs(created.tags()), [("lifeboat:node".to_string(), "k8s-master".to_string())]);
    let again = create(&root, "swap-1").await.unwrap();
    assert_eq!(again.replace_root_volume_task().unwrap().replace_root_volume_task_id(), Some(id.as_str()));
    let other = ec2.create_volume().availability_zone("eu-west-1a").size(8).send().await.unwrap();
    let err = create(other.volume_id().unwrap(), "swap-1").await.unwrap_err();
    assert_eq!(err.code(), Some("IdempotentParameterMismatch"));

    let by_instance = Filter::builder().name("instance-id").values(&replacement).build();
    let listed = ec2.describe_replace_root_volume_tasks().filters(by_instance).send().await.unwrap();
    assert_eq!(listed.replace_root_volume_tasks().len(), 1);
    let done = wait_for_task(&ec2, &id).await;
    assert_eq!(done.task_state().unwrap().as_str(), "succeeded");
    assert!(done.complete_time().is_some());

    // The root device is now the old node's root, same id, marker included.
    let after = devices(&emu, &replacement).await;
    assert_eq!(after[0], ("/dev/sda1".to_string(), root.clone(), image_root.2), "DeleteOnTermination as the original");
    let swapped = volume(&ec2, &root).await;
    assert_eq!(swapped.state().unwrap().as_str(), "in-use");
    assert!(tag_pairs(swapped.tags()).contains(&("marker".to_string(), "after-backup".to_string())));
    let err = ec2.describe_volumes().volume_ids(&image_root.1).send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidVolume.NotFound"), "the image's root was deleted");

    // The reboot: the agent is away for a moment.
    assert_eq!(ping_status(&emu, &replacement).await.as_deref(), Some("ConnectionLost"));
    let err = run_shell(&emu.ssm().await, &replacement, "600").await.unwrap_err();
    assert_eq!(err, "InvalidInstanceId");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ping_status(&emu, &replacement).await.as_deref() != Some("Online") {
        assert!(Instant::now() < deadline, "the agent never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = emu.control("GET", "/lifeboat/events", &serde_json::Value::Null);
    let succeeded = event_at(&events, &id, "task-succeeded").unwrap();
    let online = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"] == replacement.as_str() && e["event"] == "online")
        .map(|e| e["at"].as_f64().unwrap())
        .next_back()
        .unwrap();
    assert!((online - succeeded - 1.5).abs() < 0.01, "{events}");
    assert!((succeeded - event_at(&events, &id, "task-pending").unwrap() - 0.6).abs() < 0.01, "{events}");
}

#[tokio::test]
async fn a_root_volume_task_refuses_what_aws_refuses() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"root_task_seconds": 0.4}));
    let (root, replacement) = preserved_root_and_replacement(&emu).await;
    let ec2 = emu.ec2().await;
    let zone = emu.instance(&replacement).await.placement().unwrap().availability_zone().unwrap().to_string();
    let other_zone = if zone == "eu-west-1a" { "eu-west-1b" } else { "eu-west-1a" };
    let task = || ec2.create_replace_root_volume_task().instance_id(&replacement);
    let code = |r: Result<_, aws_sdk_ec2::error::SdkError<_, _>>| r.unwrap_err().code().map(str::to_string);

    let elsewhere = ec2.create_volume().availability_zone(other_zone).size(8).send().await.unwrap();
    assert_eq!(
        code(task().volume_id(elsewhere.volume_id().unwrap()).send().await),
        Some("InvalidVolume.ZoneMismatch".into())
    );
    let in_use = devices(&emu, &replacement).await[0].1.clone();
    assert_eq!(code(task().volume_id(&in_use).send().await), Some("VolumeInUse".into()));
    let snapshot = ec2.create_snapshot().volume_id(&root).send().await.unwrap();
    let both = task().volume_id(&root).snapshot_id(snapshot.snapshot_id().unwrap()).send().await;
    assert_eq!(code(both), Some("InvalidParameterCombination".into()));
    assert_eq!(
        code(task().snapshot_id(snapshot.snapshot_id().unwrap()).send().await),
        Some("InvalidParameterValue".into()),
        "a snapshot of another volume than the instance's root"
    );

    task().volume_id(&root).send().await.unwrap();
    let second = ec2.create_volume().availability_zone(&zone).size(8).send().await.unwrap();
    assert_eq!(code(task().volume_id(second.volume_id().unwrap()).send().await), Some("IncorrectState".into()));

    ec2.stop_instances().instance_ids(&replacement).send().await.unwrap();
    assert_eq!(code(task().volume_id(second.volume_id().unwrap()).send().await), Some("IncorrectInstanceState".into()));
    let unknown = ec2.describe_replace_root_volume_tasks().replace_root_volume_task_ids("replacevol-0123456789abcdef0");
    let err = unknown.send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidReplaceRootVolumeTaskId.NotFound"));

    // An encrypted root takes only an encrypted volume.
    let subnet = emu.instance(&replacement).await.subnet_id().unwrap().to_string();
    let encrypted = ec2
        .run_instances()
        .image_id(BASE_AMI)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .block_device_mappings(ebs("/dev/sda1", EbsBlockDevice::builder().volume_size(8).encrypted(true).build()))
        .send()
        .await
        .unwrap();
    let encrypted = encrypted.instances()[0].instance_id().unwrap().to_string();
    let err = ec2
        .create_replace_root_volume_task()
        .instance_id(&encrypted)
        .volume_id(second.volume_id().unwrap())
        .send()
        .await;
    assert_eq!(code(err), Some("InvalidParameterValue".into()));
}

#[tokio::test]
async fn a_root_volume_task_whose_volume_went_away_fails_with_the_original_attached() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"root_task_seconds": 0.4, "reboot_seconds": 0}));
    let (root, replacement) = preserved_root_and_replacement(&emu).await;
    let ec2 = emu.ec2().await;
    let original = devices(&emu, &replacement).await[0].1.clone();
    let failing = ec2
        .create_replace_root_volume_task()
        .instance_id(&replacement)
        .volume_id(&root)
        .delete_replaced_root_volume(true)
        .send()
        .await
        .unwrap();
    let failing = failing.replace_root_volume_task().unwrap().replace_root_volume_task_id().unwrap().to_string();
    ec2.delete_volume().volume_id(&root).send().await.unwrap();
    assert_eq!(wait_for_task(&ec2, &failing).await.task_state().unwrap().as_str(), "failed");
    assert_eq!(devices(&emu, &replacement).await[0].1, original, "the original root is still attached");

    // Kept when not asked to delete it, and listed page by page.
    let zone = emu.instance(&replacement).await.placement().unwrap().availability_zone().unwrap().to_string();
    let fresh = ec2.create_volume().availability_zone(&zone).size(8).send().await.unwrap();
    let kept = ec2
        .create_replace_root_volume_task()
        .instance_id(&replacement)
        .volume_id(fresh.volume_id().unwrap())
        .send()
        .await
        .unwrap();
    let kept = kept.replace_root_volume_task().unwrap().replace_root_volume_task_id().unwrap().to_string();
    assert_eq!(wait_for_task(&ec2, &kept).await.task_state().unwrap().as_str(), "succeeded");
    assert_eq!(volume(&ec2, &original).await.state().unwrap().as_str(), "available");
    let first = ec2.describe_replace_root_volume_tasks().max_results(1).send().await.unwrap();
    assert_eq!(first.replace_root_volume_tasks()[0].replace_root_volume_task_id(), Some(failing.as_str()));
    let second = ec2
        .describe_replace_root_volume_tasks()
        .max_results(1)
        .next_token(first.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(second.replace_root_volume_tasks()[0].replace_root_volume_task_id(), Some(kept.as_str()));
    assert_eq!(second.next_token(), None);
}

#[tokio::test]
async fn a_root_volume_task_restores_a_snapshot_an_image_or_the_launch_state() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"root_task_seconds": 0.2, "reboot_seconds": 0}));
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ec2 = emu.ec2().await;
    let original = devices(&emu, &instance).await[0].clone();
    let snapshot = ec2.create_snapshot().volume_id(&original.1).send().await.unwrap();
    let snapshot = snapshot.snapshot_id().unwrap().to_string();
    let sources = [
        ec2.create_replace_root_volume_task().instance_id(&instance).snapshot_id(&snapshot),
        ec2.create_replace_root_volume_task().instance_id(&instance).image_id(BASE_AMI),
        ec2.create_replace_root_volume_task().instance_id(&instance),
    ];
    let mut roots = vec![original.1.clone()];
    for source in sources {
        let created = source.send().await.unwrap();
        let id = created.replace_root_volume_task().unwrap().replace_root_volume_task_id().unwrap().to_string();
        assert_eq!(wait_for_task(&ec2, &id).await.task_state().unwrap().as_str(), "succeeded");
        let root = devices(&emu, &instance).await[0].clone();
        assert!(!roots.contains(&root.1), "a new volume each time");
        assert_eq!(root.2, original.2, "DeleteOnTermination as the original root");
        roots.push(root.1);
    }
    assert_eq!(volume(&ec2, &roots[1]).await.snapshot_id(), Some(snapshot.as_str()));
    assert_eq!(volume(&ec2, &original.1).await.state().unwrap().as_str(), "available", "kept: not asked to delete");
}

#[tokio::test]
async fn an_agent_without_an_instance_profile_never_registers_when_asked_to_be_strict() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"ssm_requires_instance_profile": true}));
    let (status, body) = emu.query("iam", "Action=CreateInstanceProfile&Version=2010-05-08&InstanceProfileName=node");
    assert_eq!(status, 200, "{body}");
    let subnet = emu.subnet().await;
    let bare = emu.launch(&subnet, &[]).await;
    let out = emu
        .ec2()
        .await
        .run_instances()
        .image_id(BASE_AMI)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .iam_instance_profile(aws_sdk_ec2::types::IamInstanceProfileSpecification::builder().name("node").build())
        .send()
        .await
        .unwrap();
    let profiled = out.instances()[0].instance_id().unwrap().to_string();
    assert_eq!(ping_status(&emu, &bare).await, None);
    assert_eq!(ping_status(&emu, &profiled).await.as_deref(), Some("Online"));
    assert_eq!(run_shell(&emu.ssm().await, &bare, "600").await, Err("InvalidInstanceId".to_string()));
}

// --- Spot launches and customer managed KMS keys ---------------------------------

#[tokio::test]
async fn a_spot_launch_whose_key_the_spot_role_may_not_use_ends_at_once() {
    let emu = Emulator::new();
    let key = "1234abcd-12ab-34cd-56ef-1234567890ab";
    emu.control("POST", "/lifeboat/config", &json!({"shutdown_seconds": 0.3, "spot_unusable_kms_keys": [key]}));
    let subnet = emu.subnet().await;
    let ec2 = emu.ec2().await;
    let launch = |key: String, spot: bool, token: &str| {
        let encrypted = EbsBlockDevice::builder().volume_size(8).encrypted(true).kms_key_id(key).build();
        let spot = spot.then(|| {
            aws_sdk_ec2::types::InstanceMarketOptionsRequest::builder()
                .market_type(aws_sdk_ec2::types::MarketType::Spot)
                .build()
        });
        ec2.run_instances()
            .image_id(BASE_AMI)
            .min_count(1)
            .max_count(1)
            .subnet_id(&subnet)
            .client_token(token)
            .block_device_mappings(ebs("/dev/sdf", encrypted))
            .set_instance_market_options(spot)
            .send()
    };
    let arn = |key: &str| format!("arn:aws:kms:eu-west-1:{}:key/{key}", emu.account);
    let id = |out: aws_sdk_ec2::operation::run_instances::RunInstancesOutput| {
        out.instances()[0].instance_id().unwrap().to_string()
    };
    let ended = id(launch(arn(key), true, "spot-1").await.unwrap());
    let on_demand = id(launch(arn(key), false, "on-demand-1").await.unwrap());
    let other_key = id(launch(arn("5678efgh-12ab-34cd-56ef-1234567890ab"), true, "spot-2").await.unwrap());
    // From pending (running, in moto) to shutting-down at once, with EC2's reason.
    let described = emu.instance(&ended).await;
    assert_eq!(described.state().unwrap().name().unwrap().as_str(), "shutting-down");
    let reason = described.state_reason().unwrap();
    assert_eq!(reason.code(), Some("Client.InternalError"));
    assert_eq!(reason.message(), Some("Client.InternalError: Client error on launch"));
    wait_for_state(&emu, &ended, "terminated").await;
    assert_eq!(emu.instance(&ended).await.state_reason().unwrap().code(), Some("Client.InternalError"));
    // On demand, or with a key the spot role may use, the launch runs.
    for running in [&on_demand, &other_key] {
        assert_eq!(state_of(&emu, running).await, "running", "{running}");
    }
    // Its token does not launch it again.
    let err = launch(arn(key), true, "spot-1").await.unwrap_err();
    assert_eq!(err.code(), Some("IdempotentInstanceTerminated"));
    // A volume restored from a snapshot of a volume under that key (as a
    // relaunch restores an image's) is under it too.
    let zone = emu.instance(&on_demand).await.placement().unwrap().availability_zone().unwrap().to_string();
    let source = ec2.create_volume().availability_zone(&zone).size(8).encrypted(true).kms_key_id(arn(key));
    let source = source.send().await.unwrap().volume_id().unwrap().to_string();
    let snapshot = ec2.create_snapshot().volume_id(&source).send().await.unwrap().snapshot_id().unwrap().to_string();
    let restored = ec2
        .run_instances()
        .image_id(BASE_AMI)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .block_device_mappings(ebs("/dev/sdg", EbsBlockDevice::builder().snapshot_id(&snapshot).build()))
        .instance_market_options(
            aws_sdk_ec2::types::InstanceMarketOptionsRequest::builder()
                .market_type(aws_sdk_ec2::types::MarketType::Spot)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let restored = restored.instances()[0].instance_id().unwrap().to_string();
    assert_eq!(state_of(&emu, &restored).await, "shutting-down");
    let events = emu.control("GET", "/lifeboat/events", &serde_json::Value::Null);
    assert!(event_at(&events, &ended, "shutting-down").unwrap() <= event_at(&events, &ended, "terminated").unwrap());
}

// --- Root volume replacement: what AWS refuses and how a task fails -----------------

/// An instance of this type, with a root of `root_gib` (BASE_AMI's root overridden).
async fn instance_with_root(emu: &Emulator, instance_type: &str, root_gib: i32) -> String {
    let out = emu
        .ec2()
        .await
        .run_instances()
        .image_id(BASE_AMI)
        .instance_type(aws_sdk_ec2::types::InstanceType::from(instance_type))
        .min_count(1)
        .max_count(1)
        .subnet_id(emu.subnet().await)
        .block_device_mappings(ebs("/dev/sda1", EbsBlockDevice::builder().volume_size(root_gib).build()))
        .send()
        .await
        .unwrap();
    out.instances()[0].instance_id().unwrap().to_string()
}

#[tokio::test]
async fn a_root_volume_task_refuses_a_smaller_or_unready_image_a_volume_that_cannot_boot_and_bare_metal() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"root_task_seconds": 0.2, "ami_pending_seconds": 600}));
    let ec2 = emu.ec2().await;
    let code = |r: Result<_, aws_sdk_ec2::error::SdkError<_, _>>| r.unwrap_err().code().map(str::to_string);
    let big = instance_with_root(&emu, "t3.medium", 20).await;
    let small = instance_with_root(&emu, "t3.medium", 8).await;
    let image_of = |instance: String, name: &'static str| {
        let ec2 = ec2.clone();
        async move {
            let out = ec2.create_image().instance_id(instance).name(name).no_reboot(true).send().await.unwrap();
            out.image_id().unwrap().to_string()
        }
    };
    let small_image = image_of(small.clone(), "small-root").await;
    let big_image = image_of(big.clone(), "big-root").await;
    let task = || ec2.create_replace_root_volume_task().instance_id(&big);
    // Pending: not an image anything can be launched from yet.
    assert_eq!(code(task().image_id(&big_image).send().await), Some("InvalidAMIID.Unavailable".into()));
    for image in [&small_image, &big_image] {
        emu.control("POST", &format!("/lifeboat/images/{image}"), &json!({"state": "available"}));
    }
    // The image's root must be at least the instance's current root.
    assert_eq!(code(task().image_id(&small_image).send().await), Some("InvalidParameterValue".into()));
    let zone = emu.instance(&big).await.placement().unwrap().availability_zone().unwrap().to_string();
    let throughput = ec2
        .create_volume()
        .availability_zone(&zone)
        .size(125)
        .volume_type(aws_sdk_ec2::types::VolumeType::St1)
        .send()
        .await
        .unwrap();
    let throughput = throughput.volume_id().unwrap();
    assert_eq!(code(task().volume_id(throughput).send().await), Some("BootForVolumeTypeUnsupported".into()));
    let created = task().image_id(&big_image).send().await.unwrap();
    let id = created.replace_root_volume_task().unwrap().replace_root_volume_task_id().unwrap().to_string();
    assert_eq!(wait_for_task(&ec2, &id).await.task_state().unwrap().as_str(), "succeeded");
    // Bare metal cannot replace its root; Mac metal can (replace-root.html).
    let metal = instance_with_root(&emu, "m5.metal", 8).await;
    let refused = ec2.create_replace_root_volume_task().instance_id(&metal).send().await;
    assert_eq!(code(refused), Some("UnsupportedOperation".into()));
    let mac = instance_with_root(&emu, "mac2.metal", 8).await;
    ec2.create_replace_root_volume_task().instance_id(&mac).send().await.unwrap();
}

#[tokio::test]
async fn a_root_volume_task_restores_a_snapshot_of_an_earlier_root_of_the_instance() {
    let emu = Emulator::new();
    emu.control("POST", "/lifeboat/config", &json!({"root_task_seconds": 0.2, "reboot_seconds": 0}));
    let instance = emu.launch(&emu.subnet().await, &[]).await;
    let ec2 = emu.ec2().await;
    let first_root = devices(&emu, &instance).await[0].1.clone();
    let earlier = ec2.create_snapshot().volume_id(&first_root).send().await.unwrap();
    let earlier = earlier.snapshot_id().unwrap().to_string();
    let zone = emu.instance(&instance).await.placement().unwrap().availability_zone().unwrap().to_string();
    let fresh = ec2.create_volume().availability_zone(&zone).size(8).send().await.unwrap();
    let swap = |request: aws_sdk_ec2::operation::create_replace_root_volume_task::builders::CreateReplaceRootVolumeTaskFluentBuilder| async {
        let created = request.send().await.unwrap();
        let id = created.replace_root_volume_task().unwrap().replace_root_volume_task_id().unwrap().to_string();
        wait_for_task(&ec2, &id).await.task_state().unwrap().as_str().to_string()
    };
    let to_fresh = ec2.create_replace_root_volume_task().instance_id(&instance).volume_id(fresh.volume_id().unwrap());
    assert_eq!(swap(to_fresh).await, "succeeded");
    assert_eq!(devices(&emu, &instance).await[0].1, fresh.volume_id().unwrap());
    // The snapshot is of the root before: of the instance's lineage all the same.
    let back = ec2.create_replace_root_volume_task().instance_id(&instance).snapshot_id(&earlier);
    assert_eq!(swap(back).await, "succeeded");
    let root = devices(&emu, &instance).await[0].1.clone();
    assert_eq!(volume(&ec2, &root).await.snapshot_id(), Some(earlier.as_str()));
}

#[tokio::test]
async fn root_task_failures_go_through_failing_to_failed_or_failed_detached() {
    let emu = Emulator::new();
    emu.control(
        "POST",
        "/lifeboat/config",
        &json!({"root_task_seconds": 0.2, "reboot_seconds": 0,
                "root_task_failures": [{"failing_seconds": 0.6}, {"detached": true, "failing_seconds": 0.6}]}),
    );
    let (root, replacement) = preserved_root_and_replacement(&emu).await;
    let ec2 = emu.ec2().await;
    let original = devices(&emu, &replacement).await[0].1.clone();
    let start = |volume: &str| {
        let request = ec2.create_replace_root_volume_task().instance_id(&replacement).volume_id(volume);
        async move {
            let created = request.send().await.unwrap();
            created.replace_root_volume_task().unwrap().replace_root_volume_task_id().unwrap().to_string()
        }
    };
    let until_not = |id: String, state: &'static str| {
        let ec2 = ec2.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let now = task(&ec2, &id).await.task_state().unwrap().as_str().to_string();
                if now != state {
                    return now;
                }
                assert!(Instant::now() < deadline, "{id} stayed {state}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let failing = start(&root).await;
    assert_eq!(wait_for_task(&ec2, &failing).await.task_state().unwrap().as_str(), "failing");
    // Still in progress: no second task.
    let zone = emu.instance(&replacement).await.placement().unwrap().availability_zone().unwrap().to_string();
    let spare = ec2.create_volume().availability_zone(&zone).size(8).send().await.unwrap();
    let second = ec2.create_replace_root_volume_task().instance_id(&replacement).volume_id(spare.volume_id().unwrap());
    assert_eq!(second.send().await.unwrap_err().code(), Some("IncorrectState"));
    assert_eq!(until_not(failing.clone(), "failing").await, "failed");
    assert_eq!(devices(&emu, &replacement).await[0].1, original, "the original root is still attached");

    let detached = start(&root).await;
    assert_eq!(wait_for_task(&ec2, &detached).await.task_state().unwrap().as_str(), "failing-detached");
    assert_eq!(until_not(detached.clone(), "failing-detached").await, "failed-detached");
    assert!(devices(&emu, &replacement).await.iter().all(|d| d.0 != "/dev/sda1"), "no root at all");
    assert_eq!(volume(&ec2, &original).await.state().unwrap().as_str(), "available");
    assert_eq!(volume(&ec2, &root).await.state().unwrap().as_str(), "available");
    assert_eq!(ping_status(&emu, &replacement).await.as_deref(), Some("ConnectionLost"));
    let events = emu.control("GET", "/lifeboat/events", &serde_json::Value::Null);
    for (id, event) in [
        (&failing, "task-failing"),
        (&failing, "task-failed"),
        (&detached, "task-failing-detached"),
        (&detached, "task-failed-detached"),
    ] {
        assert!(event_at(&events, id, event).is_some(), "{event}: {events}");
    }
}
