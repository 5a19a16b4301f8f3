"""Monitoring: drift, data quality and performance of served models, window by window.

Heavy modules load on first use of a name below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "DriftOptions": "conveyor.monitoring.drift",
    "DriftResult": "conveyor.monitoring.drift",
    "FeatureDrift": "conveyor.monitoring.drift",
    "compare_profiles": "conveyor.monitoring.drift",
    "Monitor": "conveyor.monitoring.monitor",
    "MonitorReport": "conveyor.monitoring.report",
    "ChurnGenerator": "conveyor.monitoring.generator",
}

__all__ = [
    "ChurnGenerator",
    "DriftOptions",
    "DriftResult",
    "FeatureDrift",
    "Monitor",
    "MonitorReport",
    "compare_profiles",
]

if TYPE_CHECKING:
    from conveyor.monitoring.drift import DriftOptions, DriftResult, FeatureDrift, compare_profiles
    from conveyor.monitoring.generator import ChurnGenerator
    from conveyor.monitoring.monitor import Monitor
    from conveyor.monitoring.report import MonitorReport


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor.monitoring' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
