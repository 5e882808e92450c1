"""Instances: launch, termination, description."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.instances import Instance
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.utils import filter_dict_attribute_mapping

from .core import on_reset, record

@dataclass
class _Launch:
    params: dict[str, list[str]]
    reservation: Any


# (account, region, client token) -> the launch it is bound to
_client_tokens: dict[tuple[str, str, str], _Launch] = {}
on_reset(_client_tokens.clear)
# one launch at a time: two identical requests with one token launch once
_launching = threading.Lock()

_original_run_instances = InstanceResponse.run_instances


def _run_instances(self: InstanceResponse) -> ActionResult:
    """AWS (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-idempotency.html):
    a retry with the same ClientToken and the same parameters returns the
    first launch; with other parameters it fails with
    IdempotentParameterMismatch; a token is valid for at least 24 hours after
    its instance terminated (API reference, Run_Instance_Idempotency.html),
    and retrying it once the instance terminated now fails with
    IdempotentInstanceTerminated (boto/boto3#4406). A refused launch binds
    nothing. The model documents "Maximum 64 ASCII characters". moto ignores
    the token. Tokens stay bound for the emulator's lifetime."""
    token = self._get_param("ClientToken")
    if not token:
        return _original_run_instances(self)
    if len(token) > 64 or not token.isascii():
        raise EC2ClientError(
            "InvalidParameterValue",
            f"Value ({token}) for parameter clientToken is invalid. It must be at most 64 ASCII characters.",
        )
    ignored = {"Action", "Version", "ClientToken", "DryRun"}
    params = {k: list(v) for k, v in self.querystring.items() if k not in ignored}
    key = (self.current_account, self.region, token)
    with _launching:
        known = _client_tokens.get(key)
        if known is not None:
            if known.params != params:
                raise EC2ClientError(
                    "IdempotentParameterMismatch",
                    "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
                )
            if all(i.state == "terminated" for i in known.reservation.instances):
                raise EC2ClientError(
                    "IdempotentInstanceTerminated",
                    "The client token you have provided is associated with a terminated instance. "
                    "Please use a different client token.",
                )
            return ActionResult(known.reservation)
        result = _original_run_instances(self)
        _client_tokens[key] = _Launch(params, result.result)
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
    # AWS: DescribeInstances filter `client-token`, "the idempotency token you
    # provided when you launched the instance" (API reference). Not in moto.
    filter_dict_attribute_mapping["client-token"] = "client_token"
    InstanceResponse.run_instances = _run_instances
    Instance.__init__ = _init
    Instance.terminate = _terminate
    for name in ("private_ip", "private_ip_address", "private_dns_name", "public_ip", "public_ip_address"):
        setattr(Instance, name, _without_primary_interface(name))
