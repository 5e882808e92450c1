//! The EC2 ports of the in-memory cloud.

use super::{Due, Machine, MemoryCloud, State, Task, VPC_BLOCK, ZONE, delays, error, stamp};
use crate::model::{
    AttachedVolume, Attachment, CloudError, ErrorKind, Image, ImageDevice, ImageState, Instance, InstanceState,
    NetworkInterface, Refusal, RootTask, RootTaskState, Snapshot, SnapshotState, Tags, Volume, VolumeState,
};
use crate::ports::{
    DeleteVolume, Describe, ImageSpec, Imaging, LaunchRequest, Launching, Market, Network, Preparing, Pruning,
    RootSource, VolumeRequest,
};

fn not_found(operation: &str, code: &str, id: &str) -> CloudError {
    error(operation, ErrorKind::NotFound, code, id)
}

impl Describe for MemoryCloud {
    async fn instances_with_tag(&self, tag_key: &str) -> Result<Vec<Instance>, CloudError> {
        let s = self.call("DescribeInstances")?;
        let indexed = |id: &String| s.instances[id].launched_at + s.tag_filter_lag <= tokio::time::Instant::now();
        Ok(s.instances
            .keys()
            .filter(|id| indexed(id))
            .filter_map(|id| s.described(id))
            .filter(|i| i.tags.contains_key(tag_key))
            .collect())
    }

    async fn instance(&self, instance_id: &str) -> Result<Option<Instance>, CloudError> {
        Ok(self.call("DescribeInstances")?.described(instance_id))
    }

    async fn instance_by_client_token(&self, client_token: &str) -> Result<Option<Instance>, CloudError> {
        let s = self.call("DescribeInstances")?;
        let made = s.instances.iter().find(|(_, m)| m.client_token.as_deref() == Some(client_token));
        Ok(made.and_then(|(id, _)| s.described(id)))
    }

    async fn own_images(&self) -> Result<Vec<Image>, CloudError> {
        Ok(self.call("DescribeImages")?.images.values().cloned().collect())
    }

    async fn image_named(&self, name: &str) -> Result<Option<Image>, CloudError> {
        Ok(self.call("DescribeImages")?.images.values().find(|i| i.name == name).cloned())
    }

    async fn volumes_tagged(&self, key: &str, value: Option<&str>) -> Result<Vec<Volume>, CloudError> {
        let s = self.call("DescribeVolumes")?;
        Ok(s.volumes
            .values()
            .filter(|v| v.tags.get(key).is_some_and(|x| value.is_none_or(|w| x == w)))
            .cloned()
            .collect())
    }

    async fn volumes_by_id(&self, ids: &[String]) -> Result<Vec<Volume>, CloudError> {
        let s = self.call("DescribeVolumes")?;
        Ok(ids.iter().filter_map(|id| s.volumes.get(id).cloned()).collect())
    }

    async fn volumes_attached_to(&self, instance_ids: &[String]) -> Result<Vec<Volume>, CloudError> {
        let s = self.call("DescribeVolumes")?;
        Ok(s.volumes
            .values()
            .filter(|v| v.attached_to.as_ref().is_some_and(|i| instance_ids.contains(i)))
            .cloned()
            .collect())
    }
}

impl Imaging for MemoryCloud {
    /// One snapshot per volume; the image records each device's
    /// DeleteOnTermination as the instance has it.
    async fn create_image(&self, spec: &ImageSpec) -> Result<String, CloudError> {
        let mut s = self.call("CreateImage")?;
        super::tag_audit::create_image(spec);
        let Some(instance) = s.described(&spec.instance_id) else {
            return Err(not_found("CreateImage", "InvalidInstanceID.NotFound", &spec.instance_id));
        };
        if !instance.state.can_be_imaged() {
            return Err(error(
                "CreateImage",
                ErrorKind::Refused(Refusal::State),
                "IncorrectState",
                format!("instance is {}", instance.state),
            ));
        }
        if s.images.values().any(|i| i.name == spec.name) {
            return Err(error("CreateImage", ErrorKind::AlreadyExists, "InvalidAMIName.Duplicate", &spec.name));
        }
        let id = s.id("ami");
        let mut devices = Vec::new();
        for attached in &instance.volumes {
            let snapshot = s.id("snap");
            let size = s.volumes.get(&attached.volume_id).map(|v| v.size_gib);
            s.snapshots.insert(
                snapshot.clone(),
                Snapshot {
                    id: snapshot.clone(),
                    state: SnapshotState::Pending,
                    start_time: stamp(),
                    tags: spec.tags.clone(),
                },
            );
            devices.push(ImageDevice {
                device: attached.device.clone(),
                snapshot_id: Some(snapshot),
                size_gib: size,
                delete_on_termination: attached.delete_on_termination,
            });
        }
        let image = Image {
            id: id.clone(),
            name: spec.name.clone(),
            state: ImageState::Pending,
            creation_date: stamp(),
            root_device: instance.root_device.clone(),
            devices,
            tags: spec.tags.iter().chain(&spec.image_tags).map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        s.images.insert(id.clone(), image);
        Ok(id)
    }
}

impl Preparing for MemoryCloud {
    async fn keep_interface_on_termination(&self, attachment: &Attachment) -> Result<(), CloudError> {
        let mut s = self.call("ModifyNetworkInterfaceAttribute")?;
        let operation = "ModifyNetworkInterfaceAttribute";
        let Some(nic) = s.interfaces.get_mut(&attachment.interface_id) else {
            return Err(not_found(operation, "InvalidNetworkInterfaceID.NotFound", &attachment.interface_id));
        };
        nic.delete_on_termination = false;
        if let Some(instance) = nic.attached_to.clone()
            && let Some(primary) = s.instances.get_mut(&instance).and_then(|m| m.instance.primary_interface.as_mut())
        {
            primary.delete_on_termination = false;
        }
        Ok(())
    }

    async fn set_delete_on_termination(
        &self,
        instance_id: &str,
        devices: &[String],
        delete: bool,
    ) -> Result<(), CloudError> {
        let mut s = self.call("ModifyInstanceAttribute")?;
        let Some(machine) = s.instances.get_mut(instance_id) else {
            return Err(not_found("ModifyInstanceAttribute", "InvalidInstanceID.NotFound", instance_id));
        };
        for device in devices {
            let Some(attached) = machine.instance.volumes.iter_mut().find(|v| &v.device == device) else {
                return Err(error(
                    "ModifyInstanceAttribute",
                    ErrorKind::Refused(Refusal::Validation),
                    "InvalidParameterValue",
                    format!("no device {device}"),
                ));
            };
            attached.delete_on_termination = delete;
        }
        Ok(())
    }

    async fn tag(&self, resource_ids: &[String], tags: &Tags) -> Result<(), CloudError> {
        let mut s = self.call("CreateTags")?;
        super::tag_audit::create_tags(&s, resource_ids, tags);
        for id in resource_ids {
            let target: Option<&mut Tags> = if let Some(m) = s.instances.get_mut(id) {
                Some(&mut m.instance.tags)
            } else if let Some(v) = s.volumes.get_mut(id) {
                Some(&mut v.tags)
            } else if let Some(i) = s.images.get_mut(id) {
                Some(&mut i.tags)
            } else if let Some(n) = s.interfaces.get_mut(id) {
                Some(&mut n.tags)
            } else {
                s.snapshots.get_mut(id).map(|x| &mut x.tags)
            };
            let Some(target) = target else { return Err(not_found("CreateTags", "InvalidID", id)) };
            target.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(())
    }
}

impl Pruning for MemoryCloud {
    async fn snapshots_with_tag(&self, tag_key: &str) -> Result<Vec<Snapshot>, CloudError> {
        let s = self.call("DescribeSnapshots")?;
        Ok(s.snapshots.values().filter(|x| x.tags.contains_key(tag_key)).cloned().collect())
    }

    async fn snapshots_by_id(&self, ids: &[String]) -> Result<Vec<Snapshot>, CloudError> {
        let s = self.call("DescribeSnapshots")?;
        Ok(ids.iter().filter_map(|id| s.snapshots.get(id).cloned()).collect())
    }

    async fn deregister_image(&self, image_id: &str, delete_snapshots: bool) -> Result<(), CloudError> {
        let mut s = self.call("DeregisterImage")?;
        let Some(image) = s.images.remove(image_id) else {
            return Err(not_found("DeregisterImage", "InvalidAMIID.NotFound", image_id));
        };
        if delete_snapshots && !s.keep_snapshots_on_deregister {
            for snapshot in image.snapshot_ids() {
                if !s.images.values().any(|i| i.snapshot_ids().any(|x| x == snapshot)) {
                    s.snapshots.remove(snapshot);
                }
            }
        }
        Ok(())
    }

    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<(), CloudError> {
        let mut s = self.call("DeleteSnapshot")?;
        // Registered and disabled images alike hold their snapshots.
        if s.images.values().any(|i| i.snapshot_ids().any(|x| x == snapshot_id)) {
            return Err(error("DeleteSnapshot", ErrorKind::InUse, "InvalidSnapshot.InUse", snapshot_id));
        }
        match s.snapshots.remove(snapshot_id) {
            Some(_) => Ok(()),
            None => Err(not_found("DeleteSnapshot", "InvalidSnapshot.NotFound", snapshot_id)),
        }
    }
}

impl DeleteVolume for MemoryCloud {
    async fn delete_volume(&self, volume_id: &str) -> Result<(), CloudError> {
        let mut s = self.call("DeleteVolume")?;
        match s.volumes.get(volume_id) {
            None => Err(not_found("DeleteVolume", "InvalidVolume.NotFound", volume_id)),
            Some(v) if v.attached_to.is_some() || v.state == VolumeState::InUse => {
                Err(error("DeleteVolume", ErrorKind::InUse, "VolumeInUse", volume_id))
            }
            Some(_) => {
                s.volumes.remove(volume_id);
                Ok(())
            }
        }
    }
}

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
