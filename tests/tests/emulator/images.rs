//! CreateImage, DeregisterImage, image states and disabled images.

use super::*;

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
