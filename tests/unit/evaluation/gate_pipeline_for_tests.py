"""A gate step that declares the champion alias as a cache input."""

from __future__ import annotations

from typing import Any

import pandas as pd

from conveyor import pipeline, step
from conveyor.evaluation.gate import Gate
from conveyor.evaluation.metrics import evaluate
from conveyor.registry import get_registry


@step(models=["churn@production"])
def gate_latest(frame: pd.DataFrame) -> dict[str, Any]:
    candidate = get_registry().load("churn")
    report = evaluate(candidate, frame, metrics=["roc_auc"], bootstrap=0)
    decision = Gate(primary="roc_auc", max_regression=0.0).check(report, "churn@production")
    return {"champion_version": decision.champion_version, "passed": decision.passed}


@step
def holdout(n: int) -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X.iloc[:n, :5].assign(label=y.iloc[:n])


@pipeline
def gating(n: int = 200) -> dict[str, Any]:
    return gate_latest(holdout(n))
