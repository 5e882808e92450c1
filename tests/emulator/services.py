"""AWS services the `lifeboat` command-line tool calls, added to the emulator.

Like patches.py, each part names the AWS behaviour it restores or adds; none
changes what lifeboat does, only what the emulator can answer:

| AWS behaviour | moto alone |
| --- | --- |
| Lambda Invoke (RequestResponse) runs the function: a registered lifeboat binary, through a Lambda Runtime API | needs Docker |
| Lambda GetAccountSettings | not implemented |
| a function error is HTTP 200 with X-Amz-Function-Error and {"errorType", "errorMessage"} | (Docker) |
| CloudWatch speaks Smithy RPC v2 CBOR (the protocol of the current SDKs) for DescribeAlarms and SetAlarmState | query protocol only |
| CloudFormation creates AWS::CloudWatch::Alarm, named <stack>-<LogicalId>-<suffix> when the template names none | resource type unsupported |
| RunInstances with InstanceMarketOptions makes a spot request (one-time and terminate unless SpotOptions say otherwise), and the instance names it | no request; the options are dropped |

Hooks (emulator.py): `services.apply()` right after `patches.apply()` (it
wraps RunInstances as patches.py leaves it), before the server starts; in the
control API, before its 404: `answer = services.control(method, path,
account, payload)`, returned as JSON when not None; and `services.reset()`
beside `patches.reset()` on /moto-api/reset.

Control API added here (JSON; `account` query parameter):
    POST /lifeboat/functions   {"functions": {"<name>": {"binary": "/path/to/bootstrap",
                                "env": {"AWS_ENDPOINT_URL": ...}, "timeout_seconds": 900}}}:
                                what Invoke runs for these function names
    POST /lifeboat/lambda      {"concurrency_limit": 1000, "unreserved_concurrency": 997}:
                                what GetAccountSettings answers
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

_lock = threading.Lock()
# account -> function name -> {"binary", "env", "timeout_seconds"}
_functions: dict[str, dict[str, dict[str, Any]]] = {}
# account -> {"concurrency_limit", "unreserved_concurrency"}
_lambda_settings: dict[str, dict[str, int]] = {}
DEFAULT_CONCURRENCY = 1000
_STACK_ALARM: type | None = None
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/")


def reset() -> None:
    with _lock:
        _functions.clear()
        _lambda_settings.clear()


def control(method: str, path: str, account: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Answers the control endpoints above; None for any other path."""
    if path == "/lifeboat/functions" and method == "POST":
        functions = payload.get("functions")
        if not isinstance(functions, dict):
            raise ValueError("'functions' must map function names to {'binary', 'env', 'timeout_seconds'}")
        for name, spec in functions.items():
            if not os.access(spec.get("binary", ""), os.X_OK):
                raise ValueError(f"function {name}: {spec.get('binary')!r} is not an executable")
        with _lock:
            _functions.setdefault(account, {}).update(functions)
        return {"ok": True}
    if path == "/lifeboat/lambda" and method == "POST":
        unknown = set(payload) - {"concurrency_limit", "unreserved_concurrency"}
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        with _lock:
            _lambda_settings.setdefault(account, {}).update({k: int(v) for k, v in payload.items()})
        return {"ok": True}
    return None


def _account(headers: dict[str, str]) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    return lowered.get("x-moto-account-id", "123456789012")


def _region(headers: dict[str, str]) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    match = CREDENTIAL_SCOPE.search(lowered.get("authorization", ""))
    return match.group(1) if match else "us-east-1"


# --- Lambda -------------------------------------------------------------------
# Invoke: https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html
# The Runtime API a custom runtime polls:
# https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html


class _Runtime(BaseHTTPRequestHandler):
    """One invocation's Runtime API: hands out the event once, records the
    response, the function error or the init error."""

    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        state = self.server.state
        if not self.path.endswith("/runtime/invocation/next"):
            return self._reply(404)
        with state["lock"]:
            event, state["event"] = state["event"], None
        if event is None:
            # The one event was handed out: hold the runtime until it is stopped.
            state["done"].wait()
            return self._reply(500)
        self._reply(
            200,
            event,
            {
                "Content-Type": "application/json",
                "Lambda-Runtime-Aws-Request-Id": state["request_id"],
                "Lambda-Runtime-Deadline-Ms": str(state["deadline_ms"]),
                "Lambda-Runtime-Invoked-Function-Arn": state["arn"],
                "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
            },
        )

    def do_POST(self) -> None:
        state = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.endswith("/response"):
            state["result"] = ("response", body)
        elif self.path.endswith("/init/error") or self.path.endswith("/error"):
            state["result"] = ("error", body)
        self._reply(202)
        state["done"].set()


def _run_function(account: str, region: str, name: str, spec: dict[str, Any], payload: bytes) -> tuple[bool, bytes]:
    """Runs the binary for one event; (function error?, payload)."""
    timeout = float(spec.get("timeout_seconds", 900))
    if isinstance(payload, str):
        payload = payload.encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Runtime)
    server.daemon_threads = True
    server.state = {
        "lock": threading.Lock(),
        "event": payload or b"{}",
        "request_id": f"lifeboat-{time.time_ns()}",
        "deadline_ms": int((time.time() + timeout) * 1000),
        "arn": f"arn:aws:lambda:{region}:{account}:function:{name}",
        "done": threading.Event(),
        "result": None,
    }
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: str(v) for k, v in spec.get("env", {}).items()}
    env.update(
        {
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_port}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "emulator",
        }
    )
    env.setdefault("PATH", os.environ.get("PATH", "/usr/bin:/bin"))
    child = subprocess.Popen([spec["binary"]], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = server.state
    exited = None
    try:
        started = time.time()
        while not state["done"].wait(0.05):
            exited = child.poll()
            if exited is not None or time.time() - started > timeout:
                break
    finally:
        state["done"].set()
        child.kill()
        child.wait()
        server.shutdown()
        server.server_close()
    if state["result"] is None:
        if exited is None:
            error = {"errorType": "Sandbox.Timedout", "errorMessage": f"Task timed out after {timeout:.2f} seconds"}
        else:
            error = {"errorType": "Runtime.ExitError", "errorMessage": f"Runtime exited with error: exit status {exited}"}
        return True, json.dumps(error).encode()
    kind, body = state["result"]
    return kind == "error", body


def _lambda_invoke(original: Any) -> Any:
    def invoke(self: Any) -> Any:
        name = unquote(self.path.rsplit("/", 2)[-2])
        with _lock:
            spec = _functions.get(self.current_account, {}).get(name)
        if spec is None:
            return original(self)
        kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind == "DryRun":
            return 204, {"status": "204"}, ""
        if kind != "RequestResponse":
            raise ValueError(f"the emulator runs RequestResponse invocations only, not {kind}")
        failed, body = _run_function(self.current_account, self.region, name, spec, self.body or b"")
        headers = {"content-type": "application/json", "X-Amz-Executed-Version": "$LATEST"}
        if failed:
            headers["X-Amz-Function-Error"] = "Unhandled"
        return 200, headers, body

    return invoke


def _account_settings(request: Any, full_url: str, headers: dict[str, str]) -> Any:
    # https://docs.aws.amazon.com/lambda/latest/api/API_GetAccountSettings.html
    account = _account(headers)
    with _lock:
        settings = dict(_lambda_settings.get(account, {}))
        functions = len(_functions.get(account, {}))
    limit = settings.get("concurrency_limit", DEFAULT_CONCURRENCY)
    body = {
        "AccountLimit": {
            "TotalCodeSize": 80530636800,
            "CodeSizeUnzipped": 262144000,
            "CodeSizeZipped": 52428800,
            "ConcurrentExecutions": limit,
            "UnreservedConcurrentExecutions": settings.get("unreserved_concurrency", limit),
        },
        "AccountUsage": {"TotalCodeSize": 0, "FunctionCount": functions},
    }
    return 200, {"content-type": "application/json"}, json.dumps(body)


# --- CloudWatch over Smithy RPC v2 CBOR ---------------------------------------
# https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html
# (POST /service/<service>/operation/<operation>, CBOR bodies, header
# smithy-protocol: rpc-v2-cbor; timestamps are tag 1, epoch seconds), and CBOR
# itself, RFC 8949.


class _Tag:
    def __init__(self, tag: int, value: Any) -> None:
        self.tag, self.value = tag, value


def cbor_decode(data: bytes) -> Any:
    value, end = _decode(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes after the CBOR item")
    return value


def _argument(data: bytes, pos: int, info: int) -> tuple[int | None, int]:
    if info < 24:
        return info, pos
    sizes = {24: 1, 25: 2, 26: 4, 27: 8}
    if info in sizes:
        n = sizes[info]
        return int.from_bytes(data[pos : pos + n], "big"), pos + n
    if info == 31:
        return None, pos  # indefinite length
    raise ValueError(f"reserved additional information {info}")


def _decode(data: bytes, pos: int) -> tuple[Any, int]:
    initial = data[pos]
    major, info = initial >> 5, initial & 0x1F
    pos += 1
    if major == 7:
        if info == 20:
            return False, pos
        if info == 21:
            return True, pos
        if info in (22, 23):
            return None, pos
        if info == 25:
            return _half(data[pos : pos + 2]), pos + 2
        if info == 26:
            return struct.unpack(">f", data[pos : pos + 4])[0], pos + 4
        if info == 27:
            return struct.unpack(">d", data[pos : pos + 8])[0], pos + 8
        raise ValueError(f"unsupported simple value {info}")
    arg, pos = _argument(data, pos, info)
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        if arg is None:
            chunks = []
            while data[pos] != 0xFF:
                chunk, pos = _decode(data, pos)
                chunks.append(chunk)
            joined = b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
            return (joined if major == 2 else joined.decode()), pos + 1
        raw = data[pos : pos + arg]
        return (bytes(raw) if major == 2 else raw.decode()), pos + arg
    if major == 4:
        items = []
        while (arg is None and data[pos] != 0xFF) or (arg is not None and len(items) < arg):
            item, pos = _decode(data, pos)
            items.append(item)
        return items, pos + (1 if arg is None else 0)
    if major == 5:
        result = {}
        while (arg is None and data[pos] != 0xFF) or (arg is not None and len(result) < arg):
            key, pos = _decode(data, pos)
            result[key], pos = _decode(data, pos)
        return result, pos + (1 if arg is None else 0)
    if major == 6:
        value, pos = _decode(data, pos)
        if arg == 1:
            return datetime.fromtimestamp(value, tz=timezone.utc), pos
        return _Tag(arg, value), pos
    raise ValueError(f"major type {major}")


def _half(raw: bytes) -> float:
    return struct.unpack(">e", raw)[0]


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise ValueError("integer too large")


def cbor_encode(value: Any) -> bytes:
    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, bytes):
        return _head(2, len(value)) + value
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return b"\xc1" + cbor_encode(moment.timestamp())
    if isinstance(value, (list, tuple)):
        return _head(4, len(value)) + b"".join(cbor_encode(v) for v in value)
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(cbor_encode(k) + cbor_encode(v) for k, v in value.items())
    raise TypeError(f"cannot encode {type(value).__name__} as CBOR")


def _cbor_reply(status: int, value: Any) -> Any:
    headers = {"smithy-protocol": "rpc-v2-cbor", "content-type": "application/cbor"}
    return status, headers, cbor_encode(value)


def _alarm_shape(alarm: Any) -> dict[str, Any]:
    return {
        "AlarmName": alarm.name,
        "AlarmArn": alarm.alarm_arn,
        "AlarmDescription": alarm.description or "",
        "StateValue": alarm.state_value,
        "StateReason": alarm.state_reason,
        "StateUpdatedTimestamp": alarm.state_updated_timestamp,
        "ActionsEnabled": bool(alarm.actions_enabled),
        "AlarmActions": list(alarm.alarm_actions or []),
        "MetricName": alarm.metric_name or "",
        "Namespace": alarm.namespace or "",
        "EvaluationPeriods": int(alarm.evaluation_periods or 1),
        "Threshold": float(alarm.threshold or 0),
        "ComparisonOperator": alarm.comparison_operator or "",
    }


def _cloudwatch_cbor(request: Any, full_url: str, headers: dict[str, str]) -> Any:
    from moto.cloudwatch.models import cloudwatch_backends

    operation = full_url.rstrip("/").rsplit("/", 1)[-1]
    backend = cloudwatch_backends[_account(headers)][_region(headers)]
    body = request.get_data() if hasattr(request, "get_data") else request.data
    params = cbor_decode(body) if body else {}
    if operation == "DescribeAlarms":
        alarms = list(backend.describe_alarms())
        names = params.get("AlarmNames")
        if names:
            alarms = [a for a in alarms if a.name in names]
        if params.get("AlarmNamePrefix"):
            alarms = [a for a in alarms if a.name.startswith(params["AlarmNamePrefix"])]
        if params.get("StateValue"):
            alarms = [a for a in alarms if a.state_value == params["StateValue"]]
        return _cbor_reply(200, {"MetricAlarms": [_alarm_shape(a) for a in alarms], "CompositeAlarms": []})
    if operation == "SetAlarmState":
        name = params.get("AlarmName")
        if name not in backend.alarms:
            return _cbor_reply(404, {"__type": "ResourceNotFound", "message": f"Alarm {name} not found"})
        if params.get("StateValue") not in ("OK", "ALARM", "INSUFFICIENT_DATA"):
            return _cbor_reply(400, {"__type": "InvalidParameterValue", "message": "StateValue is not a state"})
        backend.alarms[name].update_state(params.get("StateReason", ""), params.get("StateReasonData", "{}"), params["StateValue"])
        return _cbor_reply(200, {})
    return _cbor_reply(400, {"__type": "UnknownOperationException", "message": f"{operation} over CBOR is not emulated"})


# --- CloudFormation: AWS::CloudWatch::Alarm -----------------------------------
# https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-cloudwatch-alarm.html
# ("If you don't specify a name, AWS CloudFormation generates a unique physical
# ID"): moto's generate_resource_name gives <stack>-<LogicalId>-<suffix>.


def _alarm_model() -> type:
    from moto.cloudwatch.models import cloudwatch_backends
    from moto.core.common_models import CloudFormationModel

    class StackAlarm(CloudFormationModel):
        # moto files every model under the service its module names.
        __module__ = "moto.cloudwatch.models"

        def __init__(self, account_id: str, region: str, name: str) -> None:
            self.account_id, self.region, self.name = account_id, region, name

        @property
        def physical_resource_id(self) -> str:
            return self.name

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::CloudWatch::Alarm"

        @staticmethod
        def cloudformation_name_type() -> str:
            return "AlarmName"

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
        ) -> "StackAlarm":
            p = cloudformation_json.get("Properties", {})
            cloudwatch_backends[account_id][region_name].put_metric_alarm(
                name=resource_name,
                namespace=p.get("Namespace", ""),
                metric_name=p.get("MetricName", ""),
                comparison_operator=p.get("ComparisonOperator", ""),
                evaluation_periods=int(p.get("EvaluationPeriods", 1)),
                period=int(p.get("Period", 60)),
                threshold=float(p.get("Threshold", 0)),
                statistic=p.get("Statistic", "Sum"),
                description=p.get("AlarmDescription", ""),
                dimensions=p.get("Dimensions", []),
                alarm_actions=p.get("AlarmActions", []),
                datapoints_to_alarm=p.get("DatapointsToAlarm"),
                treat_missing_data=p.get("TreatMissingData"),
            )
            return cls(account_id, region_name, resource_name)

        @classmethod
        def delete_from_cloudformation_json(  # type: ignore[misc]
            cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
        ) -> None:
            cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])

        def delete(self, account_id: str, region_name: str) -> None:
            cloudwatch_backends[account_id][region_name].delete_alarms([self.name])

    return StackAlarm


# --- EC2: the spot request of a RunInstances spot launch ------------------------
# https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_SpotMarketOptions.html:
# SpotInstanceType defaults to one-time, InstanceInterruptionBehavior to
# terminate, and "persistent Spot Instance requests are only supported when
# the instance interruption behavior is either hibernate or stop"; a one-time
# request can only terminate (EC2 User Guide, interruption-behavior.html). The
# error code for either combination is not documented: InvalidParameterCombination.


def _run_instances(original: Any) -> Any:
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


def apply() -> None:
    import moto.awslambda.urls as lambda_urls
    import moto.cloudwatch.urls as cloudwatch_urls
    from moto.awslambda.responses import LambdaResponse
    from moto.ec2.responses.instances import InstanceResponse

    LambdaResponse.invoke = _lambda_invoke(LambdaResponse.invoke)
    lambda_urls.url_paths[r"{0}/2016-08-19/account-settings/?$"] = _account_settings
    cloudwatch_urls.url_paths[r"{0}/service/GraniteServiceVersion20100801/operation/(?P<operation>[A-Za-z]+)$"] = (
        _cloudwatch_cbor
    )
    global _STACK_ALARM
    _STACK_ALARM = _alarm_model()  # held: moto finds models by __subclasses__, which are weak
    InstanceResponse.run_instances = _run_instances(InstanceResponse.run_instances)
