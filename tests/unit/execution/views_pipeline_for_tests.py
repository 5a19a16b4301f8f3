"""A pipeline whose steps log params and metrics (for the read-side views)."""

from __future__ import annotations

import conveyor
from conveyor import pipeline, step


@step
def fit(c: float) -> float:
    conveyor.log_params(penalty="l2")
    conveyor.log_metrics(auc=0.5 + c / 10)
    return c


@step
def report(x: float, shift: float = 0.0) -> float:
    conveyor.log_metrics(final=x + shift)
    return x + shift


@pipeline
def fitting(c: float = 1.0, shift: float = 0.0) -> float:
    return report(fit(c), shift=shift)
