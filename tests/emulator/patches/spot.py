"""Spot interruptions, performed as EC2 performs them (control API only: AWS
decides when, tests decide here); spot launches EC2 ends at once; the spot
request a RunInstances spot launch makes (moto drops the options)."""

from __future__ import annotations

from typing import Any

from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import Instance, StateReason
from moto.ec2.responses.instances import InstanceResponse

from .core import DEFAULTS, later, lock, now, on_configure, on_reset, record, setting

DEFAULTS.update(
    {
        # An interrupted instance is shutting-down (or stopping) this long.
        "shutdown_seconds": 1.0,
    }
)

# AWS (user guide, spot-instance-termination-notices.md): "The possible values
# for instance-action are hibernate, stop, or terminate"; interruption-behavior:
# a stopped or hibernated Spot Instance keeps its EBS volumes and private IP
# addresses (its interfaces stay attached, as in any stop). The state reasons
# are those of API_StateReason.html.
_ACTIONS = {
    "terminate": ("shutting-down", 32, "Server.SpotInstanceTermination", "Spot instance termination"),
    "stop": ("stopping", 64, "Server.SpotInstanceShutdown", "Spot instance shutdown"),
    "hibernate": ("stopping", 64, "Server.SpotInstanceShutdown", "Spot instance shutdown"),
}


def interrupt(account: str, instance_id: str, action: str, after_seconds: float) -> dict[str, Any]:
    """Control API: EC2 interrupts the instance `after_seconds` from now: it
    goes shutting-down then terminated (volumes and interfaces released as at
    any termination), or stopping then stopped, keeping its volumes and
    interfaces. Both steps are logged."""
    if action not in _ACTIONS:
        raise ValueError(f"action must be one of {sorted(_ACTIONS)}, not {action!r}")
    instance = _find(account, instance_id)
    if instance.state != "running":
        raise ValueError(f"{instance_id} is {instance.state}, not running")
    transition, code, reason, message = _ACTIONS[action]

    def begin(at: float) -> None:
        if instance.state != "running":
            return
        instance._state.name, instance._state.code = transition, code
        instance.state_reason = StateReason(f"{reason}: {message}", reason)
        record(account, instance.id, transition, at)
        later(account, at + setting(account, "shutdown_seconds"), finish)

    def finish(at: float) -> None:
        if action == "terminate":
            instance.__dict__["_lb_terminating_at"] = at
            instance.terminate()
        else:
            instance.stop()
            record(account, instance.id, "stopped", at)
        instance.state_reason = StateReason(f"{reason}: {message}", reason)

    due = now() + float(after_seconds)
    later(account, due, begin)
    return {"instance_id": instance_id, "action": action, "at": due}


def _find(account: str, instance_id: str) -> Instance:
    for backend in ec2_backends[account].values():
        for reservation in backend.reservations.values():
            for instance in reservation.instances:
                if instance.id == instance_id:
                    return instance
    raise KeyError(instance_id)


# --- Spot launches and customer managed KMS keys ---------------------------------

# AWS (EC2 user guide, service-linked-roles-spot-instance-requests.html, "Grant
# access to customer managed keys for use with encrypted AMIs and EBS
# snapshots"): EC2 launches Spot Instances as the AWSServiceRoleForEC2Spot
# role, which must be allowed to use a customer managed key that encrypts the
# AMI or the snapshots; otherwise the instance goes from pending to
# shutting-down to terminated at once, with the state reason
# `Client.InternalError` / "Client.InternalError: Client error on launch" (AWS
# knowledge center, encrypted-volumes-stops-immediately: the instance goes
# from pending straight to shutting-down, then to terminated;
# API_StateReason.html: "A client error caused the instance to terminate
# during launch"). An on-demand launch uses the caller's own grants and runs.
# moto has no key policies: `spot_unusable_kms_keys` (key ids or ARNs) names,
# per account, the keys whose policy leaves the spot role out.
_unusable_keys: dict[str, set[str]] = {}


def _key_id(key: str) -> str:
    return key.rsplit("key/", 1)[-1]


def _configure_unusable_keys(account: str, keys: list[str]) -> None:
    with lock:
        _unusable_keys.setdefault(account, set()).update(_key_id(k) for k in keys)


on_configure("spot_unusable_kms_keys", _configure_unusable_keys)
on_reset(_unusable_keys.clear)


def _volume_keys(instance: Instance) -> set[str]:
    """The KMS keys of the instance's volumes: their own, else their
    snapshot's, which is the key of the volume the snapshot was taken of
    (AWS, EBS user guide, ebs-encryption.html: "Snapshots that are created
    from encrypted volumes are automatically encrypted" with the same key;
    moto records no key on a volume made from a snapshot, nor on a snapshot)."""
    backend = instance.ec2_backend
    keys = set()
    for _, block in instance.get_block_device_mapping:
        volume = backend.volumes.get(block.volume_id)
        if volume is None:
            continue
        key = volume.kms_key_id
        snapshot = backend.snapshots.get(volume.snapshot_id) if volume.snapshot_id else None
        if not key and snapshot is not None:
            source = getattr(snapshot, "volume", None)
            key = snapshot.kms_key_id or getattr(source, "kms_key_id", None)
        if key:
            keys.add(_key_id(key))
    return keys


def _end_at_launch(account: str, instance: Instance) -> None:
    reason = StateReason("Client.InternalError: Client error on launch", "Client.InternalError")

    def begin(at: float) -> None:
        if instance.state != "running":
            return
        instance._state.name, instance._state.code = "shutting-down", 32
        instance.state_reason = reason
        record(account, instance.id, "shutting-down", at)
        later(account, at + setting(account, "shutdown_seconds"), finish)

    def finish(at: float) -> None:
        instance.__dict__["_lb_terminating_at"] = at
        instance.terminate()
        instance.state_reason = reason

    # Before the account's next request: the launch's own answer shows the
    # instance as launched, every later one as ended.
    later(account, now(), begin)


def _kms_checked(run_instances: Any) -> Any:
    def checked(self: InstanceResponse) -> Any:
        result = run_instances(self)
        account = self.current_account
        with lock:
            unusable = set(_unusable_keys.get(account, ()))
        for instance in getattr(getattr(result, "result", None), "instances", None) or []:
            if instance.lifecycle != "spot" or instance.__dict__.get("_lb_kms_checked"):
                continue  # a ClientToken retry answers the first launch
            instance.__dict__["_lb_kms_checked"] = True
            if _volume_keys(instance) & unusable:
                _end_at_launch(account, instance)
        return result

    return checked


def apply() -> None:
    InstanceResponse.run_instances = _kms_checked(InstanceResponse.run_instances)


# The spot request of a RunInstances spot launch:
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_SpotMarketOptions.html:
# SpotInstanceType defaults to one-time, InstanceInterruptionBehavior to
# terminate, and "persistent Spot Instance requests are only supported when
# the instance interruption behavior is either hibernate or stop"; a one-time
# request can only terminate (EC2 User Guide, interruption-behavior.html). The
# error code for either combination is not documented: InvalidParameterCombination.


def _spot_request(original: Any) -> Any:
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.spot_requests import SpotInstanceRequest
    from moto.ec2.utils import random_spot_request_id

    class Recorded(SpotInstanceRequest):
        """The request behind an instance RunInstances launched itself."""

        __module__ = "moto.ec2.models"

        def __init__(self, instance: Any, **kwargs: Any) -> None:
            self._lb_instance = instance
            super().__init__(**kwargs)

        def launch_instance(self) -> Any:
            return self._lb_instance

    def run_instances(self: Any) -> Any:
        options = self._get_param("InstanceMarketOptions") or {}
        spot = options.get("MarketType") == "spot"
        spot_options = options.get("SpotOptions") or {}
        kind = spot_options.get("SpotInstanceType", "one-time")
        behaviour = spot_options.get("InstanceInterruptionBehavior", "terminate")
        if spot and (kind == "one-time") != (behaviour == "terminate"):
            raise EC2ClientError(
                "InvalidParameterCombination",
                f"a {kind} spot request cannot have the interruption behavior {behaviour}",
            )
        result = original(self)
        reservation = getattr(result, "result", None)
        instances = getattr(reservation, "instances", None) or []
        if not spot:
            return result
        for instance in instances:
            if getattr(instance, "spot_instance_request_id", None):
                continue  # a ClientToken retry returns the first launch
            request = Recorded(
                instance,
                ec2_backend=self.ec2_backend,
                spot_request_id=random_spot_request_id(),
                price=spot_options.get("MaxPrice"),
                image_id=instance.image_id,
                spot_instance_type=kind,
                valid_from=None,
                valid_until=None,
                launch_group=None,
                availability_zone_group=None,
                key_name=instance.key_name,
                security_groups=[],
                user_data=None,
                instance_type=instance.instance_type,
                placement=None,
                kernel_id=None,
                ramdisk_id=None,
                monitoring_enabled=False,
                subnet_id=instance.subnet_id,
                tags={},
                spot_fleet_id=None,
                instance_interruption_behaviour=behaviour,
            )
            self.ec2_backend.spot_instance_requests[request.id] = request
            instance.spot_instance_request_id = request.id
        return result

    return run_instances


def apply_requests() -> None:
    """Last of all the RunInstances wrappers: its refusal comes first, and it
    sees the instances the others launched."""
    InstanceResponse.run_instances = _spot_request(InstanceResponse.run_instances)
