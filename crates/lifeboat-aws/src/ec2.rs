//! The [`Ec2`] port over aws-sdk-ec2.

use crate::{cloud_error, to_chrono};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use lifeboat_core::model::{CloudError, Image, ImageState, Instance, InstanceState, Tags};
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
}
