from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from conveyor.config import Settings
from conveyor.registry import Registry
from conveyor.serving.app import ServingApp
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.training.model import Model

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@contextlib.asynccontextmanager
async def client_for(app: ServingApp, *, ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """A started app and an in-process HTTP client on it."""
    async with app.running():
        if ready:
            await app.wait_ready(10)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serving") as client:
            yield client


@pytest.fixture(scope="session")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="session")
def lr_model(cancer: tuple[pd.DataFrame, pd.Series]) -> Model:
    X, y = cancer
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)
    return Model.from_fitted(pipe, X, profile=False)


@pytest.fixture(scope="session")
def lr_model_v2(cancer: tuple[pd.DataFrame, pd.Series]) -> Model:
    X, y = cancer
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000)).fit(X, y)
    return Model.from_fitted(pipe, X, profile=False)


@pytest.fixture(scope="session")
def mixed_frame(cancer: tuple[pd.DataFrame, pd.Series]) -> tuple[pd.DataFrame, pd.Series]:
    """Breast-cancer features recast as every signature dtype but datetime."""
    X, y = cancer
    band = pd.qcut(X["mean texture"], 3, labels=["low", "mid", "high"]).astype(str)
    smooth = X["mean smoothness"].copy()
    smooth.iloc[::7] = np.nan
    frame = pd.DataFrame(
        {
            "radius": X["mean radius"].astype(float),
            "band": pd.Categorical(band, categories=["low", "mid", "high"]),
            "concave": (X["mean concave points"] * 100).round().astype("int64"),
            "large": X["mean area"] > 700,
            "smoothness": smooth,
        }
    )
    return frame, y


@pytest.fixture(scope="session")
def mixed_model(mixed_frame: tuple[pd.DataFrame, pd.Series]) -> Model:
    frame, y = mixed_frame
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["band"]),
            ("num", SimpleImputer(), ["radius", "concave", "smoothness"]),
            ("flag", "passthrough", ["large"]),
        ]
    )
    pipe = make_pipeline(pre, LogisticRegression(max_iter=2000)).fit(frame, y)
    return Model.from_fitted(pipe, frame, profile=False)


def records(frame: pd.DataFrame, n: int, start: int = 0) -> list[dict[str, Any]]:
    """JSON-ready rows (NaN as null) of a frame."""
    part = frame.iloc[start : start + n].astype(object)
    part = part.where(part.notna(), None)
    return [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for row in part.to_dict(orient="records")
    ]


@pytest.fixture
def registry(settings: Settings) -> Registry:
    return Registry(
        open_metadata_store(settings.db_url), open_artifact_store(settings.artifact_url)
    )
