"""A pipeline that reads a dataset, trains, evaluates with slices, gates and registers."""

from __future__ import annotations

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor import pipeline, step
from conveyor.data.datasets import dataset
from conveyor.evaluation.gate import Gate
from conveyor.evaluation.metrics import evaluate
from conveyor.registry import register_model
from conveyor.training.model import Model

FEATURES = ["mean radius", "mean texture", "mean perimeter"]


@step
def train_and_register(frame: pd.DataFrame, c: float) -> int:
    train, test = frame.iloc[::2], frame.iloc[1::2]
    fitted = make_pipeline(StandardScaler(), LogisticRegression(C=c)).fit(
        train[FEATURES], train["label"]
    )
    model = Model.from_fitted(fitted, train[[*FEATURES, "label"]], target="label", profile=False)
    report = evaluate(model, test, metrics=["roc_auc", "accuracy"], slices=["size"], bootstrap=50)
    decision = Gate(primary="roc_auc", max_regression=0.0).check(report, "cancer@production")
    version = register_model(
        model,
        "cancer",
        report=report,
        decision=decision,
        promote_to="production",
        description="Flags biopsies for a second reading; not a diagnosis.",
    )
    return version.version


@pipeline
def card_training(c: float = 1.0) -> int:
    return train_and_register(dataset("biopsies", version=1), c)
