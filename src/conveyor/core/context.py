"""The context a step body runs in: tracking calls land here, not in a global."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.exceptions import ConveyorError


@dataclass
class MetricPoint:
    key: str
    value: float
    step: int | None
    timestamp: float


@dataclass
class StepContext:
    """What the running step may read and what it has logged so far.

    Attributes:
        run_id: The run this step execution belongs to.
        step_run_id: The id of this step execution.
        step_name: The invocation name of the step in the pipeline.
        attempt: 1 for the first try, 2 for the first retry, and so on.
        save_artifact: Callback the executor supplies to store a logged artifact; returns
            a description of the stored artifact.
        db_url: Metadata store of the run, for components a step calls (registry, tuning).
        artifact_url: Artifact store of the run.
        resources: The step's requested resources (``workers``, ``gpus``, ...), which
            distributed training reads to size its job.
        cache_key: The cache key of this step execution (code, parameters, inputs), for
            components whose stored state belongs to it (tuning studies); None outside
            an orchestrated run.
    """

    run_id: str
    step_run_id: str
    step_name: str
    attempt: int = 1
    save_artifact: Callable[[str, Any], dict[str, Any]] | None = None
    db_url: str | None = None
    artifact_url: str | None = None
    resources: dict[str, Any] = field(default_factory=dict)
    cache_key: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: list[MetricPoint] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


_CURRENT: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "conveyor_step_context", default=None
)


def current_context() -> StepContext | None:
    """The context of the step running in this thread or task, if any."""
    return _CURRENT.get()


def enter_context(context: StepContext) -> contextvars.Token[StepContext | None]:
    return _CURRENT.set(context)


def exit_context(token: contextvars.Token[StepContext | None]) -> None:
    _CURRENT.reset(token)


def _require_context(what: str) -> StepContext:
    context = _CURRENT.get()
    if context is None:
        raise ConveyorError(
            f"conveyor.{what} was called outside a running step. Call it inside a @step "
            "function that runs as part of a pipeline run."
        )
    return context


def log_params(params: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
    """Record parameters of the running step (merged into the step run's params)."""
    context = _require_context("log_params")
    context.params.update(dict(params or {}, **kwargs))


def log_metrics(
    metrics: Mapping[str, float] | None = None, *, step: int | None = None, **kwargs: float
) -> None:
    """Record metric values of the running step; `step` indexes points of a curve."""
    context = _require_context("log_metrics")
    now = time.time()
    for key, value in dict(metrics or {}, **kwargs).items():
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise ConveyorError(
                f"Metric {key!r} must be a number. Got {value!r} of type "
                f"{type(value).__name__} instead."
            ) from exc
        context.metrics.append(MetricPoint(key, number, step, now))


def log_artifact(name: str, value: Any) -> dict[str, Any]:
    """Store `value` as an extra artifact of the running step, linked in its lineage."""
    context = _require_context("log_artifact")
    if context.save_artifact is None:
        raise ConveyorError("This executor does not support log_artifact.")
    record = context.save_artifact(name, value)
    context.artifacts.append(record)
    return record


def set_tags(**tags: str) -> None:
    """Attach string tags to the running step's run."""
    context = _require_context("set_tags")
    context.tags.update({k: str(v) for k, v in tags.items()})
