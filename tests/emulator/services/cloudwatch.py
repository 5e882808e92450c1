"""CloudWatch over Smithy RPC v2 CBOR (DescribeAlarms, SetAlarmState), and
the AWS::CloudWatch::Alarm resource CloudFormation creates."""

from __future__ import annotations

import struct
from datetime import datetime, timezone
from typing import Any

from .headers import account as _account
from .headers import region as _region

_STACK_ALARM: type | None = None


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


def apply() -> None:
    import moto.cloudwatch.urls as cloudwatch_urls

    cloudwatch_urls.url_paths[r"{0}/service/GraniteServiceVersion20100801/operation/(?P<operation>[A-Za-z]+)$"] = (
        _cloudwatch_cbor
    )
    global _STACK_ALARM
    _STACK_ALARM = _alarm_model()  # held: moto finds models by __subclasses__, which are weak
