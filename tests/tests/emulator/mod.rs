//! Each emulator patch, checked with the real AWS SDK for Rust: the emulator
//! answers as AWS does where moto alone would not (tests/emulator/patches/).

mod ebs;
mod events;
mod faults;
mod images;
mod instances;
mod network;
mod root_volume;
mod spot;
mod ssm;
mod strict;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_sdk_ec2::types::ReplaceRootVolumeTask;
use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice, EbsInstanceBlockDeviceSpecification};
use aws_sdk_ec2::types::{Filter, InstanceBlockDeviceMappingSpecification};
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use lifeboat_tests::{BASE_AMI, Emulator, tag_pairs};
use serde_json::json;
use std::time::{Duration, Instant};

pub(super) fn ebs(device: &str, ebs: EbsBlockDevice) -> BlockDeviceMapping {
    BlockDeviceMapping::builder().device_name(device).ebs(ebs).build()
}

pub(super) fn delete_on_termination(device: &str, value: Option<bool>) -> InstanceBlockDeviceMappingSpecification {
    let ebs = EbsInstanceBlockDeviceSpecification::builder().set_delete_on_termination(value).build();
    InstanceBlockDeviceMappingSpecification::builder().device_name(device).ebs(ebs).build()
}

/// (device, volume id, DeleteOnTermination) of each block device, by device.
pub(super) async fn devices(emu: &Emulator, instance: &str) -> Vec<(String, String, bool)> {
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

pub(super) async fn volume(ec2: &aws_sdk_ec2::Client, id: &str) -> aws_sdk_ec2::types::Volume {
    ec2.describe_volumes().volume_ids(id).send().await.unwrap().volumes()[0].clone()
}

/// A node as preparation leaves it: a root and a data volume, both kept on
/// termination and tagged; returns (instance, root volume, data volume).
pub(super) async fn prepared_node(emu: &Emulator, subnet: &str) -> (String, String, String) {
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

/// The time of `event` for `resource` in the account's event log.
pub(super) fn event_at(events: &serde_json::Value, resource: &str, event: &str) -> Option<f64> {
    events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"] == resource && e["event"] == event)
        .map(|e| e["at"].as_f64().unwrap())
}

pub(super) fn tag_spec(resource: ResourceType, key: &str, value: &str) -> TagSpecification {
    TagSpecification::builder().resource_type(resource).tags(Tag::builder().key(key).value(value).build()).build()
}

pub(super) async fn image_state(ec2: &aws_sdk_ec2::Client, image: &str) -> String {
    let out = ec2.describe_images().image_ids(image).send().await.unwrap();
    out.images()[0].state().unwrap().as_str().to_string()
}

/// The ids of the instances DescribeInstances finds with this filter.
pub(super) async fn instances_where(ec2: &aws_sdk_ec2::Client, name: &str, value: &str) -> Vec<String> {
    let filter = aws_sdk_ec2::types::Filter::builder().name(name).values(value).build();
    let out = ec2.describe_instances().filters(filter).send().await.unwrap();
    out.reservations().iter().flat_map(|r| r.instances()).map(|i| i.instance_id().unwrap().to_string()).collect()
}

pub(super) async fn task(ec2: &aws_sdk_ec2::Client, id: &str) -> ReplaceRootVolumeTask {
    let out = ec2.describe_replace_root_volume_tasks().replace_root_volume_task_ids(id).send().await.unwrap();
    out.replace_root_volume_tasks()[0].clone()
}

pub(super) async fn wait_for_task(ec2: &aws_sdk_ec2::Client, id: &str) -> ReplaceRootVolumeTask {
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

pub(super) async fn ping_status(emu: &Emulator, instance: &str) -> Option<String> {
    let info = emu.ssm().await.describe_instance_information().send().await.unwrap();
    info.instance_information_list()
        .iter()
        .find(|i| i.instance_id() == Some(instance))
        .map(|i| i.ping_status().unwrap().as_str().to_string())
}

/// The old node's preserved root (marked as holding data written after the
/// last backup) and a replacement launched next to it.
pub(super) async fn preserved_root_and_replacement(emu: &Emulator) -> (String, String) {
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

/// An instance of this type, with a root of `root_gib` (BASE_AMI's root overridden).
pub(super) async fn instance_with_root(emu: &Emulator, instance_type: &str, root_gib: i32) -> String {
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

pub(super) async fn state_of(emu: &Emulator, instance: &str) -> String {
    emu.instance(instance).await.state().unwrap().name().unwrap().as_str().to_string()
}

pub(super) async fn wait_for_state(emu: &Emulator, instance: &str, wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while state_of(emu, instance).await != wanted {
        assert!(Instant::now() < deadline, "{instance} never became {wanted}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GetCommandInvocation once the invocation exists (it does not, for a
/// moment after SendCommand).
pub(super) async fn invocation(
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

pub(super) async fn run_shell(ssm: &aws_sdk_ssm::Client, instance: &str, timeout: &str) -> Result<String, String> {
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
