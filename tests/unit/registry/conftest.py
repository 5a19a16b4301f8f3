from __future__ import annotations

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.config import Settings
from conveyor.registry import Registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.training.model import Model


@pytest.fixture(scope="session")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X.iloc[:, :5], y


@pytest.fixture(scope="session")
def models(cancer: tuple[pd.DataFrame, pd.Series]) -> list[Model]:
    """Three different fitted models (different regularization)."""
    X, y = cancer
    out = []
    for c in (0.01, 0.1, 1.0):
        pipe = make_pipeline(StandardScaler(), LogisticRegression(C=c)).fit(X, y)
        out.append(Model.from_fitted(pipe, X, metrics={"C": c}, profile=False))
    return out


@pytest.fixture
def registry(settings: Settings) -> Registry:
    return Registry(
        open_metadata_store(settings.db_url), open_artifact_store(settings.artifact_url)
    )
