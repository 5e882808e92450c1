//! The EC2 ports over aws-sdk-ec2: describing, imaging, preparing, pruning.
//! Launching is in [`crate::launch`].

use crate::{cloud_error, to_chrono};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    EbsInstanceBlockDeviceSpecification, Filter, InstanceBlockDeviceMappingSpecification, InstanceLifecycleType,
    NetworkInterfaceAttachmentChanges, ResourceType, Tag, TagSpecification,
};
use lifeboat_core::model::{
    AttachedVolume, Attachment, CloudError, Image, ImageDevice, ImageState, Instance, InstanceState, Snapshot,
    SnapshotState, StateReason, Tags, Volume, VolumeState,
};
use lifeboat_core::ports::{DeleteVolume, Describe, ImageSpec, Imaging, Preparing, Pruning};

#[derive(Debug, Clone)]
pub struct AwsEc2 {
    pub(crate) client: Client,
}

impl AwsEc2 {
    pub fn new(config: &aws_config::SdkConfig) -> AwsEc2 {
        AwsEc2 { client: Client::new(config) }
    }

    pub fn from_client(client: Client) -> AwsEc2 {
        AwsEc2 { client }
    }
}

pub(crate) fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder().name(name).set_values(Some(values.iter().map(|v| v.to_string()).collect())).build()
}

pub(crate) fn tags_of(tags: &[Tag]) -> Tags {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

pub(crate) fn tag_specification(resource: ResourceType, tags: &Tags) -> TagSpecification {
    let tags = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
    TagSpecification::builder().resource_type(resource).set_tags(Some(tags.collect())).build()
}

pub(crate) fn instance_of(i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let state = i.state()?.name()?.as_str();
    let primary = i.network_interfaces().iter().find(|n| n.attachment().and_then(|a| a.device_index()) == Some(0));
    Some(Instance {
        id: i.instance_id()?.to_string(),
        state: InstanceState::parse(state)?,
        launch_time: i.launch_time().and_then(to_chrono),
        tags: tags_of(i.tags()),
        instance_type: i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        image_id: i.image_id().map(str::to_string),
        availability_zone: i.placement().and_then(|p| p.availability_zone()).map(str::to_string),
        subnet_id: i.subnet_id().map(str::to_string),
        private_ip: i.private_ip_address().map(str::to_string),
        public_ip: i.public_ip_address().map(str::to_string),
        security_group_ids: i.security_groups().iter().filter_map(|g| g.group_id().map(str::to_string)).collect(),
        primary_interface: primary.and_then(|n| {
            let attachment = n.attachment()?;
            Some(Attachment {
                interface_id: n.network_interface_id()?.to_string(),
                attachment_id: attachment.attachment_id()?.to_string(),
                delete_on_termination: attachment.delete_on_termination().unwrap_or(true),
            })
        }),
        root_device: i.root_device_name().map(str::to_string),
        volumes: i
            .block_device_mappings()
            .iter()
            .filter_map(|m| {
                let ebs = m.ebs()?;
                Some(AttachedVolume {
                    device: m.device_name()?.to_string(),
                    volume_id: ebs.volume_id()?.to_string(),
                    delete_on_termination: ebs.delete_on_termination().unwrap_or(false),
                })
            })
            .collect(),
        key_name: i.key_name().map(str::to_string),
        instance_profile_arn: i.iam_instance_profile().and_then(|p| p.arn()).map(str::to_string),
        http_tokens: i.metadata_options().and_then(|m| m.http_tokens()).map(|t| t.as_str().to_string()),
        http_put_response_hop_limit: i.metadata_options().and_then(|m| m.http_put_response_hop_limit()),
        spot: i.instance_lifecycle() == Some(&InstanceLifecycleType::Spot),
        state_reason: i.state_reason().and_then(|r| {
            let code = r.code().filter(|c| !c.is_empty())?;
            Some(StateReason { code: code.to_string(), message: r.message().unwrap_or(code).to_string() })
        }),
    })
}

fn image_of(i: &aws_sdk_ec2::types::Image) -> Option<Image> {
    Some(Image {
        id: i.image_id()?.to_string(),
        name: i.name().unwrap_or_default().to_string(),
        state: ImageState::parse(i.state().map(|s| s.as_str()).unwrap_or_default()),
        creation_date: i
            .creation_date()
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
            .map(|d| d.with_timezone(&chrono::Utc)),
        root_device: i.root_device_name().map(str::to_string),
        devices: i
            .block_device_mappings()
            .iter()
            .filter_map(|m| {
                let ebs = m.ebs()?;
                Some(ImageDevice {
                    device: m.device_name()?.to_string(),
                    snapshot_id: ebs.snapshot_id().map(str::to_string),
                    size_gib: ebs.volume_size(),
                    delete_on_termination: ebs.delete_on_termination().unwrap_or(true),
                })
            })
            .collect(),
        tags: tags_of(i.tags()),
    })
}

fn snapshot_of(s: &aws_sdk_ec2::types::Snapshot) -> Option<Snapshot> {
    Some(Snapshot {
        id: s.snapshot_id()?.to_string(),
        state: SnapshotState::parse(s.state().map(|x| x.as_str()).unwrap_or_default()),
        start_time: s.start_time().and_then(to_chrono),
        tags: tags_of(s.tags()),
    })
}

pub(crate) fn volume_of(v: &aws_sdk_ec2::types::Volume) -> Option<Volume> {
    Some(Volume {
        id: v.volume_id()?.to_string(),
        state: VolumeState::parse(v.state().map(|s| s.as_str()).unwrap_or_default()),
        availability_zone: v.availability_zone().unwrap_or_default().to_string(),
        encrypted: v.encrypted().unwrap_or(false),
        size_gib: v.size().unwrap_or(0),
        create_time: v.create_time().and_then(to_chrono),
        attached_to: v.attachments().iter().find_map(|a| a.instance_id().map(str::to_string)),
        tags: tags_of(v.tags()),
    })
}

/// Values per filter in one Describe call.
const FILTER_VALUES: usize = 200;

impl AwsEc2 {
    async fn instances_matching(&self, filters: Vec<Filter>) -> Result<Vec<Instance>, CloudError> {
        let pages = self
            .client
            .describe_instances()
            .set_filters(Some(filters))
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| cloud_error("DescribeInstances", e))?;
        Ok(pages
            .iter()
            .flat_map(|page| page.reservations())
            .flat_map(|r| r.instances())
            .filter_map(instance_of)
            .collect())
    }

    async fn snapshots_matching(&self, filter: Filter) -> Result<Vec<Snapshot>, CloudError> {
        let pages = self
            .client
            .describe_snapshots()
            .owner_ids("self")
            .filters(filter)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| cloud_error("DescribeSnapshots", e))?;
        Ok(pages.iter().flat_map(|p| p.snapshots()).filter_map(snapshot_of).collect())
    }

    pub(crate) async fn volumes_matching(&self, filters: Vec<Filter>) -> Result<Vec<Volume>, CloudError> {
        let pages = self
            .client
            .describe_volumes()
            .set_filters(Some(filters))
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| cloud_error("DescribeVolumes", e))?;
        Ok(pages.iter().flat_map(|p| p.volumes()).filter_map(volume_of).collect())
    }

    /// One Describe call per chunk of ids, as filter values: a missing id
    /// is then simply absent instead of failing the whole call.
    async fn volumes_filtered(&self, name: &str, ids: &[String]) -> Result<Vec<Volume>, CloudError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(FILTER_VALUES) {
            let values: Vec<&str> = chunk.iter().map(String::as_str).collect();
            found.extend(self.volumes_matching(vec![filter(name, &values)]).await?);
        }
        Ok(found)
    }
}

impl Describe for AwsEc2 {
    async fn instances_with_tag(&self, tag_key: &str) -> Result<Vec<Instance>, CloudError> {
        self.instances_matching(vec![filter("tag-key", &[tag_key])]).await
    }

    async fn instance(&self, instance_id: &str) -> Result<Option<Instance>, CloudError> {
        match self.client.describe_instances().instance_ids(instance_id).send().await {
            Ok(out) => Ok(out.reservations().iter().flat_map(|r| r.instances()).find_map(instance_of)),
            Err(e) => {
                let e = cloud_error("DescribeInstances", e);
                if e.is(lifeboat_core::model::ErrorKind::NotFound) { Ok(None) } else { Err(e) }
            }
        }
    }

    async fn instance_by_client_token(&self, client_token: &str) -> Result<Option<Instance>, CloudError> {
        Ok(self.instances_matching(vec![filter("client-token", &[client_token])]).await?.into_iter().next())
    }

    async fn own_images(&self) -> Result<Vec<Image>, CloudError> {
        // Disabled images too: their snapshots are still in use.
        let pages = self
            .client
            .describe_images()
            .owners("self")
            .include_disabled(true)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| cloud_error("DescribeImages", e))?;
        Ok(pages.iter().flat_map(|p| p.images()).filter_map(image_of).collect())
    }

    async fn image_named(&self, name: &str) -> Result<Option<Image>, CloudError> {
        let out = self
            .client
            .describe_images()
            .owners("self")
            .include_disabled(true)
            .filters(filter("name", &[name]))
            .send()
            .await
            .map_err(|e| cloud_error("DescribeImages", e))?;
        Ok(out.images().iter().find_map(image_of))
    }

    async fn volumes_tagged(&self, key: &str, value: Option<&str>) -> Result<Vec<Volume>, CloudError> {
        let tag_filter = match value {
            Some(value) => filter(&format!("tag:{key}"), &[value]),
            None => filter("tag-key", &[key]),
        };
        self.volumes_matching(vec![tag_filter]).await
    }

    async fn volumes_by_id(&self, ids: &[String]) -> Result<Vec<Volume>, CloudError> {
        self.volumes_filtered("volume-id", ids).await
    }

    async fn volumes_attached_to(&self, instance_ids: &[String]) -> Result<Vec<Volume>, CloudError> {
        self.volumes_filtered("attachment.instance-id", instance_ids).await
    }
}

impl Imaging for AwsEc2 {
    async fn create_image(&self, spec: &ImageSpec) -> Result<String, CloudError> {
        let out = self
            .client
            .create_image()
            .instance_id(&spec.instance_id)
            .name(&spec.name)
            .description(&spec.description)
            .no_reboot(true)
            .tag_specifications(tag_specification(
                ResourceType::Image,
                &spec.tags.iter().chain(&spec.image_tags).map(|(k, v)| (k.clone(), v.clone())).collect(),
            ))
            .tag_specifications(tag_specification(ResourceType::Snapshot, &spec.tags))
            .send()
            .await
            .map_err(|e| cloud_error("CreateImage", e))?;
        out.image_id().map(str::to_string).ok_or_else(|| crate::no_answer("CreateImage", "no image id returned"))
    }
}

impl Preparing for AwsEc2 {
    async fn keep_interface_on_termination(&self, attachment: &Attachment) -> Result<(), CloudError> {
        self.client
            .modify_network_interface_attribute()
            .network_interface_id(&attachment.interface_id)
            .attachment(
                NetworkInterfaceAttachmentChanges::builder()
                    .attachment_id(&attachment.attachment_id)
                    .delete_on_termination(false)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| cloud_error("ModifyNetworkInterfaceAttribute", e))?;
        Ok(())
    }

    async fn set_delete_on_termination(
        &self,
        instance_id: &str,
        devices: &[String],
        delete: bool,
    ) -> Result<(), CloudError> {
        // DeleteOnTermination is always given: omitted, EC2 takes it as true.
        let mappings = devices.iter().map(|device| {
            InstanceBlockDeviceMappingSpecification::builder()
                .device_name(device)
                .ebs(EbsInstanceBlockDeviceSpecification::builder().delete_on_termination(delete).build())
                .build()
        });
        self.client
            .modify_instance_attribute()
            .instance_id(instance_id)
            .set_block_device_mappings(Some(mappings.collect()))
            .send()
            .await
            .map_err(|e| cloud_error("ModifyInstanceAttribute", e))?;
        Ok(())
    }

    async fn tag(&self, resource_ids: &[String], tags: &Tags) -> Result<(), CloudError> {
        let tags = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
        self.client
            .create_tags()
            .set_resources(Some(resource_ids.to_vec()))
            .set_tags(Some(tags.collect()))
            .send()
            .await
            .map_err(|e| cloud_error("CreateTags", e))?;
        Ok(())
    }
}

impl Pruning for AwsEc2 {
    async fn snapshots_with_tag(&self, tag_key: &str) -> Result<Vec<Snapshot>, CloudError> {
        self.snapshots_matching(filter("tag-key", &[tag_key])).await
    }

    async fn snapshots_by_id(&self, ids: &[String]) -> Result<Vec<Snapshot>, CloudError> {
        // A filter, not SnapshotIds: a missing id is then simply absent
        // instead of failing the whole call with InvalidSnapshot.NotFound.
        let mut found = Vec::new();
        for chunk in ids.chunks(FILTER_VALUES) {
            let values: Vec<&str> = chunk.iter().map(String::as_str).collect();
            found.extend(self.snapshots_matching(filter("snapshot-id", &values)).await?);
        }
        Ok(found)
    }

    async fn deregister_image(&self, image_id: &str, delete_snapshots: bool) -> Result<(), CloudError> {
        self.client
            .deregister_image()
            .image_id(image_id)
            .delete_associated_snapshots(delete_snapshots)
            .send()
            .await
            .map_err(|e| cloud_error("DeregisterImage", e))?;
        Ok(())
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), CloudError> {
        self.client
            .delete_snapshot()
            .snapshot_id(snapshot_id)
            .send()
            .await
            .map_err(|e| cloud_error("DeleteSnapshot", e))?;
        Ok(())
    }
}

impl DeleteVolume for AwsEc2 {
    async fn delete_volume(&self, volume_id: &str) -> Result<(), CloudError> {
        self.client.delete_volume().volume_id(volume_id).send().await.map_err(|e| cloud_error("DeleteVolume", e))?;
        Ok(())
    }
}
