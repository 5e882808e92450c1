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

Hooks (emulator.py): `services.apply()` right after `patches.apply()`,
before the server starts; in the
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

from typing import Any

from . import awslambda, cloudwatch
from .cloudwatch import cbor_decode, cbor_encode

__all__ = ["apply", "cbor_decode", "cbor_encode", "control", "reset"]


def reset() -> None:
    awslambda.reset()


def control(method: str, path: str, account: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Answers the control endpoints above; None for any other path."""
    return awslambda.control(method, path, account, payload)


def apply() -> None:
    awslambda.apply()
    cloudwatch.apply()
