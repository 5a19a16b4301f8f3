"""Monitoring: drift, data quality and performance of served models, window by window.

Heavy modules load on first use of a name below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._internal.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "DriftOptions": "conveyor.monitoring.drift",
    "DriftResult": "conveyor.monitoring.drift",
    "FeatureDrift": "conveyor.monitoring.drift",
    "compare_profiles": "conveyor.monitoring.drift",
    "Monitor": "conveyor.monitoring.monitor",
    "MonitorReport": "conveyor.monitoring.report",
    "ChurnGenerator": "conveyor.monitoring.generator",
    "dataset_from_predictions": "conveyor.monitoring.fresh",
}

__all__ = [
    "ChurnGenerator",
    "DriftOptions",
    "DriftResult",
    "FeatureDrift",
    "Monitor",
    "MonitorReport",
    "compare_profiles",
    "dataset_from_predictions",
]

if TYPE_CHECKING:
    from conveyor.monitoring.drift import DriftOptions, DriftResult, FeatureDrift, compare_profiles
    from conveyor.monitoring.fresh import dataset_from_predictions
    from conveyor.monitoring.generator import ChurnGenerator
    from conveyor.monitoring.monitor import Monitor
    from conveyor.monitoring.report import MonitorReport


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
