//! Spot interruptions, and spot launches whose KMS key the spot role may not use.

use super::*;

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
