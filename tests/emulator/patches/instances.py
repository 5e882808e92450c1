"""Instances: launch, termination, description."""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models.instances import Instance
from moto.ec2.responses.instances import InstanceResponse

from .core import lock, on_reset, record

# (account, region, client token) -> reservation
_client_tokens: dict[tuple[str, str, str], Any] = {}
on_reset(_client_tokens.clear)


_original_run_instances = InstanceResponse.run_instances


def _run_instances(self: InstanceResponse) -> ActionResult:
    # AWS: RunInstances with a ClientToken already used returns the original
    # reservation instead of launching again. moto ignores the token.
    token = self._get_param("ClientToken")
    key = (self.current_account, self.region, token)
    if token:
        with lock:
            known = _client_tokens.get(key)
        if known is not None:
            return ActionResult(known)
    result = _original_run_instances(self)
    if token:
        with lock:
            _client_tokens[key] = result.result
    return result


_original_init = Instance.__init__


def _init(self: Instance, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    record(self.ec2_backend.account_id, self.id, "running")


_original_terminate = Instance.terminate


def _terminate(self: Instance) -> Any:
    # AWS: an interface kept on termination is detached and `available`, its
    # private IP still its own. moto leaves it attached to the dead instance.
    kept = [eni for eni in self.nics.values() if not eni.delete_on_termination]
    previous = _original_terminate(self)
    for eni in kept:
        self.detach_eni(eni)
    record(self.ec2_backend.account_id, self.id, "terminated")
    return previous


def _without_primary_interface(name: str) -> property:
    # AWS: a terminated instance whose interface was kept (and detached) has
    # no private IP or DNS name left. moto reads them from interface 0 and
    # fails (HTTP 500) once it is gone.
    original = Instance.__dict__[name]
    return property(lambda self: original.fget(self) if 0 in self.nics else None)


def apply() -> None:
    InstanceResponse.run_instances = _run_instances
    Instance.__init__ = _init
    Instance.terminate = _terminate
    for name in ("private_ip", "private_ip_address", "private_dns_name", "public_ip", "public_ip_address"):
        setattr(Instance, name, _without_primary_interface(name))
