"""EBS volumes and the block device mappings of instances."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.ec2.exceptions import EC2ClientError, MissingParameterError
from moto.ec2.models.instances import Instance
from moto.ec2.responses.elastic_block_store import ElasticBlockStore
from moto.ec2.responses.instances import InstanceResponse

from .core import now, record


def _launch_mappings(self: InstanceResponse) -> list[dict[str, Any]]:
    """AWS (user guide, block-device-mapping-concepts.html): an instance is
    launched with its AMI's block device mapping ("When you launch an
    instance, it inherits this setting from the AMI"); a mapping in the
    request for one of its devices overrides it ("specifying the device name
    is enough to identify the volume", e.g. only Ebs.DeleteOnTermination), and
    `NoDevice: ""` suppresses it. A new device needs a size or a snapshot;
    the volumes created at launch are deleted on termination unless the
    mapping says otherwise (TerminateInstances: "By default, Amazon EC2
    deletes all EBS volumes that were attached when the instance launched").
    moto ignores the AMI's mapping (an 8 GiB root, or only the request's
    devices) and defaults DeleteOnTermination to false."""
    ami = _image(self, self._get_param("ImageId"))
    root = ami.root_device_name if ami is not None else "/dev/sda1"
    if ami is not None and "_lb_mappings" in ami.__dict__:
        image = ami.block_device_mappings
    else:
        # moto's own AMIs: the root volume moto always gave them
        image = [{"DeviceName": root, "Ebs": {"VolumeSize": 8, "DeleteOnTermination": True}}]
    merged: dict[str, dict[str, Any]] = {m["DeviceName"]: {"DeviceName": m["DeviceName"], **m} for m in image}
    for mapping in self._get_param("BlockDeviceMappings", []):
        device = mapping.get("DeviceName")
        if "NoDevice" in mapping:
            self._validate_block_device_mapping(mapping)
            merged.pop(device, None)
            continue
        ebs = {k: v for k, v in (mapping.get("Ebs") or {}).items() if v is not None}
        if device in merged:
            merged[device] = {"DeviceName": device, "Ebs": {**merged[device].get("Ebs", {}), **ebs}}
            continue
        if "Ebs" not in mapping:
            raise MissingParameterError("ebs")
        if not ebs.get("VolumeSize") and not ebs.get("SnapshotId"):
            raise MissingParameterError("size or snapshotId")
        merged[device] = {"DeviceName": device, "Ebs": {"DeleteOnTermination": True, **ebs}}
    mappings = sorted(merged.values(), key=lambda m: m["DeviceName"] != root)
    for mapping in mappings:
        ebs = mapping["Ebs"]
        ebs["DeleteOnTermination"] = str(ebs.get("DeleteOnTermination", True)).lower() == "true"
        ebs.setdefault("Encrypted", False)
    return mappings


def _image(self: InstanceResponse, image_id: str | None) -> Any:
    return self.ec2_backend.amis.get(image_id) if image_id else None


def _modify_mappings(self: InstanceResponse) -> bool:
    """AWS (ModifyInstanceAttribute, API reference): BlockDeviceMappings
    "modifies the DeleteOnTermination attribute for volumes that are currently
    attached ... If no value is specified for DeleteOnTermination, the default
    is true". moto leaves the flag unchanged when it is omitted, and fails
    (HTTP 500) for a device the instance does not have; that refusal's code
    and wording are not documented (InvalidInstanceAttributeValue here)."""
    mappings = self._get_param("BlockDeviceMappings", [])
    if not mappings:
        return False
    instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
    self.error_on_dryrun()
    for mapping in mappings:
        device = mapping.get("DeviceName")
        block = instance.block_device_mapping.get(device)
        if block is None:
            raise EC2ClientError("InvalidInstanceAttributeValue", f"No device is currently mapped at {device}")
        value = (mapping.get("Ebs") or {}).get("DeleteOnTermination")
        block.delete_on_termination = True if value is None else str(value).lower() == "true"
    return True


_original_attach = ElasticBlockStore.attach_volume


def _attach_volume(self: ElasticBlockStore) -> Any:
    """AWS (AttachVolume, API reference and reported answers): the volume must
    be `available` (one attached is VolumeInUse, "vol-... is already attached
    to an instance", aws/aws-sdk-java#1623; another state IncorrectState) and
    in the instance's Availability Zone (InvalidVolume.ZoneMismatch, "The
    volume '...' is not in the same availability zone as instance '...'"); the
    device name must be free (InvalidParameterValue, "Invalid value '/dev/sdf'
    for unixDevice. Attachment point /dev/sdf is already in use",
    nanovms/ops#1189). moto moves an attached volume and takes any device."""
    backend = self.ec2_backend
    volume = backend.get_volume(self._get_param("VolumeId"))
    instance = backend.get_instance(self._get_param("InstanceId"))
    device = self._get_param("Device")
    if volume.attachment is not None:
        raise EC2ClientError("VolumeInUse", f"{volume.id} is already attached to an instance")
    if volume.status != "available":
        raise EC2ClientError("IncorrectState", f"{volume.id} is not 'available'.")
    if volume.availability_zone != instance.placement.zone:
        raise EC2ClientError(
            "InvalidVolume.ZoneMismatch",
            f"The volume '{volume.id}' is not in the same availability zone as instance '{instance.id}'",
        )
    if device in instance.block_device_mapping:
        raise EC2ClientError(
            "InvalidParameterValue",
            f"Invalid value '{device}' for unixDevice. Attachment point {device} is already in use",
        )
    return _original_attach(self)


def _log_kept_volumes(terminate: Callable[[Instance], Any]) -> Callable[[Instance], Any]:
    # moto already detaches the volumes of a terminated instance and deletes
    # those with DeleteOnTermination, as AWS does; the others are logged as
    # `volume-available`.
    def terminated(self: Instance) -> Any:
        kept = [b.volume_id for _, b in self.get_block_device_mapping if str(b.delete_on_termination).lower() != "true"]
        previous = terminate(self)
        at = self.__dict__.get("_lb_terminated_at", now())
        for volume_id in kept:
            record(self.ec2_backend.account_id, volume_id, "volume-available", at)
        return previous

    return terminated


def apply() -> None:
    Instance.terminate = _log_kept_volumes(Instance.terminate)
    InstanceResponse._parse_block_device_mapping = _launch_mappings
    InstanceResponse._block_device_mapping_handler = _modify_mappings
    ElasticBlockStore.attach_volume = _attach_volume
