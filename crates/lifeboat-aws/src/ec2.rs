//! The [`Ec2`] port over aws-sdk-ec2.

use crate::{cloud_error, to_chrono};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use lifeboat_core::model::{CloudError, Image, ImageState, Instance, InstanceState, Snapshot, SnapshotState, Tags};
use lifeboat_core::ports::{Ec2, ImageSpec};

#[derive(Debug, Clone)]
pub struct AwsEc2 {
    client: Client,
}

impl AwsEc2 {
    pub fn new(config: &aws_config::SdkConfig) -> AwsEc2 {
        AwsEc2 { client: Client::new(config) }
    }

    pub fn from_client(client: Client) -> AwsEc2 {
        AwsEc2 { client }
    }
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn tags_of(tags: &[Tag]) -> Tags {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

fn tag_specification(resource: ResourceType, tags: &Tags) -> TagSpecification {
    let tags = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
    TagSpecification::builder().resource_type(resource).set_tags(Some(tags.collect())).build()
}

fn instance_of(i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let state = i.state()?.name()?.as_str();
    Some(Instance {
        id: i.instance_id()?.to_string(),
        state: InstanceState::parse(state)?,
        launch_time: i.launch_time().and_then(to_chrono),
        tags: tags_of(i.tags()),
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
        snapshot_ids: i
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_string))
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

/// Values per filter in one Describe call.
const FILTER_VALUES: usize = 200;

impl AwsEc2 {
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
}

impl Ec2 for AwsEc2 {
    async fn instances_with_tag(&self, tag_key: &str) -> Result<Vec<Instance>, CloudError> {
        let pages = self
            .client
            .describe_instances()
            .filters(filter("tag-key", tag_key))
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

    async fn create_image(&self, spec: &ImageSpec) -> Result<String, CloudError> {
        let out = self
            .client
            .create_image()
            .instance_id(&spec.instance_id)
            .name(&spec.name)
            .description(&spec.description)
            .no_reboot(true)
            .tag_specifications(tag_specification(ResourceType::Image, &spec.tags))
            .tag_specifications(tag_specification(ResourceType::Snapshot, &spec.tags))
            .send()
            .await
            .map_err(|e| cloud_error("CreateImage", e))?;
        out.image_id().map(str::to_string).ok_or_else(|| CloudError::new("CreateImage", None, "no image id returned"))
    }

    async fn image_named(&self, name: &str) -> Result<Option<Image>, CloudError> {
        let out = self
            .client
            .describe_images()
            .owners("self")
            .filters(filter("name", name))
            .send()
            .await
            .map_err(|e| cloud_error("DescribeImages", e))?;
        Ok(out.images().iter().find_map(image_of))
    }

    async fn own_images(&self) -> Result<Vec<Image>, CloudError> {
        let pages = self
            .client
            .describe_images()
            .owners("self")
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| cloud_error("DescribeImages", e))?;
        Ok(pages.iter().flat_map(|p| p.images()).filter_map(image_of).collect())
    }

    async fn snapshots_with_tag(&self, tag_key: &str) -> Result<Vec<Snapshot>, CloudError> {
        self.snapshots_matching(filter("tag-key", tag_key)).await
    }

    async fn snapshots_by_id(&self, ids: &[String]) -> Result<Vec<Snapshot>, CloudError> {
        // A filter, not SnapshotIds: a missing id is then simply absent
        // instead of failing the whole call with InvalidSnapshot.NotFound.
        let mut found = Vec::new();
        for chunk in ids.chunks(FILTER_VALUES) {
            let filter = Filter::builder().name("snapshot-id").set_values(Some(chunk.to_vec())).build();
            found.extend(self.snapshots_matching(filter).await?);
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
