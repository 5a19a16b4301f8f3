"""A small training pipeline whose train step registers its model."""

from __future__ import annotations

import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor import pipeline, step
from conveyor.registry import register_model
from conveyor.training.model import Model


@step
def load() -> pd.DataFrame:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X.iloc[:, :5].assign(label=y)


@step
def train(frame: pd.DataFrame, c: float) -> Model:
    X = frame.drop(columns="label")
    fitted = make_pipeline(StandardScaler(), LogisticRegression(C=c)).fit(X, frame["label"])
    model = Model.from_fitted(fitted, frame, target="label", profile=False)
    register_model(model, "churn", promote_to="production", reason="pipeline")
    return model


@pipeline
def train_and_register(c: float = 1.0) -> Model:
    return train(load(), c)
