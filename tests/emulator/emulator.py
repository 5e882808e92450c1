"""lifeboat's AWS emulator: moto, patched to answer as AWS does, on 127.0.0.1.

    python emulator.py [--port N]    (0 picks a free port; the first line
                                       printed is "listening on <url>")

Accounts isolate tests that share one emulator: a request signed with an
access key `LB<12 digits>...` acts in that account (moto's x-moto-account-id),
so parallel tests never see each other's instances.

Every request is first checked against botocore's model of its operation and
refused as AWS refuses it (strict.py), then, when it is signed as one of
lifeboat's functions or its operator, against that identity's IAM policy as
the stack deploys it (iam.py).

Control API (JSON; `account` query parameter, default moto's 123456789012):
    POST /moto-api/reset            moto's reset, plus every lifeboat setting
    POST /lifeboat/faults           {"operation": "CreateImage" | "*", "code":
                                     "RequestLimitExceeded", "status": 503,
                                     "count": N | "rate": 0.3, "seed": 1,
                                     "body_contains": "MarketType=spot"}:
                                     fail the next N calls, or a share of
                                     them (only requests whose decoded body
                                     contains body_contains, if given)
    DELETE /lifeboat/faults         clear the account's faults
    GET  /lifeboat/calls            {"CreateImage": 2, ...}: calls that reached
                                     the emulator (faulted ones included)
    POST /lifeboat/config           {"ami_pending_seconds": 0,
                                     "ssm_online_seconds": 5,
                                     "ssm_command_seconds": 1,
                                     "terminated_visible_seconds": 3600,
                                     "tag_filter_lag_seconds": 0,
                                     "ip_release_seconds": 5,
                                     "eni_release_seconds": 3,
                                     "shutdown_seconds": 1,
                                     "root_task_seconds": 2,
                                     "reboot_seconds": 2,
                                     "root_task_failures": [{"detached":
                                     false, "failing_seconds": 1}]: the
                                     next root volume tasks are `failing`
                                     that long, then `failed` (original
                                     root attached); detached:
                                     `failing-detached` then
                                     `failed-detached`, no root at all,
                                     "spot_unusable_kms_keys": ["<key id
                                     or ARN>"]: spot launches whose volumes
                                     (or their snapshots) use one of these
                                     keys end at once, shutting-down then
                                     terminated, Client.InternalError,
                                     "spot_placement_scores": {"eu-west-1a":
                                     3, "euw1-az1": 9}: what
                                     GetSpotPlacementScores answers for these
                                     zones (name or id), score 1-10;
                                     "spot_placement_default_score": 10,
                                     "spot_placement_configurations": 10:
                                     new configurations per 24 h before
                                     MaxConfigLimitExceeded,
                                     "offline_instances": ["i-..."],
                                     "ssm_requires_instance_profile": true,
                                     "ssm_invocation_delay_seconds": 0.5,
                                     "command_results": [{"status": "Failed",
                                     "response_code": 3, "stdout": "...",
                                     "seconds": 2}]}: "seconds" the
                                     invocation runs (ssm_command_seconds by
                                     default); past the document's
                                     executionTimeout it ends TimedOut
    POST /lifeboat/images/<ami-id>  {"state": "pending", "creation_date":
                                     "2026-11-01T01:00:00Z"}
    POST /lifeboat/snapshots/<id>   {"state": "pending", "start_time": "..."}
    POST /lifeboat/instances/<id>   {"terminated_seconds_ago": 4000}: ages a
                                     terminated instance (described for
                                     terminated_visible_seconds, then gone)
    POST /lifeboat/console/<id>     {"output": "...lifeboat-guard: held: ...\\n"}:
                                     what GetConsoleOutput answers for the
                                     instance from now on (base64-encoded
                                     in Output, as AWS sends it; Timestamp
                                     the time it was set); moto's fixed
                                     boot log until then
    POST /lifeboat/interrupt/<id>   {"action": "terminate" | "stop" |
                                     "hibernate", "after_seconds": 2}: EC2
                                     interrupts the spot instance then: it is
                                     shutting-down (stopping) for
                                     shutdown_seconds, then terminated
                                     (stopped, keeping disks and interfaces)
    GET  /lifeboat/notifications    [{"topic_arn", "subject", "message"}]: what
                                     SNS was asked to publish
    POST /lifeboat/seed-images      {"instance_id": "i-...", "images": [{"name":
                                     ..., "tags": {...}, "creation_date": ...,
                                     "state": "available"}]}: many at once
    GET  /lifeboat/events           [{"at": <unix seconds>, "resource": "i-...",
                                     "event": "running"}, ...] in time order:
                                     when AWS reached each state, to compare
                                     with when lifeboat noticed it. Instances:
                                     running, online, shutting-down,
                                     terminated, stopping, stopped, rebooted;
                                     images: image-available, image-<state>;
                                     interfaces: interface-available; volumes:
                                     volume-available; commands:
                                     command-finished; root volume tasks:
                                     task-pending, task-in-progress,
                                     task-succeeded, task-failing,
                                     task-failed, task-failing-detached,
                                     task-failed-detached (and the
                                     instance's root-detached)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import iam
import patches
import services
import strict

DEFAULT_ACCOUNT = "123456789012"
ACCOUNT_KEY = re.compile(r"Credential=LB(\d{12})")


class Faults:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rules: dict[str, list[dict[str, Any]]] = {}
        self.calls: dict[str, Counter] = {}

    def reset(self) -> None:
        with self.lock:
            self.rules.clear()
            self.calls.clear()

    def add(self, account: str, rule: dict[str, Any]) -> None:
        for key in ("operation", "code"):
            if not isinstance(rule.get(key), str):
                raise ValueError(f"a fault needs a string {key!r}")
        if ("count" in rule) == ("rate" in rule):
            raise ValueError("a fault needs exactly one of 'count' or 'rate'")
        rule = dict(rule)
        rule.setdefault("status", 503 if rule["code"] in ("RequestLimitExceeded", "ThrottlingException") else 500)
        rule["random"] = random.Random(rule.get("seed", 0))
        with self.lock:
            self.rules.setdefault(account, []).append(rule)

    def clear(self, account: str) -> None:
        with self.lock:
            self.rules.pop(account, None)

    def hit(self, account: str, operation: str, body: str) -> dict[str, Any] | None:
        """Counts the call; returns the fault to answer it with, if any."""
        with self.lock:
            self.calls.setdefault(account, Counter())[operation] += 1
            for rule in self.rules.get(account, []):
                if rule["operation"] not in (operation, "*"):
                    continue
                if rule.get("body_contains") and rule["body_contains"] not in body:
                    continue
                if "count" in rule:
                    if rule["count"] > 0:
                        rule["count"] -= 1
                        return rule
                elif rule["random"].random() < rule["rate"]:
                    return rule
        return None


FAULTS = Faults()


def error_response(json_protocol: bool, code: str, status: int, start_response: Any) -> list[bytes]:
    message = f"{code} injected by the lifeboat emulator"
    if json_protocol:
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = "application/x-amz-json-1.1"
    else:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
            "<RequestID>lifeboat-emulator</RequestID></Response>"
        ).encode()
        content_type = "text/xml"
    start_response(f"{status} Injected", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def json_response(start_response: Any, value: Any, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(value).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def utc(iso: str) -> datetime:
    """An RFC 3339 time as the naive UTC datetime moto stores."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(timezone.utc).replace(tzinfo=None)


def set_image(account: str, image_id: str, values: dict[str, Any]) -> dict[str, Any]:
    from moto.ec2.models import ec2_backends

    for region, backend in ec2_backends[account].items():
        ami = backend.amis.get(image_id)
        if ami is None:
            continue
        if "state" in values:
            ami.state = values["state"]
            patches.record(account, image_id, f"image-{ami.state}")
        if "creation_date" in values:
            ami.creation_date = utc(values["creation_date"])
        return {"image_id": image_id, "region": region, "state": ami.state}
    raise KeyError(image_id)


def seed_images(account: str, region: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Creates many images at once, in-process (benchmarks): each as CreateImage
    would, then aged and set to the given state."""
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[account][region]
    created = []
    for spec in payload["images"]:
        tags = [{"Key": k, "Value": v} for k, v in spec.get("tags", {}).items()]
        specs = [{"ResourceType": r, "Tags": tags} for r in ("image", "snapshot")] if tags else []
        ami = backend.create_image(payload["instance_id"], spec["name"], "", tag_specifications=specs)
        ami.state = spec.get("state", "available")
        ami.creation_date = utc(spec["creation_date"])
        ami.ebs_snapshot.start_time = ami.creation_date
        created.append(ami.id)
    return {"created": len(created)}


def set_snapshot(account: str, snapshot_id: str, values: dict[str, Any]) -> dict[str, Any]:
    from moto.ec2.models import ec2_backends

    for region, backend in ec2_backends[account].items():
        snapshot = backend.snapshots.get(snapshot_id)
        if snapshot is None:
            continue
        if "state" in values:
            snapshot.status = values["state"]
        if "start_time" in values:
            snapshot.start_time = utc(values["start_time"])
        return {"snapshot_id": snapshot_id, "region": region, "state": snapshot.status}
    raise KeyError(snapshot_id)


class Emulator:
    """WSGI middleware: the control API, account selection, fault injection
    and the model's validation (strict.py) in front of moto's own application."""

    def __init__(self, moto_app: Any) -> None:
        self.moto_app = moto_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        account = query.get("account", [DEFAULT_ACCOUNT])[0]
        if path.startswith("/lifeboat/"):
            try:
                return self.control(method, path, account, environ, start_response)
            except (ValueError, KeyError, TypeError) as e:
                return json_response(start_response, {"error": f"{type(e).__name__}: {e}"}, "400 Bad Request")
        if path == "/moto-api/reset" and method == "POST":
            FAULTS.reset()
            patches.reset()
            services.reset()
            iam.reset()
            return self.moto_app(environ, start_response)

        match = ACCOUNT_KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
        if match:
            account = match.group(1)
            environ["HTTP_X_MOTO_ACCOUNT_ID"] = account
        patches.tick(account)
        body = self.read_body(environ)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        text = body.decode("utf-8", "replace")
        if target:
            operation = target.rsplit(".", 1)[-1]
        else:
            operation = parse_qs(text).get("Action", query.get("Action", [""]))[0]
        if operation:
            fault = FAULTS.hit(account, operation, unquote_plus(text))
            if fault is not None:
                return error_response(bool(target), fault["code"], int(fault["status"]), start_response)
        refusal = strict.judge(environ, body)
        if refusal is not None:
            headers = [*refusal.headers, ("Content-Length", str(len(refusal.body)))]
            start_response(f"{refusal.status} Bad Request", headers)
            return [refusal.body]
        denied = iam.authorize(environ, body)
        if denied is not None:
            headers = [*denied.headers, ("Content-Length", str(len(denied.body)))]
            start_response(f"{denied.status} Forbidden", headers)
            return [denied.body]
        return self.moto_app(environ, start_response)

    @staticmethod
    def read_body(environ: dict[str, Any]) -> bytes:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        return body

    def control(self, method: str, path: str, account: str, environ: dict[str, Any], start_response: Any) -> Any:
        patches.tick(account)
        query = parse_qs(environ.get("QUERY_STRING", ""))
        body = self.read_body(environ)
        payload = json.loads(body) if body else {}
        if path == "/lifeboat/faults" and method == "POST":
            FAULTS.add(account, payload)
            return json_response(start_response, {"ok": True})
        if path == "/lifeboat/faults" and method == "DELETE":
            FAULTS.clear(account)
            return json_response(start_response, {"ok": True})
        if path == "/lifeboat/calls" and method == "GET":
            with FAULTS.lock:
                calls = dict(FAULTS.calls.get(account, {}))
            return json_response(start_response, calls)
        if path == "/lifeboat/notifications" and method == "GET":
            from moto.sns.models import sns_backends

            sent = [
                {"topic_arn": arn, "subject": subject, "message": message}
                for backend in sns_backends[account].values()
                for arn, topic in backend.topics.items()
                for (_, message, subject, _, _) in topic.sent_notifications
            ]
            return json_response(start_response, sent)
        if path == "/lifeboat/events" and method == "GET":
            return json_response(start_response, patches.events(account))
        if path == "/lifeboat/config" and method == "POST":
            patches.configure(account, payload)
            return json_response(start_response, {"ok": True})
        if path.startswith("/lifeboat/images/") and method == "POST":
            return json_response(start_response, set_image(account, path.rsplit("/", 1)[-1], payload))
        if path == "/lifeboat/seed-images" and method == "POST":
            region = query.get("region", ["eu-west-1"])[0]
            return json_response(start_response, seed_images(account, region, payload))
        if path.startswith("/lifeboat/instances/") and method == "POST":
            aged = patches.age_termination(account, path.rsplit("/", 1)[-1], payload["terminated_seconds_ago"])
            return json_response(start_response, aged)
        if path.startswith("/lifeboat/console/") and method == "POST":
            console = patches.set_console(account, path.rsplit("/", 1)[-1], payload["output"])
            return json_response(start_response, console)
        if path.startswith("/lifeboat/interrupt/") and method == "POST":
            action, after = payload.get("action", "terminate"), payload.get("after_seconds", 0)
            return json_response(start_response, patches.interrupt(account, path.rsplit("/", 1)[-1], action, after))
        if path.startswith("/lifeboat/snapshots/") and method == "POST":
            return json_response(start_response, set_snapshot(account, path.rsplit("/", 1)[-1], payload))
        answer = services.control(method, path, account, payload)
        if answer is None:
            answer = iam.control(method, path, account, payload, query.get("region", ["eu-west-1"])[0])
        if answer is not None:
            return json_response(start_response, answer)
        return json_response(start_response, {"error": f"no control endpoint {method} {path}"}, "404 Not Found")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--exit-with-parent", action="store_true", help="stop when the process that started it ends")
    args = parser.parse_args()
    if args.exit_with_parent:
        parent = os.getppid()

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(0)

        threading.Thread(target=watch, daemon=True).start()

    patches.apply()
    services.apply()
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = Emulator(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
