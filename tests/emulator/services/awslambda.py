"""Lambda: Invoke runs a registered lifeboat binary through a Lambda Runtime
API, GetAccountSettings, and the control endpoints that register them."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from .headers import account as _account

_lock = threading.Lock()
# account -> function name -> {"binary", "env", "timeout_seconds"}
_functions: dict[str, dict[str, dict[str, Any]]] = {}
# account -> {"concurrency_limit", "unreserved_concurrency"}
_lambda_settings: dict[str, dict[str, int]] = {}
DEFAULT_CONCURRENCY = 1000


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


def apply() -> None:
    import moto.awslambda.urls as lambda_urls
    from moto.awslambda.responses import LambdaResponse

    LambdaResponse.invoke = _lambda_invoke(LambdaResponse.invoke)
    lambda_urls.url_paths[r"{0}/2016-08-19/account-settings/?$"] = _account_settings
