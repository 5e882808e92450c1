//! The [`Launching`] port over aws-sdk-ec2: the replacement, its disks, a
//! drill's clone.

use crate::cloud_error;
use crate::ec2::{AwsEc2, filter, instance_of, tag_specification};
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, HttpTokensState, IamInstanceProfileSpecification, InstanceMarketOptionsRequest,
    InstanceMetadataOptionsRequest, InstanceNetworkInterfaceSpecification, InstanceType, MarketType, ResourceType,
};
use lifeboat_core::model::{CloudError, Instance, NetworkInterface, RootTask, RootTaskState};
use lifeboat_core::ports::{DeviceOverride, LaunchRequest, Launching, Market, Network, RootSource, VolumeRequest};

/// A device of the image as the launch wants it: left out (NoDevice), or
/// with the DeleteOnTermination it means (the image's would apply otherwise).
fn mapping(device: &DeviceOverride) -> BlockDeviceMapping {
    let mapping = BlockDeviceMapping::builder().device_name(&device.device);
    match device.delete_on_termination {
        None => mapping.no_device("").build(),
        Some(delete) => mapping.ebs(EbsBlockDevice::builder().delete_on_termination(delete).build()).build(),
    }
}

impl Launching for AwsEc2 {
    async fn network_interface(&self, interface_id: &str) -> Result<Option<NetworkInterface>, CloudError> {
        match self.client.describe_network_interfaces().network_interface_ids(interface_id).send().await {
            Ok(out) => Ok(out.network_interfaces().iter().find_map(|n| {
                Some(NetworkInterface {
                    id: n.network_interface_id()?.to_string(),
                    status: n.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    subnet_id: n.subnet_id().unwrap_or_default().to_string(),
                    availability_zone: n.availability_zone().map(str::to_string),
                    private_ip: n.private_ip_address().map(str::to_string),
                })
            })),
            Err(e) => {
                let e = cloud_error("DescribeNetworkInterfaces", e);
                if e.is(lifeboat_core::model::ErrorKind::NotFound) { Ok(None) } else { Err(e) }
            }
        }
    }

    async fn vpc_blocks(&self, subnet_id: &str) -> Result<Vec<String>, CloudError> {
        let subnets = self
            .client
            .describe_subnets()
            .subnet_ids(subnet_id)
            .send()
            .await
            .map_err(|e| cloud_error("DescribeSubnets", e))?;
        let Some(vpc_id) = subnets.subnets().iter().find_map(|s| s.vpc_id()) else {
            return Err(crate::no_answer("DescribeSubnets", "the subnet's VPC is not described"));
        };
        let vpcs =
            self.client.describe_vpcs().vpc_ids(vpc_id).send().await.map_err(|e| cloud_error("DescribeVpcs", e))?;
        let Some(vpc) = vpcs.vpcs().first() else {
            return Err(crate::no_answer("DescribeVpcs", "the subnet's VPC is not described"));
        };
        let associated = |state: Option<&str>| state == Some("associated");
        let mut blocks: Vec<String> = vpc.cidr_block().map(str::to_string).into_iter().collect();
        for a in vpc.cidr_block_association_set() {
            if associated(a.cidr_block_state().and_then(|s| s.state()).map(|s| s.as_str()))
                && let Some(block) = a.cidr_block()
                && !blocks.iter().any(|b| b == block)
            {
                blocks.push(block.to_string());
            }
        }
        for a in vpc.ipv6_cidr_block_association_set() {
            if associated(a.ipv6_cidr_block_state().and_then(|s| s.state()).map(|s| s.as_str()))
                && let Some(block) = a.ipv6_cidr_block()
            {
                blocks.push(block.to_string());
            }
        }
        Ok(blocks)
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
            .user_data(aws_smithy_types::base64::encode(&request.user_data))
            .set_block_device_mappings(Some(request.devices.iter().map(mapping).collect()))
            .tag_specifications(tag_specification(ResourceType::Instance, &request.tags))
            .tag_specifications(tag_specification(ResourceType::Volume, &request.volume_tags));
        call = match &request.network {
            Network::Interface(eni) => call.network_interfaces(
                InstanceNetworkInterfaceSpecification::builder().device_index(0).network_interface_id(eni).build(),
            ),
            // The new interface carries the node's (or the clone's) tag from
            // its creation: the stack's IAM launches no untagged interface.
            Network::Address { subnet_id, private_ip, security_group_ids } => call
                .tag_specifications(tag_specification(ResourceType::NetworkInterface, &request.volume_tags))
                .subnet_id(subnet_id)
                .set_private_ip_address(private_ip.clone())
                .set_security_group_ids((!security_group_ids.is_empty()).then(|| security_group_ids.clone())),
        };
        if request.market == Market::Spot {
            call = call
                .instance_market_options(InstanceMarketOptionsRequest::builder().market_type(MarketType::Spot).build());
        }
        // An ARN (a node's, as EC2 describes it), or a name (a drill profile
        // configured by name).
        if let Some(profile) = &request.instance_profile_arn {
            let spec = IamInstanceProfileSpecification::builder();
            let spec = if profile.starts_with("arn:") { spec.arn(profile) } else { spec.name(profile) };
            call = call.iam_instance_profile(spec.build());
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
            .ok_or_else(|| crate::no_answer("RunInstances", "no instance in the reservation"))
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

    async fn attach_volume(&self, volume_id: &str, instance_id: &str, device: &str) -> Result<(), CloudError> {
        self.client
            .attach_volume()
            .volume_id(volume_id)
            .instance_id(instance_id)
            .device(device)
            .send()
            .await
            .map_err(|e| cloud_error("AttachVolume", e))?;
        Ok(())
    }

    async fn create_volume(&self, request: &VolumeRequest) -> Result<String, CloudError> {
        let out = self
            .client
            .create_volume()
            .client_token(&request.client_token)
            .snapshot_id(&request.snapshot_id)
            .availability_zone(&request.availability_zone)
            .tag_specifications(tag_specification(ResourceType::Volume, &request.tags))
            .send()
            .await
            .map_err(|e| cloud_error("CreateVolume", e))?;
        out.volume_id().map(str::to_string).ok_or_else(|| crate::no_answer("CreateVolume", "no volume id returned"))
    }

    async fn replace_root_volume(
        &self,
        instance_id: &str,
        source: &RootSource,
        client_token: &str,
    ) -> Result<String, CloudError> {
        let request = self.client.create_replace_root_volume_task().instance_id(instance_id);
        let request = match source {
            RootSource::Volume(id) => request.volume_id(id),
            RootSource::Image(id) => request.image_id(id),
        };
        let out = request
            .delete_replaced_root_volume(true)
            .client_token(client_token)
            .send()
            .await
            .map_err(|e| cloud_error("CreateReplaceRootVolumeTask", e))?;
        out.replace_root_volume_task()
            .and_then(|t| t.replace_root_volume_task_id())
            .map(str::to_string)
            .ok_or_else(|| crate::no_answer("CreateReplaceRootVolumeTask", "no task id returned"))
    }

    async fn root_tasks(&self, instance_id: &str) -> Result<Vec<RootTask>, CloudError> {
        let pages = self
            .client
            .describe_replace_root_volume_tasks()
            .filters(filter("instance-id", &[instance_id]))
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| cloud_error("DescribeReplaceRootVolumeTasks", e))?;
        Ok(pages
            .iter()
            .flat_map(|p| p.replace_root_volume_tasks())
            .filter_map(|t| {
                Some(RootTask {
                    id: t.replace_root_volume_task_id()?.to_string(),
                    instance_id: t.instance_id()?.to_string(),
                    state: RootTaskState::parse(t.task_state()?.as_str()),
                    start_time: t
                        .start_time()
                        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                        .map(|s| s.with_timezone(&chrono::Utc)),
                })
            })
            .collect())
    }
}
