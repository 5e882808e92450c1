"""Patches that make moto behave as AWS does where lifeboat depends on it.

Each patch names the AWS behaviour it restores. They are applied in-process
before the server starts (see emulator.py); nothing here changes what lifeboat
does, only how faithfully the emulator answers.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami, AmiBackend
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.instances import Instance
from moto.ec2.models.subnets import Subnet
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.responses.elastic_network_interfaces import ElasticNetworkInterfaces
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix
from moto.ssm.exceptions import SSMException
from moto.ssm.models import Command
from moto.ssm.responses import SimpleSystemManagerResponse

# Per-account knobs, set through the control API (emulator.py).
DEFAULTS = {
    # A new AMI stays `pending` this long (AWS: minutes), then is `available`.
    "ami_pending_seconds": 1.0,
    # An instance's SSM agent reports Online this long after launch.
    "ssm_online_seconds": 0.0,
    # A command invocation is InProgress this long before its result.
    "ssm_command_seconds": 0.0,
}
_lock = threading.Lock()
_settings: dict[str, dict[str, Any]] = {}
# account -> list of results for the next SendCommand invocations
_command_results: dict[str, list[dict[str, Any]]] = {}
# (account, region, client token) -> reservation
_client_tokens: dict[tuple[str, str, str], Any] = {}
# instance ids whose SSM agent never comes online
_offline: set[str] = set()


def setting(account: str, name: str) -> Any:
    with _lock:
        return _settings.get(account, {}).get(name, DEFAULTS[name])


def configure(account: str, values: dict[str, Any]) -> None:
    unknown = set(values) - set(DEFAULTS) - {"offline_instances", "command_results"}
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    with _lock:
        for name in DEFAULTS:
            if name in values:
                _settings.setdefault(account, {})[name] = float(values[name])
        _offline.update(values.get("offline_instances", []))
        _command_results.setdefault(account, []).extend(values.get("command_results", []))


def reset() -> None:
    with _lock:
        _settings.clear()
        _command_results.clear()
        _client_tokens.clear()
        _offline.clear()


def _now() -> float:
    return time.time()


# --- Speed -------------------------------------------------------------------


def _get_tags(self: TaggedEC2Resource) -> list[dict[str, str]]:
    # Not a behaviour fix: moto finds a resource's tags by matching a regular
    # expression against every tag of the account, so filtering N resources by
    # tag is quadratic (10,000 snapshots: tens of minutes). A direct lookup
    # gives the same answer.
    resource_id = getattr(self, "id", None)
    if not resource_id:
        return []
    resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
    tags = self.ec2_backend.tags.get(resource_id, {})
    return [{"resource_id": resource_id, "key": k, "value": v, "resource_type": resource_type} for k, v in tags.items()]


# --- AMIs -------------------------------------------------------------------

# AWS: a new AMI is `pending` until its snapshots complete, then `available`.
# moto makes it `available` at once. The state becomes a property that turns
# `pending` into `available` once the account's ami_pending_seconds have passed.
def _get_state(self: Ami) -> str:
    state = self.__dict__.get("_lb_state", "available")
    ready_at = self.__dict__.get("_lb_available_at")
    if state == "pending" and ready_at is not None and _now() >= ready_at:
        state = self.__dict__["_lb_state"] = "available"
    return state


def _set_state(self: Ami, value: str) -> None:
    self.__dict__["_lb_state"] = value
    self.__dict__.pop("_lb_available_at", None)


_original_create_image = AmiBackend.create_image


def _create_image(self: Any, instance_id: str, name: str, description: str, tag_specifications: list) -> Ami:
    # AWS: AMI names are unique per account and region: InvalidAMIName.Duplicate.
    # moto accepts any number of images with one name.
    for ami in self.amis.values():
        if ami.name == name and ami.owner_id == self.account_id:
            raise EC2ClientError("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {ami.id}")
    # AWS: a `snapshot` TagSpecification tags the image's snapshots. moto raises
    # NotImplementedError (HTTP 500); the image is made without it, then tagged.
    image_tags = [s for s in tag_specifications if s.get("ResourceType") != "snapshot"]
    snapshot_tags = [t for s in tag_specifications if s.get("ResourceType") == "snapshot" for t in s.get("Tags", [])]
    ami = _original_create_image(self, instance_id, name, description, tag_specifications=image_tags)
    for tag in snapshot_tags:
        ami.ebs_snapshot.add_tag(tag["Key"], tag["Value"])
    ami.state = "pending"
    ami.__dict__["_lb_available_at"] = _now() + setting(self.account_id, "ami_pending_seconds")
    return ami


def _deregister_image(self: AmisResponse) -> ActionResult:
    # AWS: DeleteAssociatedSnapshots=true deletes the image's snapshots unless
    # another image still uses them, and reports each one. moto ignores it.
    ami_id = self._get_param("ImageId")
    delete_snapshots = str(self._get_param("DeleteAssociatedSnapshots", "false")).lower() == "true"
    self.error_on_dryrun()
    backend = self.ec2_backend
    with _lock:
        ami = backend.amis.get(ami_id)
        backend.deregister_image(ami_id)
        others = list(backend.amis.values())
    result: dict[str, Any] = {"Return": True}
    if delete_snapshots and ami is not None:
        results = []
        snap_id = ami.ebs_snapshot.id
        if any(other.ebs_snapshot.id == snap_id for other in others):
            results.append({"SnapshotId": snap_id, "ReturnCode": "skipped"})
        elif snap_id in backend.snapshots:
            backend.snapshots.pop(snap_id)
            results.append({"SnapshotId": snap_id, "ReturnCode": "success"})
        result["DeleteSnapshotResults"] = results
    return ActionResult(result)


# --- Instances --------------------------------------------------------------

_original_run_instances = InstanceResponse.run_instances


def _run_instances(self: InstanceResponse) -> ActionResult:
    # AWS: RunInstances with a ClientToken already used returns the original
    # reservation instead of launching again. moto ignores the token.
    token = self._get_param("ClientToken")
    key = (self.current_account, self.region, token)
    if token:
        with _lock:
            known = _client_tokens.get(key)
        if known is not None:
            return ActionResult(known)
    result = _original_run_instances(self)
    if token:
        with _lock:
            _client_tokens[key] = result.result
    return result


def _request_ip(self: Subnet, ip: str, instance: Any) -> None:
    # AWS: a private IP outside the subnet is InvalidParameterValue, one held by
    # another interface is InvalidIPAddress.InUse. moto raises a bare
    # Exception (HTTP 500) for both.
    import ipaddress

    if ipaddress.ip_address(ip) not in self.cidr:
        raise EC2ClientError("InvalidParameterValue", f"Address {ip} does not fall within the subnet's address range")
    if ip in self._subnet_ips:
        raise EC2ClientError("InvalidIPAddress.InUse", f"Address {ip} is in use.")
    self._unused_ips.discard(ip)
    self._subnet_ips[ip] = instance


# --- Network interfaces ------------------------------------------------------

_original_prep_nics = Instance.prep_nics


def _prep_nics(self: Instance, nic_spec: list, *args: Any, **kwargs: Any) -> None:
    # AWS: an interface named by NetworkInterfaceId must be `available`;
    # attaching one in use is InvalidNetworkInterface.InUse. moto moves it.
    for nic in nic_spec:
        if nic.get("NetworkInterfaceId"):
            eni = self.ec2_backend.get_network_interface(nic["NetworkInterfaceId"])
            if eni.status != "available":
                raise EC2ClientError("InvalidNetworkInterface.InUse", f"Interface: [{eni.id}] in use.")
    existing = {nic.get("NetworkInterfaceId") for nic in nic_spec}
    wanted = {int(n.get("DeviceIndex", 0)): n.get("DeleteOnTermination") for n in nic_spec}
    _original_prep_nics(self, nic_spec, *args, **kwargs)
    # AWS: an interface created by the launch is deleted on termination unless
    # the request says otherwise. moto defaults to keeping it.
    for index, eni in self.nics.items():
        if eni.id not in existing:
            choice = wanted.get(index)
            eni.delete_on_termination = True if choice is None else str(choice).lower() == "true"


_original_terminate = Instance.terminate


def _terminate(self: Instance) -> Any:
    # AWS: an interface kept on termination is detached and `available`, its
    # private IP still its own. moto leaves it attached to the dead instance.
    kept = [eni for eni in self.nics.values() if not eni.delete_on_termination]
    previous = _original_terminate(self)
    for eni in kept:
        self.detach_eni(eni)
    return previous


def _without_primary_interface(name: str) -> property:
    # AWS: a terminated instance whose interface was kept (and detached) has
    # no private IP or DNS name left. moto reads them from interface 0 and
    # fails (HTTP 500) once it is gone.
    original = Instance.__dict__[name]
    return property(lambda self: original.fget(self) if 0 in self.nics else None)


_original_modify_eni = ElasticNetworkInterfaces.modify_network_interface_attribute


def _modify_eni(self: ElasticNetworkInterfaces) -> Any:
    # AWS: Attachment.DeleteOnTermination changes whether the interface outlives
    # its instance. moto ignores it.
    attachment = self._get_param("Attachment") or {}
    if attachment:
        eni = self.ec2_backend.get_network_interface(self._get_param("NetworkInterfaceId"))
        if eni.attachment_id != attachment.get("AttachmentId"):
            raise EC2ClientError(
                "InvalidAttachmentID.NotFound", f"The attachment ID '{attachment.get('AttachmentId')}' does not exist"
            )
        eni.delete_on_termination = str(attachment.get("DeleteOnTermination")).lower() == "true"
        self.error_on_dryrun()
        from moto.core.responses import EmptyResult

        return EmptyResult()
    return _original_modify_eni(self)


# --- SSM --------------------------------------------------------------------


def _instance(account: str, region: str, instance_id: str) -> Any:
    for reservation in ec2_backends[account][region].reservations.values():
        for instance in reservation.instances:
            if instance.id == instance_id:
                return instance
    return None


def _ping_status(account: str, instance: Any) -> str | None:
    """AWS: an instance is a managed node once its agent registered, some time
    after it started running; it goes ConnectionLost when it stops."""
    if instance.id in _offline:
        return None
    if instance.state != "running":
        return "ConnectionLost"
    launched = instance.launch_time
    if isinstance(launched, str):
        launched = datetime.strptime(launched, "%Y-%m-%dT%H:%M:%S.000Z")
    if _now() - launched.replace(tzinfo=timezone.utc).timestamp() < setting(account, "ssm_online_seconds"):
        return None
    return "Online"


def _describe_instance_information(self: SimpleSystemManagerResponse) -> ActionResult:
    # AWS: lists the managed nodes with their PingStatus. Not in moto.
    wanted: set[str] | None = None
    for f in self._get_param("Filters", []) or []:
        if f.get("Key") == "InstanceIds":
            wanted = set(f.get("Values", []))
    for f in self._get_param("InstanceInformationFilterList", []) or []:
        if f.get("key") == "InstanceIds":
            wanted = set(f.get("valueSet", []))
    account, region = self.current_account, self.region
    items = []
    for reservation in ec2_backends[account][region].reservations.values():
        for instance in reservation.instances:
            if wanted is not None and instance.id not in wanted:
                continue
            status = _ping_status(account, instance)
            if status is None:
                continue
            items.append(
                {
                    "InstanceId": instance.id,
                    "PingStatus": status,
                    "ResourceType": "EC2Instance",
                    "PlatformType": "Linux",
                    "IPAddress": instance.private_ip,
                    "AgentVersion": "3.3.0.0",
                }
            )
    return ActionResult({"InstanceInformationList": items})


_original_send_command = SimpleSystemManagerResponse.send_command


def _send_command(self: SimpleSystemManagerResponse) -> ActionResult:
    # AWS: SendCommand to an instance that is not an Online managed node fails
    # with InvalidInstanceId. moto accepts any id.
    account, region = self.current_account, self.region
    for instance_id in self._get_param("InstanceIds", []) or []:
        instance = _instance(account, region, instance_id)
        if instance is None or _ping_status(account, instance) != "Online":
            raise SSMException("InvalidInstanceId", f"Instances [[{instance_id}]] not in a valid state for account {account}")
    return _original_send_command(self)


def _targets_instance_ids(self: Command) -> list[str]:
    # AWS: Targets select instances by tag; no Targets selects none. moto turns
    # an empty Targets into "no filter" and sends the command to every instance.
    if not self.targets:
        return []
    return _original_targets(self)


_original_targets = Command._get_instance_ids_from_targets
_original_command_init = Command.__init__


def _command_init(self: Command, *args: Any, **kwargs: Any) -> None:
    _original_command_init(self, *args, **kwargs)
    # The result each invocation reports: Success with no output unless the
    # control API queued another one; InProgress until ssm_command_seconds pass.
    self._lb_ready_at = _now() + setting(self.account_id, "ssm_command_seconds")
    for invocation in self.invocations:
        with _lock:
            queued = _command_results.get(self.account_id) or []
            result = queued.pop(0) if queued else {}
        status = result.get("status", "Success")
        invocation.update(
            {
                "Status": status,
                "StatusDetails": status,
                "ResponseCode": int(result.get("response_code", 0 if status == "Success" else 1)),
                "StandardOutputContent": result.get("stdout", ""),
                "StandardErrorContent": result.get("stderr", ""),
            }
        )


_original_get_invocation = Command.get_invocation


def _get_invocation(self: Command, instance_id: str, plugin_name: str | None) -> dict[str, Any]:
    invocation = dict(_original_get_invocation(self, instance_id, plugin_name))
    if _now() < self._lb_ready_at:
        invocation.update({"Status": "InProgress", "StatusDetails": "InProgress", "ResponseCode": -1})
    return invocation


def apply() -> None:
    TaggedEC2Resource.get_tags = _get_tags
    Ami.state = property(_get_state, _set_state)
    AmiBackend.create_image = _create_image
    AmisResponse.deregister_image = _deregister_image
    InstanceResponse.run_instances = _run_instances
    Subnet.request_ip = _request_ip
    Instance.prep_nics = _prep_nics
    Instance.terminate = _terminate
    for name in ("private_ip", "private_ip_address", "private_dns_name", "public_ip", "public_ip_address"):
        setattr(Instance, name, _without_primary_interface(name))
    ElasticNetworkInterfaces.modify_network_interface_attribute = _modify_eni
    SimpleSystemManagerResponse.describe_instance_information = _describe_instance_information
    SimpleSystemManagerResponse.send_command = _send_command
    Command._get_instance_ids_from_targets = _targets_instance_ids
    Command.__init__ = _command_init
    Command.get_invocation = _get_invocation
