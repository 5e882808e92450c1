"""Spot interruptions, performed as EC2 performs them (control API only: AWS
decides when, tests decide here)."""

from __future__ import annotations

from typing import Any

from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import Instance, StateReason

from .core import DEFAULTS, later, now, record, setting

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
