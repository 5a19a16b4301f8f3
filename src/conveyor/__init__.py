"""conveyor: typed Python functions to versioned, cached, validated, monitored ML pipelines.

The public API is re-exported here and loaded lazily, so ``import conveyor`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._internal.lazy import lazy_exports
from conveyor._version import __version__

_EXPORTS: dict[str, str] = {
    "step": "conveyor.core.step",
    "Step": "conveyor.core.step",
    "pipeline": "conveyor.core.pipeline",
    "Pipeline": "conveyor.core.pipeline",
    "log_params": "conveyor.core.context",
    "log_metrics": "conveyor.core.context",
    "log_artifact": "conveyor.core.context",
    "set_tags": "conveyor.core.context",
    "register_materializer": "conveyor.materializers.base",
    "Run": "conveyor.execution.run",
    "get_run": "conveyor.execution.run",
    "Settings": "conveyor.config",
    "load_settings": "conveyor.config",
    "ConveyorError": "conveyor.exceptions",
    "RunFailedError": "conveyor.exceptions",
    "StepFailedError": "conveyor.exceptions",
    "Model": "conveyor.training.model",
    "tune": "conveyor.training.tuning",
    "evaluate": "conveyor.evaluation.metrics",
    "Gate": "conveyor.evaluation.gate",
    "register_model": "conveyor.registry.registry",
    "load_model": "conveyor.registry.registry",
    "Monitor": "conveyor.monitoring.monitor",
    "on_schedule": "conveyor.triggers.specs",
    "on_new_data": "conveyor.triggers.specs",
    "on_drift": "conveyor.triggers.specs",
    "on_decay": "conveyor.triggers.specs",
    "on_challenger_better": "conveyor.triggers.release",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:
    from conveyor.config import Settings, load_settings
    from conveyor.core.context import log_artifact, log_metrics, log_params, set_tags
    from conveyor.core.pipeline import Pipeline, pipeline
    from conveyor.core.step import Step, step
    from conveyor.evaluation.gate import Gate
    from conveyor.evaluation.metrics import evaluate
    from conveyor.exceptions import ConveyorError, RunFailedError, StepFailedError
    from conveyor.execution.run import Run, get_run
    from conveyor.materializers.base import register_materializer
    from conveyor.monitoring.monitor import Monitor
    from conveyor.registry.registry import load_model, register_model
    from conveyor.training.model import Model
    from conveyor.training.tuning import tune
    from conveyor.triggers.release import on_challenger_better
    from conveyor.triggers.specs import on_decay, on_drift, on_new_data, on_schedule


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
