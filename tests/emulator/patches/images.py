"""AMIs and their snapshots."""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.amis import Ami, AmiBackend
from moto.ec2.responses.amis import AmisResponse

from .core import later, lock, now, record, setting


# AWS (API_Image.html, State; user guide creating-an-ami-ebs.html): a new AMI
# is `pending` until its snapshots complete, then `available`.
# moto makes it `available` at once. The state becomes a property that turns
# `pending` into `available` once the account's ami_pending_seconds have passed.
def _get_state(self: Ami) -> str:
    state = self.__dict__.get("_lb_state", "available")
    ready_at = self.__dict__.get("_lb_available_at")
    if state == "pending" and ready_at is not None and now() >= ready_at:
        state = self.__dict__["_lb_state"] = "available"
    return state


def _set_state(self: Ami, value: str) -> None:
    self.__dict__["_lb_state"] = value
    self.__dict__.pop("_lb_available_at", None)


_original_create_image = AmiBackend.create_image


def _create_image(self: Any, instance_id: str, name: str, description: str, tag_specifications: list) -> Ami:
    # AWS (API_CreateImage.html; errors-overview.html): AMI names are unique per
    # account and region: InvalidAMIName.Duplicate.
    # moto accepts any number of images with one name.
    for ami in self.amis.values():
        if ami.name == name and ami.owner_id == self.account_id:
            raise EC2ClientError("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {ami.id}")
    # AWS (API_CreateImage.html, TagSpecifications): a `snapshot` TagSpecification
    # tags all the snapshots the image creates. moto raises NotImplementedError
    # (HTTP 500); the image is made without it, then its snapshots are tagged.
    image_tags = [s for s in tag_specifications if s.get("ResourceType") != "snapshot"]
    snapshot_tags = [t for s in tag_specifications if s.get("ResourceType") == "snapshot" for t in s.get("Tags", [])]
    ami = _original_create_image(self, instance_id, name, description, tag_specifications=image_tags)
    _snapshot_volumes(self, ami)
    for snapshot_id in image_snapshots(ami):
        for tag in snapshot_tags:
            self.snapshots[snapshot_id].add_tag(tag["Key"], tag["Value"])
    ami.state = "pending"
    ready_at = now() + setting(self.account_id, "ami_pending_seconds")
    ami.__dict__["_lb_available_at"] = ready_at
    later(self.account_id, ready_at, lambda at: _log_available(self.account_id, ami, at))
    return ami


def _snapshot_volumes(backend: Any, ami: Ami) -> None:
    """AWS (user guide, block-device-mapping-concepts.html): CreateImage makes
    a snapshot of each EBS volume of the instance, and the image's block
    device mapping records per device its snapshot, size, type and
    DeleteOnTermination ("When you create an AMI, its block device mapping
    inherits this setting from the instance"). moto makes one 15 GiB
    snapshot of a throwaway volume and records DeleteOnTermination=false."""
    instance = ami.instance
    devices = sorted(instance.get_block_device_mapping, key=lambda d: d[0] != instance.root_device_name)
    if not devices:
        return
    backend.snapshots.pop(ami.ebs_snapshot.id, None)
    mappings = []
    for device, block in devices:
        volume = backend.get_volume(block.volume_id)
        snapshot = backend.create_snapshot(
            volume.id, f"Created by CreateImage({instance.id}) for {ami.id}", ami.owner_id, from_ami=ami.id
        )
        ebs = {
            "SnapshotId": snapshot.id,
            "VolumeSize": volume.size,
            "VolumeType": volume.volume_type,
            "DeleteOnTermination": str(block.delete_on_termination).lower() == "true",
            "Encrypted": bool(volume.encrypted),
        }
        mappings.append({"DeviceName": device, "Ebs": ebs})
    ami.ebs_snapshot = backend.snapshots[mappings[0]["Ebs"]["SnapshotId"]]
    ami.root_device_name = instance.root_device_name
    ami.root_device_type = "ebs"
    ami.__dict__["_lb_mappings"] = mappings


_original_mappings = Ami.block_device_mappings


def _block_device_mappings(self: Ami) -> list[dict[str, Any]]:
    recorded = self.__dict__.get("_lb_mappings")
    if recorded is None:
        return _original_mappings.fget(self)  # type: ignore[no-any-return]
    return [{"DeviceName": m["DeviceName"], "Ebs": dict(m["Ebs"])} for m in recorded]


def _log_available(account: str, ami: Ami, at: float) -> None:
    if ami.state == "available":
        record(account, ami.id, "image-available", at)


def image_snapshots(ami: Ami) -> list[str]:
    """The snapshots an image's block device mappings use."""
    mappings = ami.block_device_mappings
    return [m["Ebs"]["SnapshotId"] for m in mappings if m.get("Ebs", {}).get("SnapshotId")]


def _deregister_image(self: AmisResponse) -> ActionResult:
    # AWS (API_DeregisterImage.html): DeleteAssociatedSnapshots=true deletes the
    # image's snapshots unless another image still uses them, and reports each
    # one. moto ignores it.
    ami_id = self._get_param("ImageId")
    delete_snapshots = str(self._get_param("DeleteAssociatedSnapshots", "false")).lower() == "true"
    self.error_on_dryrun()
    backend = self.ec2_backend
    with lock:
        ami = backend.amis.get(ami_id)
        backend.deregister_image(ami_id)
        others = list(backend.amis.values())
    result: dict[str, Any] = {"Return": True}
    if delete_snapshots and ami is not None:
        results = []
        used = {snap for other in others for snap in image_snapshots(other)}
        for snap_id in image_snapshots(ami):
            if snap_id in used:
                results.append({"SnapshotId": snap_id, "ReturnCode": "skipped"})
            elif snap_id in backend.snapshots:
                backend.snapshots.pop(snap_id)
                results.append({"SnapshotId": snap_id, "ReturnCode": "success"})
        result["DeleteSnapshotResults"] = results
    return ActionResult(result)


# --- Disabled images --------------------------------------------------------

# AWS (DisableImage, API reference): "Sets the AMI state to `disabled` ... A
# disabled AMI does not appear in DescribeImages API calls by default";
# DescribeImages IncludeDisabled: "Default: No disabled AMIs are included in
# the response." User guide (disable-an-ami.html): "You can't delete snapshots
# associated with disabled AMIs" (InvalidSnapshot.InUse: moto already refuses
# to delete the snapshot of any registered image). moto describes disabled
# images like any other.
_original_describe_images = AmisResponse.describe_images


def _describe_images(self: AmisResponse) -> ActionResult:
    result = _original_describe_images(self)
    if str(self._get_param("IncludeDisabled", "false")).lower() != "true":
        images = result.result["Images"]  # type: ignore[index]
        result.result["Images"] = [ami for ami in images if ami.state != "disabled"]  # type: ignore[index]
    return result


def _state_change(action: Any, state: str) -> Any:
    def change(self: AmisResponse) -> ActionResult:
        result = action(self)
        record(self.current_account, self._get_param("ImageId"), f"image-{state}")
        return result

    return change


def apply() -> None:
    Ami.state = property(_get_state, _set_state)
    Ami.block_device_mappings = property(_block_device_mappings)
    AmiBackend.create_image = _create_image
    AmisResponse.deregister_image = _deregister_image
    AmisResponse.describe_images = _describe_images
    AmisResponse.disable_image = _state_change(AmisResponse.disable_image, "disabled")
    AmisResponse.enable_image = _state_change(AmisResponse.enable_image, "available")
