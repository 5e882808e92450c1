"""Instances: launch, termination, description."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import Instance, InstanceBackend
from moto.ec2.responses.general import General
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.utils import Base64EncodedString, filter_dict_attribute_mapping

from .core import DEFAULTS, now, on_reset, record, setting


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
    self.__dict__["_lb_launched_at"] = now()
    record(self.ec2_backend.account_id, self.id, "running")


_original_terminate = Instance.terminate


def _terminate(self: Instance) -> Any:
    # When it terminated: now, or when AWS's own action (an interruption) was
    # due. Interfaces are released in network.py, volumes in volumes.py.
    at = self.__dict__.pop("_lb_terminating_at", None) or now()
    previous = _original_terminate(self)
    self.__dict__["_lb_terminated_at"] = at
    record(self.ec2_backend.account_id, self.id, "terminated", at)
    return previous


# --- Terminated instances -------------------------------------------------------

# AWS (DescribeInstances, API reference): "Recently terminated instances might
# appear in the returned results. This interval is usually less than one hour."
# (TerminateInstances: "approximately one hour"). What they still show is not
# documented; reports agree that the interfaces, private IP, block device
# mappings and instance profile are gone while the tags, type, image, client
# token and key name stay (wagoodman/bridgy#19, compdemocracy/polis#2796,
# amazon-archives/aws-security-benchmark#87). moto describes a terminated
# instance in full, forever.
_HIDDEN: dict[str, Any] = {
    "network_interfaces": [],
    "block_device_mappings": [],
    "iam_instance_profile": None,
    "private_ip": None,
    "private_ip_address": None,
    "private_dns_name": None,
    "public_ip": None,
    "public_ip_address": None,
    "public_dns_name": None,
}


def _hidden_once_terminated(name: str, empty: Any) -> property:
    original = Instance.__dict__.get(name)
    # moto reads these from interface 0, and fails (HTTP 500) without it
    from_interface = name.startswith(("private_", "public_"))

    def get(self: Instance) -> Any:
        if self.state == "terminated":
            return empty
        if isinstance(original, property):
            return original.fget(self) if 0 in self.nics or not from_interface else None
        return self.__dict__.get(f"_lb_{name}")

    def set_(self: Instance, value: Any) -> None:
        self.__dict__[f"_lb_{name}"] = value

    return property(get, None if isinstance(original, property) else set_)


# AWS (ec2/latest/devguide/eventual-consistency.html): "the result of an API
# command ... might not be immediately visible to all subsequent commands".
# Opt-in (tag_filter_lag_seconds, default 0): an instance launched less than
# that long ago is left out of DescribeInstances filtered by tag, the lookup
# a retry uses to find the replacement an earlier invocation launched.
DEFAULTS["tag_filter_lag_seconds"] = 0.0


def _lagging(instance: Instance, filters: Any) -> bool:
    if not filters or not any(k == "tag-key" or k.startswith("tag:") for k in filters):
        return False
    lag = setting(instance.ec2_backend.account_id, "tag_filter_lag_seconds")
    return now() - instance.__dict__.get("_lb_launched_at", 0.0) < lag


def _visible(instance: Instance) -> bool:
    terminated_at = instance.__dict__.get("_lb_terminated_at")
    if instance.state != "terminated" or terminated_at is None:
        return True
    return now() - terminated_at < setting(instance.ec2_backend.account_id, "terminated_visible_seconds")


_original_all_reservations = InstanceBackend.all_reservations


def _all_reservations(self: InstanceBackend, filters: Any = None) -> list[Any]:
    # Every lookup by id or filter goes through here: an instance gone from
    # the results is InvalidInstanceID.NotFound by id.
    visible = []
    for reservation in _original_all_reservations(self, filters):
        instances = [i for i in reservation.instances if _visible(i) and not _lagging(i, filters)]
        if instances:
            reservation.instances = instances  # a copy of moto's reservation
            visible.append(reservation)
    return visible


def age_termination(account: str, instance_id: str, seconds_ago: float) -> dict[str, Any]:
    """Control API: the instance terminated this long ago."""
    for region, backend in ec2_backends[account].items():
        for reservation in backend.reservations.values():
            for instance in reservation.instances:
                if instance.id != instance_id:
                    continue
                if instance.state != "terminated":
                    raise ValueError(f"{instance_id} is {instance.state}, not terminated")
                instance.__dict__["_lb_terminated_at"] = now() - float(seconds_ago)
                return {"instance_id": instance_id, "region": region, "visible": _visible(instance)}
    raise KeyError(instance_id)


# --- Console output -------------------------------------------------------------

# AWS (GetConsoleOutput, API reference): the response is the InstanceId, the
# Timestamp "of the output" and Output, "the console output, base64-encoded";
# Latest (Nitro types) asks for the newest output instead of the buffered
# one. moto answers every instance with one fixed Xen boot log; here an
# instance answers what the control API set for it (the default is moto's
# text), with the time it was set.


def set_console(account: str, instance_id: str, output: str) -> dict[str, Any]:
    """Control API: what GetConsoleOutput answers for the instance from now on."""
    for region, backend in ec2_backends[account].items():
        for reservation in backend.reservations.values():
            for instance in reservation.instances:
                if instance.id == instance_id:
                    instance.__dict__["_lb_console"] = (str(output), now())
                    return {"instance_id": instance_id, "region": region}
    raise KeyError(instance_id)


_original_get_console_output = General.get_console_output


def _get_console_output(self: General) -> ActionResult:
    result = _original_get_console_output(self)  # InvalidInstanceID.NotFound for an unknown id
    instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
    console = instance.__dict__.get("_lb_console")
    if console is not None:
        output, at = console
        result.result["Output"] = Base64EncodedString.from_raw_string(output)
        result.result["Timestamp"] = datetime.fromtimestamp(at, timezone.utc)
    return result


def apply() -> None:
    # AWS: DescribeInstances filter `client-token`, "the idempotency token you
    # provided when you launched the instance" (API reference). Not in moto.
    filter_dict_attribute_mapping["client-token"] = "client_token"
    InstanceResponse.run_instances = _run_instances
    Instance.__init__ = _init
    Instance.terminate = _terminate
    for name, empty in _HIDDEN.items():
        setattr(Instance, name, _hidden_once_terminated(name, empty))
    InstanceBackend.all_reservations = _all_reservations
    General.get_console_output = _get_console_output
