//! Interfaces and addresses after a termination.

use super::*;

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
