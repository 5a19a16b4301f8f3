"""Fixtures of the end-to-end serving tests: a registry project with a served model."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.registry import Registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.training.model import Model


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.copy()
    X["target"] = y
    return X


@pytest.fixture
def project(tmp_path: Path, cancer: pd.DataFrame) -> tuple[Path, dict[str, str], Registry]:
    """A project folder whose registry holds cancer v1 (production) and v2."""
    env = dict(os.environ)
    env["CONVEYOR_DB_URL"] = f"sqlite:///{tmp_path / 'conveyor.db'}"
    env["CONVEYOR_ARTIFACT_URL"] = str(tmp_path / "artifacts")
    registry = Registry(
        open_metadata_store(env["CONVEYOR_DB_URL"]),
        open_artifact_store(env["CONVEYOR_ARTIFACT_URL"]),
    )
    X, y = cancer.drop(columns="target"), cancer["target"]
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    rf = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    registry.register(Model.from_fitted(lr, X, profile=False), "cancer", promote_to="production")
    registry.register(Model.from_fitted(rf, X, profile=False), "cancer")
    return tmp_path, env, registry
