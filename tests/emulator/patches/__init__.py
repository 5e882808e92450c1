"""Patches that make moto behave as AWS does where lifeboat depends on it.

One module per AWS area; each patch names the AWS behaviour it restores and
the documentation it follows. They are applied in-process before the server
starts (see emulator.py); nothing here changes what lifeboat does, only how
faithfully the emulator answers.
"""

from __future__ import annotations

from . import images, instances, network, placement, root_volume, sns, speed, spot, ssm, volumes
from .core import configure, events, record, reset, tick
from .instances import age_termination, set_console
from .spot import interrupt

__all__ = ["age_termination", "apply", "configure", "events", "interrupt", "record", "reset", "set_console", "tick"]


def apply() -> None:
    for area in (speed, images, instances, spot, placement, network, volumes, root_volume, ssm, sns):
        area.apply()
    spot.apply_requests()
