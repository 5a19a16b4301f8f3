from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from conveyor.config import Settings
from conveyor.registry import Registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.training.model import Model


@pytest.fixture(scope="session")
def two_models() -> list[Model]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :4]
    return [
        Model.from_fitted(LogisticRegression(C=c, max_iter=500).fit(X, y), X, profile=False)
        for c in (0.1, 1.0)
    ]


@pytest.fixture
def registered(settings: Settings, two_models: list[Model]) -> Settings:
    """Settings whose registry holds churn versions 1 and 2, production -> 1."""
    registry = Registry(
        open_metadata_store(settings.db_url), open_artifact_store(settings.artifact_url)
    )
    registry.register(two_models[0], "churn", promote_to="production")
    registry.register(two_models[1], "churn")
    return settings


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request to an ASGI app through httpx.ASGITransport."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await c.request(method, path, **kwargs)

    return asyncio.run(go())
