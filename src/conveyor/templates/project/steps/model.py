"""Model steps: scale features, train a classifier, evaluate it."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

import conveyor
from conveyor import step

from steps.data import TARGET


def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[TARGET])


@step
def scale(
    train: pd.DataFrame, test: pd.DataFrame
) -> tuple[
    Annotated[pd.DataFrame, "train_scaled"],
    Annotated[pd.DataFrame, "test_scaled"],
    Annotated[StandardScaler, "scaler"],
]:
    """Fit a scaler on the training rows only and apply it to both sets."""
    scaler = StandardScaler().fit(features(train))
    out = []
    for frame in (train, test):
        scaled = pd.DataFrame(scaler.transform(features(frame)), columns=features(frame).columns)
        scaled[TARGET] = frame[TARGET].to_numpy()
        out.append(scaled)
    return out[0], out[1], scaler


@step
def train_model(train: pd.DataFrame, c: float = 1.0) -> LogisticRegression:
    """Logistic regression with inverse regularisation strength `c`."""
    conveyor.log_params(model="LogisticRegression", C=c)
    model = LogisticRegression(C=c, max_iter=1000)
    return model.fit(features(train), train[TARGET])


@step
def evaluate(model: LogisticRegression, test: pd.DataFrame) -> dict[str, float]:
    """Accuracy, F1 and ROC AUC on the held-out rows, logged as run metrics."""
    x, y = features(test), test[TARGET]
    scores = {
        "accuracy": float(accuracy_score(y, model.predict(x))),
        "f1": float(f1_score(y, model.predict(x))),
        "roc_auc": float(roc_auc_score(y, model.predict_proba(x)[:, 1])),
    }
    conveyor.log_metrics(scores)
    print("evaluation:", scores)
    return scores
