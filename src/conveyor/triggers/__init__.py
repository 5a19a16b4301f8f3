"""Triggers and the scheduler: cron schedules, new data, drift and decay start runs.

Heavy modules load on first use of a name below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._internal.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "on_schedule": "conveyor.triggers.specs",
    "on_new_data": "conveyor.triggers.specs",
    "on_drift": "conveyor.triggers.specs",
    "on_decay": "conveyor.triggers.specs",
    "on_challenger_better": "conveyor.triggers.release",
    "OnChallengerBetter": "conveyor.triggers.release",
    "Trigger": "conveyor.triggers.specs",
    "Schedule": "conveyor.triggers.specs",
    "OnNewData": "conveyor.triggers.specs",
    "OnDrift": "conveyor.triggers.specs",
    "OnDecay": "conveyor.triggers.specs",
    "Scheduler": "conveyor.triggers.scheduler",
    "list_events": "conveyor.triggers.state",
}

__all__ = [
    "OnChallengerBetter",
    "OnDecay",
    "OnDrift",
    "OnNewData",
    "Schedule",
    "Scheduler",
    "Trigger",
    "list_events",
    "on_challenger_better",
    "on_decay",
    "on_drift",
    "on_new_data",
    "on_schedule",
]

if TYPE_CHECKING:
    from conveyor.triggers.release import OnChallengerBetter, on_challenger_better
    from conveyor.triggers.scheduler import Scheduler
    from conveyor.triggers.specs import (
        OnDecay,
        OnDrift,
        OnNewData,
        Schedule,
        Trigger,
        on_decay,
        on_drift,
        on_new_data,
        on_schedule,
    )
    from conveyor.triggers.state import list_events


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
