//! The in-memory cloud's launches: RunInstances with its ClientToken, the
//! network and volumes an instance starts with, attached and created
//! volumes, root-volume replacement tasks.

use super::{Due, Machine, MemoryCloud, State, Task, VPC_BLOCK, ZONE, delays, error, not_found, stamp};
use crate::model::{
    AttachedVolume, Attachment, CloudError, ErrorKind, Image, ImageState, Instance, InstanceState, NetworkInterface,
    Refusal, RootTask, RootTaskState, VolumeState,
};
use crate::ports::{LaunchRequest, Launching, Market, Network, RootSource, VolumeRequest};

/// What makes two RunInstances calls "the same request" for a ClientToken.
fn fingerprint(request: &LaunchRequest) -> String {
    format!("{request:?}").replace(&request.client_token, "")
}

impl State {
    /// The instance a token made, or why the token cannot launch again.
    fn token_check(&self, request: &LaunchRequest) -> Result<Option<Instance>, CloudError> {
        let Some((id, made_by)) = self.tokens.get(&request.client_token) else { return Ok(None) };
        let already = |code: &str| error("RunInstances", ErrorKind::AlreadyExists, code, &request.client_token);
        if *made_by != fingerprint(request) {
            return Err(already("IdempotentParameterMismatch"));
        }
        match self.described(id) {
            Some(i) if i.state == InstanceState::Terminated => Err(already("IdempotentInstanceTerminated")),
            Some(i) => Ok(Some(i)),
            None => Err(already("IdempotentInstanceTerminated")),
        }
    }

    fn launch_network(&mut self, id: &str, network: &Network, instance: &mut Instance) -> Result<(), CloudError> {
        let in_use = |code: &str, what: &str| error("RunInstances", ErrorKind::InUse, code, what);
        match network {
            Network::Interface(eni) => {
                let nic = self
                    .interfaces
                    .get(eni)
                    .ok_or_else(|| not_found("RunInstances", "InvalidNetworkInterfaceID.NotFound", eni))?;
                if nic.eni.status != "available" {
                    return Err(in_use("InvalidNetworkInterface.InUse", eni));
                }
                let attachment = Attachment {
                    interface_id: eni.clone(),
                    attachment_id: format!("{eni}-attach-{id}"),
                    delete_on_termination: nic.delete_on_termination,
                };
                self.attach_interface(instance, attachment, vec!["sg-cluster".into()]);
            }
            Network::Address { subnet_id, private_ip, security_group_ids } => {
                if let Some(ip) = private_ip {
                    let taken = self.interfaces.values().any(|n| n.eni.private_ip.as_ref() == Some(ip))
                        || self.releasing_ips.iter().any(|(x, _)| x == ip);
                    if taken {
                        return Err(in_use("InvalidIPAddress.InUse", ip));
                    }
                }
                let attachment = self.new_interface(id, subnet_id, private_ip.clone());
                self.attach_interface(instance, attachment, security_group_ids.clone());
            }
        }
        Ok(())
    }

    /// The image's devices, as the request overrides them.
    fn launch_volumes(&mut self, id: &str, image: &Image, request: &LaunchRequest, instance: &mut Instance) {
        for device in &image.devices {
            let delete = match request.devices.iter().find(|d| d.device == device.device) {
                Some(o) => match o.delete_on_termination {
                    None => continue, // NoDevice
                    Some(delete) => delete,
                },
                None => device.delete_on_termination,
            };
            let volume = self.new_volume(device.size_gib.unwrap_or(8), request.volume_tags.clone(), Some(id));
            instance.volumes.push(AttachedVolume {
                device: device.device.clone(),
                volume_id: volume,
                delete_on_termination: delete,
            });
        }
    }
}

impl Launching for MemoryCloud {
    async fn network_interface(&self, interface_id: &str) -> Result<Option<NetworkInterface>, CloudError> {
        let s = self.call("DescribeNetworkInterfaces")?;
        Ok(s.interfaces.get(interface_id).map(|n| n.eni.clone()))
    }

    async fn vpc_blocks(&self, subnet_id: &str) -> Result<Vec<String>, CloudError> {
        let s = self.call("DescribeSubnets")?;
        if !s.interfaces.values().any(|n| n.eni.subnet_id == subnet_id) {
            return Err(error("DescribeSubnets", ErrorKind::NotFound, "InvalidSubnetID.NotFound", subnet_id));
        }
        drop(s);
        // As the adapter: the subnet's VPC, then its blocks.
        let _vpc = self.call("DescribeVpcs")?;
        Ok(vec![VPC_BLOCK.to_string()])
    }

    async fn run_instance(&self, request: &LaunchRequest) -> Result<Instance, CloudError> {
        let mut s = self.call("RunInstances")?;
        super::tag_audit::run_instances(request);
        if let Some(made) = s.token_check(request)? {
            return Ok(made);
        }
        let refused = s.refusals.iter().find(|r| {
            r.instance_type.as_ref().is_none_or(|t| *t == request.instance_type)
                && r.market.is_none_or(|m| m == request.market)
        });
        if let Some(r) = refused {
            return Err(error("RunInstances", ErrorKind::NoCapacity, &r.code.clone(), "refused by MemoryCloud"));
        }
        let image = match s.images.get(&request.image_id) {
            Some(i) if i.state == ImageState::Available => i.clone(),
            _ => {
                let refused = ErrorKind::Refused(Refusal::State);
                return Err(error("RunInstances", refused, "InvalidAMIID.Unavailable", &request.image_id));
            }
        };
        let id = s.id("i");
        let mut instance = Instance {
            id: id.clone(),
            state: InstanceState::Pending,
            launch_time: stamp(),
            tags: request.tags.clone(),
            instance_type: request.instance_type.clone(),
            image_id: Some(image.id.clone()),
            root_device: image.root_device.clone(),
            key_name: request.key_name.clone(),
            instance_profile_arn: request.instance_profile_arn.clone(),
            http_tokens: request.http_tokens.clone(),
            http_put_response_hop_limit: request.http_put_response_hop_limit,
            spot: request.market == Market::Spot,
            ..Instance::default()
        };
        s.launch_network(&id, &request.network, &mut instance)?;
        s.launch_volumes(&id, &image, request, &mut instance);
        if request.market == Market::Spot && s.spot_launches_fail {
            s.later(delays::LAUNCH_FAILURE, Due::FailLaunch(id.clone()));
        } else {
            s.later(delays::BOOT, Due::State(id.clone(), InstanceState::Running));
        }
        s.tokens.insert(request.client_token.clone(), (id.clone(), fingerprint(request)));
        let machine = Machine {
            launched_at: tokio::time::Instant::now(),
            instance: instance.clone(),
            user_data: request.user_data.clone(),
            client_token: Some(request.client_token.clone()),
            online_at: None,
            terminated_at: None,
        };
        s.instances.insert(id, machine);
        Ok(instance)
    }

    async fn terminate_instance(&self, instance_id: &str) -> Result<(), CloudError> {
        let mut s = self.call("TerminateInstances")?;
        if s.described(instance_id).is_none() {
            return Err(not_found("TerminateInstances", "InvalidInstanceID.NotFound", instance_id));
        }
        s.later(std::time::Duration::ZERO, Due::State(instance_id.to_string(), InstanceState::Terminated));
        s.advance();
        Ok(())
    }

    async fn attach_volume(&self, volume_id: &str, instance_id: &str, device: &str) -> Result<(), CloudError> {
        let mut s = self.call("AttachVolume")?;
        let op = "AttachVolume";
        let volume = s.volumes.get(volume_id).ok_or_else(|| not_found(op, "InvalidVolume.NotFound", volume_id))?;
        if volume.state != VolumeState::Available {
            let refused = ErrorKind::Refused(Refusal::State);
            return Err(error(op, refused, "IncorrectState", format!("{volume_id} is {:?}", volume.state)));
        }
        let zone = volume.availability_zone.clone();
        let machine =
            s.instances.get_mut(instance_id).ok_or_else(|| not_found(op, "InvalidInstanceID.NotFound", instance_id))?;
        if machine.instance.availability_zone.as_deref() != Some(zone.as_str()) {
            return Err(error(op, ErrorKind::Refused(Refusal::Validation), "InvalidVolume.ZoneMismatch", volume_id));
        }
        if machine.instance.volumes.iter().any(|v| v.device == device) {
            let refused = ErrorKind::Refused(Refusal::Validation);
            return Err(error(op, refused, "InvalidParameterValue", format!("{device} is in use")));
        }
        machine.instance.volumes.push(AttachedVolume {
            device: device.into(),
            volume_id: volume_id.into(),
            delete_on_termination: false,
        });
        let volume = s.volumes.get_mut(volume_id).unwrap();
        volume.state = VolumeState::InUse;
        volume.attached_to = Some(instance_id.to_string());
        Ok(())
    }

    async fn create_volume(&self, request: &VolumeRequest) -> Result<String, CloudError> {
        let mut s = self.call("CreateVolume")?;
        super::tag_audit::create_volume(request);
        if !s.snapshots.contains_key(&request.snapshot_id) {
            return Err(not_found("CreateVolume", "InvalidSnapshot.NotFound", &request.snapshot_id));
        }
        if let Some(made) = s.volume_tokens.get(&request.client_token) {
            return Ok(made.clone());
        }
        let id = s.new_volume(8, request.tags.clone(), None);
        s.volume_tokens.insert(request.client_token.clone(), id.clone());
        s.volumes.get_mut(&id).unwrap().availability_zone = request.availability_zone.clone();
        s.later(delays::VOLUME, Due::VolumeReady(id.clone()));
        Ok(id)
    }

    async fn replace_root_volume(
        &self,
        instance_id: &str,
        source: &RootSource,
        client_token: &str,
    ) -> Result<String, CloudError> {
        let mut s = self.call("CreateReplaceRootVolumeTask")?;
        let op = "CreateReplaceRootVolumeTask";
        // The same token answers the task it started; with other arguments
        // it is refused (API_CreateReplaceRootVolumeTask.html, ClientToken).
        if let Some(known) = s.tasks.iter().find(|t| t.token == client_token) {
            if known.task.instance_id != instance_id || &known.source != source {
                return Err(error(op, ErrorKind::AlreadyExists, "IdempotentParameterMismatch", client_token));
            }
            return Ok(known.task.id.clone());
        }
        let instance =
            s.described(instance_id).ok_or_else(|| not_found(op, "InvalidInstanceID.NotFound", instance_id))?;
        if instance.state != InstanceState::Running {
            return Err(error(
                op,
                ErrorKind::Refused(Refusal::State),
                "IncorrectInstanceState",
                format!("{instance_id} is {}", instance.state),
            ));
        }
        // "All other metal instances are not supported" (user guide,
        // replace-root.html); the code is not documented.
        if !crate::relaunch::can_replace_root(&instance.instance_type) {
            let refused = ErrorKind::Refused(Refusal::Validation);
            return Err(error(
                op,
                refused,
                "UnsupportedOperation",
                format!("{} is bare metal", instance.instance_type),
            ));
        }
        if s.tasks.iter().any(|t| t.task.instance_id == instance_id && !t.task.state.is_done()) {
            let refused = ErrorKind::Refused(Refusal::State);
            return Err(error(op, refused, "IncorrectState", "a replacement task is in progress"));
        }
        let current = instance.root_volume().and_then(|r| s.volumes.get(&r.volume_id));
        match source {
            RootSource::Volume(volume_id) => {
                let volume =
                    s.volumes.get(volume_id).ok_or_else(|| not_found(op, "InvalidVolume.NotFound", volume_id))?;
                let refuse = |why: &str| {
                    let refused = ErrorKind::Refused(Refusal::Validation);
                    Err(error(op, refused, "InvalidParameterValue", format!("{volume_id}: {why}")))
                };
                if volume.state != VolumeState::Available || volume.attached_to.is_some() {
                    return refuse("not available");
                }
                if Some(volume.availability_zone.as_str()) != instance.availability_zone.as_deref().or(Some(ZONE)) {
                    return refuse("another Availability Zone");
                }
                if current.is_some_and(|c| c.encrypted) && !volume.encrypted {
                    return refuse("the original root is encrypted");
                }
            }
            RootSource::Image(image_id) => {
                if !s.images.contains_key(image_id) {
                    return Err(not_found(op, "InvalidAMIID.NotFound", image_id));
                }
            }
        }
        let id = s.id("replacevol");
        let task = RootTask {
            id: id.clone(),
            instance_id: instance_id.into(),
            state: RootTaskState::Pending,
            start_time: stamp(),
        };
        s.tasks.push(Task { task, source: source.clone(), token: client_token.into() });
        // The instance reboots during the task: its agent is not online.
        if let Some(machine) = s.instances.get_mut(instance_id) {
            machine.online_at = None;
        }
        s.later(delays::ROOT_TASK, Due::TaskDone(id.clone()));
        Ok(id)
    }

    async fn root_tasks(&self, instance_id: &str) -> Result<Vec<RootTask>, CloudError> {
        let s = self.call("DescribeReplaceRootVolumeTasks")?;
        Ok(s.tasks.iter().filter(|t| t.task.instance_id == instance_id).map(|t| t.task.clone()).collect())
    }
}
