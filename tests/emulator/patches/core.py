"""What the patches share: per-account settings (set through the control
API), the clock, and hooks for settings and resets owned by one area."""

from __future__ import annotations

import threading
import time
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
}
lock = threading.RLock()
_settings: dict[str, dict[str, float]] = {}
# configure keys that are not numbers, each owned by one area
_handlers: dict[str, Callable[[str, Any], None]] = {}
_resets: list[Callable[[], None]] = []


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
        for handler in _resets:
            handler()
