"""Root volume replacement (CreateReplaceRootVolumeTask,
DescribeReplaceRootVolumeTasks): not in moto at all.

AWS (user guide, replace-root.html; API reference,
API_CreateReplaceRootVolumeTask.html and API_ReplaceRootVolumeTask.html):
the instance must be `running`, and not bare metal ("You can replace the root
volume for all virtualized instance types and Amazon EC2 Mac metal instances
only. All other metal instances are not supported."); the replacement comes
from a volume (same Availability Zone, `available`, not attached, encrypted if
the original root is, of a type that can boot: "You can't use st1 or sc1 EBS
volumes as root volumes", user guide, RootDeviceStorage.html), a snapshot
("any snapshot that belongs to the same lineage as any of the instance's
previous root volumes"), an AMI (one the account can launch, so `available`;
"The size of the AMI root volume block device mapping must be equal to or
greater than the size of the original root volume ... the request fails"), or
the launch state; one source at most. The task goes `pending` (the
replacement volume is being created), `in-progress` (the original detaching,
the replacement attaching), then `succeeded`; the instance is rebooted. A
task that fails ends `failed` with the original root still attached (and the
instance rebooted too). The states `failing` ("in the process of failing")
then `failed`, and `failing-detached` ("the instance might have no root volume
attached") then `failed-detached` ("the instance has no root volume
attached") are produced on demand (`root_task_failures`). The replaced root
is deleted when DeleteReplacedRootVolume is true, else left `available`. The
new root gets the original's DeleteOnTermination: AWS documents this for the
snapshot, AMI and launch-state sources, not for a given volume (assumed the
same here; lifeboat sets the flag explicitly afterwards anyway).

Error codes AWS documents for the cases (errors-overview.html):
IncorrectInstanceState, InvalidVolume.ZoneMismatch, VolumeInUse,
IncorrectState, InvalidParameterCombination, IdempotentParameterMismatch,
BootForVolumeTypeUnsupported ("The specified volume type cannot be used as a
boot volume"), InvalidAMIID.Unavailable (an AMI "not in a state from which
you can launch an instance"). Not documented, chosen here: a second task while
one runs (IncorrectState), an unencrypted volume for an encrypted root, a
snapshot of another volume and an AMI whose root is smaller
(InvalidParameterValue), a bare-metal instance (UnsupportedOperation), an
unknown task id (InvalidReplaceRootVolumeTaskId.NotFound); the messages are
lifeboat's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.responses.elastic_block_store import ElasticBlockStore

from . import ssm
from .core import DEFAULTS, later, lock, now, on_configure, on_reset, record, setting

DEFAULTS.update(
    {
        # A root volume replacement task takes this long (pending, then
        # in-progress for the second half).
        "root_task_seconds": 2.0,
        # The reboot of a root volume replacement: the instance's SSM agent is
        # not Online for this long after the swap.
        "reboot_seconds": 2.0,
    }
)


@dataclass
class Task:
    id: str
    instance_id: str
    request: dict[str, Any]
    tags: dict[str, str]
    started: float
    state: str = "pending"
    completed: float | None = None
    volume_id: str | None = field(default=None)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ReplaceRootVolumeTaskId": self.id,
            "InstanceId": self.instance_id,
            "TaskState": self.state,
            "StartTime": _iso(self.started),
            "DeleteReplacedRootVolume": self.request["delete"],
            "Tags": [{"Key": k, "Value": v} for k, v in self.tags.items()],
        }
        if self.completed is not None:
            out["CompleteTime"] = _iso(self.completed)
        if self.request["image_id"]:
            out["ImageId"] = self.request["image_id"]
        if self.request["snapshot_id"]:
            out["SnapshotId"] = self.request["snapshot_id"]
        return out


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# (account, region) -> task id -> task, in creation order
_tasks: dict[tuple[str, str], dict[str, Task]] = {}
# (account, region, client token) -> task id
_tokens: dict[tuple[str, str, str], str] = {}
# (account, instance id) -> the ids of its earlier root volumes
_earlier_roots: dict[tuple[str, str], set[str]] = {}
# account -> how the next tasks fail: {"detached": bool, "failing_seconds": s}
_failures: dict[str, list[dict[str, Any]]] = {}


def _configure_failures(account: str, failures: list[dict[str, Any]]) -> None:
    for failure in failures:
        if set(failure) - {"detached", "failing_seconds"}:
            raise ValueError(f"a root task failure takes 'detached' and 'failing_seconds', not {sorted(failure)}")
    with lock:
        _failures.setdefault(account, []).extend(
            {"detached": bool(f.get("detached", False)), "failing_seconds": float(f.get("failing_seconds", 1.0))}
            for f in failures
        )


on_configure("root_task_failures", _configure_failures)
on_reset(_tasks.clear)
on_reset(_tokens.clear)
on_reset(_earlier_roots.clear)
on_reset(_failures.clear)


def _create_task(self: ElasticBlockStore) -> ActionResult:
    backend = self.ec2_backend
    request = {
        "instance_id": self._get_param("InstanceId"),
        "volume_id": self._get_param("VolumeId"),
        "snapshot_id": self._get_param("SnapshotId"),
        "image_id": self._get_param("ImageId"),
        "delete": self._get_bool_param("DeleteReplacedRootVolume", False),
    }
    tags = self._parse_tag_specification().get("replace-root-volume-task", {})
    token = self._get_param("ClientToken")
    self.error_on_dryrun()
    scope = (self.current_account, self.region)
    with lock:
        if token and (scope + (token,)) in _tokens:
            known = _tasks[scope][_tokens[scope + (token,)]]
            if known.request != request:
                raise EC2ClientError(
                    "IdempotentParameterMismatch",
                    "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).",
                )
            return ActionResult({"ReplaceRootVolumeTask": known.describe()})
        instance = backend.get_instance(request["instance_id"])
        earlier = _earlier_roots.get((self.current_account, instance.id), set())
        _check(backend, instance, request, _tasks.get(scope, {}).values(), earlier)
        task = Task(
            "replacevol-" + "".join(random.choices("0123456789abcdef", k=17)), instance.id, request, tags, now()
        )
        _tasks.setdefault(scope, {})[task.id] = task
        if token:
            _tokens[scope + (token,)] = task.id
    account, half = self.current_account, setting(self.current_account, "root_task_seconds") / 2
    record(account, task.id, "task-pending", task.started)
    later(account, task.started + half, lambda at: _progress(account, task, at))
    later(account, task.started + 2 * half, lambda at: _complete(backend, task, at))
    return ActionResult({"ReplaceRootVolumeTask": task.describe()})


# Sizes that make an instance type bare metal: `metal`, `metal-24xl`, ...
def _bare_metal(instance_type: str) -> bool:
    family, _, size = instance_type.partition(".")
    return size.startswith("metal") and not family.startswith("mac")


def _check(backend: Any, instance: Any, request: dict[str, Any], tasks: Any, earlier: set[str]) -> None:
    """Refuses a task AWS would refuse (see the module's docstring)."""
    sources = [k for k in ("volume_id", "snapshot_id", "image_id") if request[k]]
    if len(sources) > 1:
        raise EC2ClientError("InvalidParameterCombination", "Specify at most one of VolumeId, SnapshotId and ImageId.")
    if instance.state != "running":
        raise EC2ClientError("IncorrectInstanceState", f"The instance '{instance.id}' is not in the 'running' state.")
    if _bare_metal(instance.instance_type):
        raise EC2ClientError(
            "UnsupportedOperation", f"The root volume of a {instance.instance_type} instance cannot be replaced."
        )
    if any(t.instance_id == instance.id and t.state in ("pending", "in-progress", "failing", "failing-detached") for t in tasks):
        raise EC2ClientError(
            "IncorrectState", f"A root volume replacement task is already in progress for instance {instance.id}."
        )
    current = instance.block_device_mapping.get(instance.root_device_name)
    if current is None:
        raise EC2ClientError("IncorrectInstanceState", f"The instance '{instance.id}' has no root volume attached.")
    original = backend.get_volume(current.volume_id)
    if request["volume_id"]:
        volume = backend.get_volume(request["volume_id"])
        if volume.availability_zone != instance.placement.zone:
            raise EC2ClientError(
                "InvalidVolume.ZoneMismatch",
                f"The volume '{volume.id}' is not in the same availability zone as instance '{instance.id}'",
            )
        if volume.attachment is not None:
            raise EC2ClientError("VolumeInUse", f"{volume.id} is already attached to an instance")
        if volume.status != "available":
            raise EC2ClientError("IncorrectState", f"{volume.id} is not 'available'.")
        if original.encrypted and not volume.encrypted:
            raise EC2ClientError(
                "InvalidParameterValue", f"The volume {volume.id} must be encrypted: the root volume it replaces is."
            )
        if volume.volume_type in ("st1", "sc1"):
            raise EC2ClientError(
                "BootForVolumeTypeUnsupported", f"The volume type {volume.volume_type} cannot be used as a boot volume."
            )
    if request["snapshot_id"]:
        snapshot = backend.get_snapshot(request["snapshot_id"])
        if snapshot.volume.id != original.id and snapshot.volume.id not in earlier:
            raise EC2ClientError(
                "InvalidParameterValue",
                f"The snapshot {snapshot.id} was not created from a root volume of instance {instance.id}.",
            )
    if request["image_id"]:
        ami = backend.describe_images(ami_ids=[request["image_id"]])[0]
        if ami.state != "available":
            raise EC2ClientError("InvalidAMIID.Unavailable", f"The image {ami.id} is {ami.state}, not 'available'.")
        root = next((m for m in ami.block_device_mappings if m["DeviceName"] == ami.root_device_name), None)
        size = int((root or {}).get("Ebs", {}).get("VolumeSize") or ami.ebs_snapshot.volume_size)
        if size < original.size:
            raise EC2ClientError(
                "InvalidParameterValue",
                f"The root volume of image {ami.id} ({size} GiB) is smaller than the instance's ({original.size} GiB).",
            )


def _progress(account: str, task: Task, at: float) -> None:
    if task.state == "pending":
        task.state = "in-progress"
        record(account, task.id, "task-in-progress", at)


def _complete(backend: Any, task: Task, at: float) -> None:
    """The swap itself, at the end of the task; the instance reboots."""
    account = backend.account_id
    instance = backend.get_instance_by_id(task.instance_id)
    if instance is None or instance.state != "running":
        return _finish(account, task, "failed", at, instance)
    device = instance.root_device_name
    current = instance.block_device_mapping.get(device)
    original = backend.volumes.get(current.volume_id) if current is not None else None
    with lock:
        queued = _failures.get(account)
        failure = queued.pop(0) if queued else None
    if failure is not None:
        return _fail_slowly(backend, task, at, instance, failure)
    replacement = _replacement(backend, instance, original, task.request)
    if original is None or replacement is None:
        return _finish(account, task, "failed", at, instance)
    keep_flag = current.delete_on_termination
    backend.detach_volume(original.id, instance.id, device)
    backend.attach_volume(replacement.id, instance.id, device, keep_flag)
    if task.request["delete"]:
        backend.delete_volume(original.id)
    with lock:
        _earlier_roots.setdefault((account, instance.id), set()).add(original.id)
    task.volume_id = replacement.id
    _finish(account, task, "succeeded", at, instance)


def _fail_slowly(backend: Any, task: Task, at: float, instance: Any, failure: dict[str, Any]) -> None:
    """A failure asked for through `root_task_failures`: `failing` for a
    while, then `failed`, the original root attached and the instance
    rebooted; or, detached, the original root detached at once
    (`failing-detached`), then `failed-detached` with no root at all: the
    instance cannot boot, its agent never comes back."""
    account = backend.account_id
    state = "failing-detached" if failure["detached"] else "failing"
    task.state = state
    record(account, task.id, f"task-{state}", at)
    if failure["detached"]:
        device = instance.root_device_name
        current = instance.block_device_mapping.get(device)
        if current is not None:
            backend.detach_volume(current.volume_id, instance.id, device)
        instance.__dict__["_lb_online_at"] = float("inf")
        record(account, instance.id, "root-detached", at)

    def end(when: float) -> None:
        if failure["detached"]:
            task.state, task.completed = "failed-detached", when
            record(account, task.id, "task-failed-detached", when)
        else:
            _finish(account, task, "failed", when, instance)

    later(account, at + failure["failing_seconds"], end)


def _replacement(backend: Any, instance: Any, original: Any, request: dict[str, Any]) -> Any:
    """The volume to swap in, or None if it is gone or no longer usable."""
    if original is None:
        return None
    zone = instance.placement.zone
    if request["volume_id"]:
        volume = backend.volumes.get(request["volume_id"])
        if volume is None or volume.attachment is not None or volume.availability_zone != zone:
            return None
        return volume
    if request["image_id"]:
        ami = backend.amis.get(request["image_id"])
        if ami is None:
            return None
        snapshot_id, size = ami.ebs_snapshot.id, max(ami.ebs_snapshot.volume_size, original.size)
    else:
        snapshot_id = request["snapshot_id"] or original.snapshot_id
        size = original.size
    if snapshot_id is not None and snapshot_id not in backend.snapshots:
        return None
    return backend.create_volume(size=size, zone_name=zone, snapshot_id=snapshot_id, volume_type=original.volume_type)


def _finish(account: str, task: Task, state: str, at: float, instance: Any) -> None:
    task.state, task.completed = state, at
    record(account, task.id, f"task-{state}", at)
    if instance is not None and instance.state == "running":
        record(account, instance.id, "rebooted", at)
        ssm.agent_starts(instance, at + setting(account, "reboot_seconds"))


def _describe_tasks(self: ElasticBlockStore) -> ActionResult:
    ids = self._get_param("ReplaceRootVolumeTaskIds", []) or []
    filters = self._filters_from_querystring()
    with lock:
        tasks = list(_tasks.get((self.current_account, self.region), {}).values())
    known = {t.id for t in tasks}
    for task_id in ids:
        if task_id not in known:
            raise EC2ClientError(
                "InvalidReplaceRootVolumeTaskId.NotFound",
                f"The root volume replacement task '{task_id}' does not exist",
            )
    for name in filters:
        if name != "instance-id":
            raise EC2ClientError("InvalidParameterValue", f"The filter '{name}' is invalid")
    if ids:
        tasks = [t for t in tasks if t.id in ids]
    if "instance-id" in filters:
        tasks = [t for t in tasks if t.instance_id in filters["instance-id"]]
    start = int(self._get_param("NextToken") or 0)
    size = int(self._get_param("MaxResults") or 50)
    page = tasks[start : start + size]
    result: dict[str, Any] = {"ReplaceRootVolumeTasks": [t.describe() for t in page]}
    if start + size < len(tasks):
        result["NextToken"] = str(start + size)
    return ActionResult(result)


def apply() -> None:
    ElasticBlockStore.create_replace_root_volume_task = _create_task
    ElasticBlockStore.describe_replace_root_volume_tasks = _describe_tasks
