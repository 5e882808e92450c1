//! The EC2 ports of the in-memory cloud.

use super::{MemoryCloud, error, not_found, stamp};
use crate::model::{
    Attachment, CloudError, ErrorKind, Image, ImageDevice, ImageState, Instance, Refusal, Snapshot, SnapshotState,
    Tags, Volume, VolumeState,
};
use crate::ports::{DeleteVolume, Describe, ImageSpec, Imaging, Preparing, Pruning};

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
