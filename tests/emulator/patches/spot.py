"""Spot interruptions, performed as EC2 performs them (control API only: AWS
decides when, tests decide here); spot launches EC2 ends at once."""

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
