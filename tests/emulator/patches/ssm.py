"""Systems Manager: managed nodes and Run Command."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ec2.models.instances import Instance
from moto.ssm.exceptions import SSMException
from moto.ssm.models import Command
from moto.ssm.responses import SimpleSystemManagerResponse

from .core import DEFAULTS, later, lock, now, on_configure, on_reset, record, setting
from .ssm_documents import check_parameters, document, execution_timeout

DEFAULTS.update(
    {
        # GetCommandInvocation answers InvocationDoesNotExist this long after
        # SendCommand.
        "ssm_invocation_delay_seconds": 0.5,
    }
)
# account -> list of results for the next SendCommand invocations
_command_results: dict[str, list[dict[str, Any]]] = {}
# instance ids whose SSM agent never comes online
_offline: set[str] = set()


def _configure_offline(account: str, ids: list[str]) -> None:
    _offline.update(ids)


def _configure_results(account: str, results: list[dict[str, Any]]) -> None:
    _command_results.setdefault(account, []).extend(results)


# accounts where an agent registers only with an instance profile
_profile_required: set[str] = set()


def _configure_profile_required(account: str, required: bool) -> None:
    (_profile_required.add if required else _profile_required.discard)(account)


on_configure("offline_instances", _configure_offline)
on_configure("command_results", _configure_results)
on_configure("ssm_requires_instance_profile", _configure_profile_required)
on_reset(_command_results.clear)
on_reset(_offline.clear)
on_reset(_profile_required.clear)


def _instance(account: str, region: str, instance_id: str) -> Any:
    for reservation in ec2_backends[account][region].reservations.values():
        for instance in reservation.instances:
            if instance.id == instance_id:
                return instance
    return None


def _ping_status(account: str, instance: Any) -> str | None:
    """AWS (API_InstanceInformation.html, PingStatus): an instance is a managed
    node once its agent registered, some time after it started running; it
    goes ConnectionLost when it stops or reboots."""
    if instance.id in _offline:
        return None
    # AWS (SSM user guide, setup-instance-permissions): the agent needs the
    # permissions of an instance profile (unless the account turned on Default
    # Host Management, which lifeboat does not assume): an instance launched
    # without one never registers. Opt-in (ssm_requires_instance_profile).
    if account in _profile_required and not instance.iam_instance_profile:
        return None
    if instance.state != "running":
        return "ConnectionLost"
    if now() < _online_at(account, instance):
        # not registered yet; or rebooting (agent_starts with a time)
        return "ConnectionLost" if "_lb_online_at" in instance.__dict__ else None
    return "Online"


def _online_at(account: str, instance: Any) -> float:
    """When the agent registers: after a reboot, the time set then; else the
    launch time plus the account's current ssm_online_seconds."""
    online_at = instance.__dict__.get("_lb_online_at")
    if online_at is not None:
        return float(online_at)
    launched = instance.launch_time
    if isinstance(launched, str):
        launched = datetime.strptime(launched, "%Y-%m-%dT%H:%M:%S.000Z")
    return launched.replace(tzinfo=timezone.utc).timestamp() + setting(account, "ssm_online_seconds")


def agent_starts(instance: Any, at: float | None = None) -> None:
    """Logs `online` when the instance's agent registers (again, after a
    reboot `at` this time): rechecked while the settings may still move it."""
    account = instance.ec2_backend.account_id
    if at is not None:
        instance.__dict__["_lb_online_at"] = at
    since = instance.__dict__.get("_lb_online_at")

    def check(_: float) -> None:
        if instance.id in _offline or instance.state != "running" or instance.__dict__.get("_lb_online_at") != since:
            return
        online_at = _online_at(account, instance)
        if now() >= online_at:
            record(account, instance.id, "online", online_at)
        else:
            later(account, min(online_at, now() + 0.25), check)

    later(account, min(_online_at(account, instance), now() + 0.25), check)


def _agent_on_launch(init: Any) -> Any:
    def launched(self: Instance, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        agent_starts(self)

    return launched


def _describe_instance_information(self: SimpleSystemManagerResponse) -> ActionResult:
    # AWS (API_DescribeInstanceInformation.html): lists the managed nodes with
    # their PingStatus. Not in moto.
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
    # AWS (API_SendCommand.html, Errors): SendCommand to an instance that is not
    # an Online managed node fails with InvalidInstanceId; the document must exist and take the parameters
    # given (ssm_documents.py). moto accepts any id, document and parameters.
    account, region = self.current_account, self.region
    name = self._get_param("DocumentName")
    check_parameters(name, document(account, region, name), self._get_param("Parameters", {}) or {})
    for instance_id in self._get_param("InstanceIds", []) or []:
        instance = _instance(account, region, instance_id)
        if instance is None or _ping_status(account, instance) != "Online":
            raise SSMException(
                "InvalidInstanceId", f"Instances [[{instance_id}]] not in a valid state for account {account}"
            )
    return _original_send_command(self)


def _targets_instance_ids(self: Command) -> list[str]:
    # AWS (API_SendCommand.html, Targets): Targets select instances by tag; no
    # Targets selects none. moto turns
    # an empty Targets into "no filter" and sends the command to every instance.
    if not self.targets:
        return []
    return _original_targets(self)


_original_targets = Command._get_instance_ids_from_targets
_original_command_init = Command.__init__


def _command_init(self: Command, *args: Any, **kwargs: Any) -> None:
    """The result each invocation reports: Success with no output unless the
    control API queued another one, after ssm_command_seconds (or the
    result's own "seconds"). AWS (SSM user guide, monitor-commands): a command
    still running when its execution timeout passes ends TimedOut
    ("Execution Timed Out ... This is a terminal state"); its output is then
    not reported (not documented: empty here) and its response code is -1."""
    _original_command_init(self, *args, **kwargs)
    account, command_id = self.account_id, self.command_id
    content = document(account, self.backend_region, str(self.document_name))
    timeout = execution_timeout(content, check_parameters(str(self.document_name), content, self.parameters))
    ready: dict[str, float] = {}
    self._lb_sent_at, self._lb_ready_at = now(), ready
    for invocation in self.invocations:
        with lock:
            queued = _command_results.get(account) or []
            result = queued.pop(0) if queued else {}
        seconds = float(result.get("seconds", setting(account, "ssm_command_seconds")))
        status = result.get("status", "Success")
        if seconds > timeout:
            seconds, status, result = timeout, "TimedOut", {"response_code": -1}
        invocation.update(
            {
                "Status": status,
                "StatusDetails": "ExecutionTimedOut" if status == "TimedOut" else status,
                "ResponseCode": int(result.get("response_code", 0 if status == "Success" else 1)),
                "StandardOutputContent": result.get("stdout", ""),
                "StandardErrorContent": result.get("stderr", ""),
            }
        )
        ready_at = self._lb_sent_at + seconds
        ready[invocation["InstanceId"]] = ready_at
        later(account, ready_at, lambda at: record(account, command_id, "command-finished", at))


_original_get_invocation = Command.get_invocation


def _get_invocation(self: Command, instance_id: str, plugin_name: str | None) -> dict[str, Any]:
    # AWS: right after SendCommand, GetCommandInvocation answers
    # InvocationDoesNotExist for a moment (eventual consistency, reported in
    # aws/aws-sdk-ruby#2556, boto/boto3#2701; no AWS page gives the time).
    if now() < self._lb_sent_at + setting(self.account_id, "ssm_invocation_delay_seconds"):
        raise SSMException(
            "InvocationDoesNotExist",
            "An error occurred (InvocationDoesNotExist) when calling the GetCommandInvocation operation",
        )
    invocation = dict(_original_get_invocation(self, instance_id, plugin_name))
    if now() < self._lb_ready_at.get(instance_id, 0.0):
        invocation.update({"Status": "InProgress", "StatusDetails": "InProgress", "ResponseCode": -1})
        invocation.update({"StandardOutputContent": "", "StandardErrorContent": ""})
    return invocation


def apply() -> None:
    Instance.__init__ = _agent_on_launch(Instance.__init__)
    SimpleSystemManagerResponse.describe_instance_information = _describe_instance_information
    SimpleSystemManagerResponse.send_command = _send_command
    Command._get_instance_ids_from_targets = _targets_instance_ids
    Command.__init__ = _command_init
    Command.get_invocation = _get_invocation
