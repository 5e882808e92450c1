//! EBS as the relaunch uses it: block device mappings, images' volumes, kept volumes.

use super::*;

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
