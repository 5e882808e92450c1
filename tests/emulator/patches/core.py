"""What the patches share: per-account settings (set through the control
API), the clock, hooks for settings and resets owned by one area, the event
log, and the actions AWS takes later (a state change after a delay), run by
`tick` before the account's next request is answered."""

from __future__ import annotations

import heapq
import itertools
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

# Per-account knobs, set through the control API (emulator.py).
DEFAULTS: dict[str, float] = {
    # A new AMI stays `pending` this long (AWS: minutes), then is `available`.
    "ami_pending_seconds": 1.0,
    # An instance's SSM agent reports Online this long after launch.
    "ssm_online_seconds": 0.0,
    # A command invocation is InProgress this long before its result.
    "ssm_command_seconds": 0.0,
    # A terminated instance is described this long, then not at all.
    "terminated_visible_seconds": 3600.0,
}
lock = threading.RLock()
_settings: dict[str, dict[str, float]] = {}
# configure keys that are not numbers, each owned by one area
_handlers: dict[str, Callable[[str, Any], None]] = {}
_resets: list[Callable[[], None]] = []
# account -> [{"at": unix seconds, "resource": id, "event": name}]
_events: dict[str, list[dict[str, Any]]] = {}
# account -> heap of (due time, order, action called with its due time)
_due: dict[str, list[tuple[float, int, Callable[[float], None]]]] = {}
_order = itertools.count()


def now() -> float:
    return time.time()


def setting(account: str, name: str) -> float:
    with lock:
        return _settings.get(account, {}).get(name, DEFAULTS[name])


def on_configure(key: str, handler: Callable[[str, Any], None]) -> None:
    _handlers[key] = handler


def on_reset(handler: Callable[[], None]) -> None:
    _resets.append(handler)


def configure(account: str, values: dict[str, Any]) -> None:
    unknown = set(values) - set(DEFAULTS) - set(_handlers)
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    with lock:
        for name in DEFAULTS:
            if name in values:
                _settings.setdefault(account, {})[name] = float(values[name])
        for key, handler in _handlers.items():
            if key in values:
                handler(account, values[key])


def reset() -> None:
    with lock:
        _settings.clear()
        _events.clear()
        _due.clear()
        for handler in _resets:
            handler()


def record(account: str, resource: str, event: str, at: float | None = None) -> None:
    """Logs the moment AWS reached a state (benchmarks compare it with the
    moment lifeboat noticed)."""
    with lock:
        entry = {"at": now() if at is None else at, "resource": resource, "event": event}
        _events.setdefault(account, []).append(entry)


def events(account: str) -> list[dict[str, Any]]:
    tick(account)
    with lock:
        return sorted(_events.get(account, []), key=lambda e: e["at"])


def later(account: str, at: float, action: Callable[[float], None]) -> None:
    """Runs `action(at)` once the clock has reached `at`, before the account's
    next request is answered: to the caller it happened at `at`."""
    with lock:
        heapq.heappush(_due.setdefault(account, []), (at, next(_order), action))


def tick(account: str) -> None:
    """Runs the account's actions that are due, in time order."""
    with lock:
        queue = _due.get(account)
        while queue and queue[0][0] <= now():
            at, _, action = heapq.heappop(queue)
            try:
                action(at)
            except Exception:  # noqa: BLE001 - one broken action must not fail the request that ran it
                traceback.print_exc(file=sys.stderr)
