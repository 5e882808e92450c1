//! The [`Ec2`] port over aws-sdk-ec2.

use crate::{cloud_error, to_chrono};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    Filter, HttpTokensState, IamInstanceProfileSpecification, InstanceLifecycleType, InstanceMarketOptionsRequest,
    InstanceMetadataOptionsRequest, InstanceNetworkInterfaceSpecification, InstanceType, MarketType,
    NetworkInterfaceAttachmentChanges, ResourceType, Tag, TagSpecification,
};
use lifeboat_core::model::{
    Attachment, CloudError, Image, ImageState, Instance, InstanceState, NetworkInterface, Snapshot, SnapshotState, Tags,
};
use lifeboat_core::ports::{Ec2, ImageSpec, LaunchRequest, Market, Network};

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
    let primary = i.network_interfaces().iter().find(|n| n.attachment().and_then(|a| a.device_index()) == Some(0));
    Some(Instance {
        id: i.instance_id()?.to_string(),
        state: InstanceState::parse(state)?,
        launch_time: i.launch_time().and_then(to_chrono),
        tags: tags_of(i.tags()),
        instance_type: i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        subnet_id: i.subnet_id().map(str::to_string),
        private_ip: i.private_ip_address().map(str::to_string),
        security_group_ids: i.security_groups().iter().filter_map(|g| g.group_id().map(str::to_string)).collect(),
        primary_interface: primary.and_then(|n| {
            let attachment = n.attachment()?;
            Some(Attachment {
                interface_id: n.network_interface_id()?.to_string(),
                attachment_id: attachment.attachment_id()?.to_string(),
                delete_on_termination: attachment.delete_on_termination().unwrap_or(true),
            })
        }),
        key_name: i.key_name().map(str::to_string),
        instance_profile_arn: i.iam_instance_profile().and_then(|p| p.arn()).map(str::to_string),
        http_tokens: i.metadata_options().and_then(|m| m.http_tokens()).map(|t| t.as_str().to_string()),
        http_put_response_hop_limit: i.metadata_options().and_then(|m| m.http_put_response_hop_limit()),
        spot: i.instance_lifecycle() == Some(&InstanceLifecycleType::Spot),
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
            .tag_specifications(tag_specification(
                ResourceType::Image,
                &spec.tags.iter().chain(&spec.image_tags).map(|(k, v)| (k.clone(), v.clone())).collect(),
            ))
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

    async fn instance(&self, instance_id: &str) -> Result<Option<Instance>, CloudError> {
        match self.client.describe_instances().instance_ids(instance_id).send().await {
            Ok(out) => Ok(out.reservations().iter().flat_map(|r| r.instances()).find_map(instance_of)),
            Err(e) => {
                let e = cloud_error("DescribeInstances", e);
                if e.has_code("InvalidInstanceID.NotFound") || e.has_code("InvalidInstanceID.Malformed") {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn network_interface(&self, interface_id: &str) -> Result<Option<NetworkInterface>, CloudError> {
        match self.client.describe_network_interfaces().network_interface_ids(interface_id).send().await {
            Ok(out) => Ok(out.network_interfaces().iter().find_map(|n| {
                Some(NetworkInterface {
                    id: n.network_interface_id()?.to_string(),
                    status: n.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    subnet_id: n.subnet_id().unwrap_or_default().to_string(),
                    private_ip: n.private_ip_address().map(str::to_string),
                })
            })),
            Err(e) => {
                let e = cloud_error("DescribeNetworkInterfaces", e);
                if e.has_code("InvalidNetworkInterfaceID.NotFound") { Ok(None) } else { Err(e) }
            }
        }
    }

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

    async fn run_instance(&self, request: &LaunchRequest) -> Result<Instance, CloudError> {
        let mut call = self
            .client
            .run_instances()
            .client_token(&request.client_token)
            .image_id(&request.image_id)
            .instance_type(InstanceType::from(request.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .set_key_name(request.key_name.clone())
            .tag_specifications(tag_specification(ResourceType::Instance, &request.tags));
        call = match &request.network {
            Network::Interface(eni) => call.network_interfaces(
                InstanceNetworkInterfaceSpecification::builder().device_index(0).network_interface_id(eni).build(),
            ),
            Network::Address { subnet_id, private_ip, security_group_ids } => call
                .subnet_id(subnet_id)
                .set_private_ip_address(private_ip.clone())
                .set_security_group_ids((!security_group_ids.is_empty()).then(|| security_group_ids.clone())),
        };
        if request.market == Market::Spot {
            call = call
                .instance_market_options(InstanceMarketOptionsRequest::builder().market_type(MarketType::Spot).build());
        }
        if let Some(arn) = &request.instance_profile_arn {
            call = call.iam_instance_profile(IamInstanceProfileSpecification::builder().arn(arn).build());
        }
        if request.http_tokens.is_some() || request.http_put_response_hop_limit.is_some() {
            call = call.metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .set_http_tokens(request.http_tokens.as_deref().map(HttpTokensState::from))
                    .set_http_put_response_hop_limit(request.http_put_response_hop_limit)
                    .build(),
            );
        }
        let out = call.send().await.map_err(|e| cloud_error("RunInstances", e))?;
        out.instances()
            .iter()
            .find_map(instance_of)
            .ok_or_else(|| CloudError::new("RunInstances", None, "no instance in the reservation"))
    }

    async fn terminate_instance(&self, instance_id: &str) -> Result<(), CloudError> {
        self.client
            .terminate_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| cloud_error("TerminateInstances", e))?;
        Ok(())
    }
}
