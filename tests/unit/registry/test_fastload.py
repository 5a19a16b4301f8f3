"""The registry's fast-load copy: a pickle of the registered Model whose sha256 the
database records at registration, read instead of skops when its bytes match (issue 17)."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.config import Settings
from conveyor.registry import Registry, fastload
from conveyor.registry.registry import _CACHE
from conveyor.stores.metadata import tables_registry as r
from conveyor.training.model import Model


class _Exploit:
    """Unpickling this runs `touch <path>`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


@pytest.fixture
def profiled(cancer: tuple[pd.DataFrame, pd.Series]) -> Model:
    X, y = cancer
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    return Model.from_fitted(pipe, X.assign(label=y), target="label")


def _row(registry: Registry, content_hash: str) -> Any:
    with registry.engine.connect() as c:
        return c.execute(
            sa.select(r.serving_caches).where(r.serving_caches.c.model_hash == content_hash)
        ).first()


def _fresh_load(settings: Settings, ref: str) -> list[str]:
    """Load `ref` in a new process; what it printed (one word per fact)."""
    code = (
        "import sys\n"
        "from conveyor.registry import load_model\n"
        "from conveyor.stores.artifacts import open_artifact_store\n"
        "from conveyor.stores.metadata import open_metadata_store\n"
        f"model = load_model({ref!r}, metadata_store=open_metadata_store({settings.db_url!r}),"
        f" artifact_store=open_artifact_store({settings.artifact_url!r}))\n"
        "print(type(model.obj).__name__, 'skops.io' in sys.modules,"
        " 'sklearn.ensemble' in sys.modules, model.profile is not None)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
        timeout=300,
    )
    return out.stdout.split()


def test_registration_records_a_copy_whose_hash_the_database_holds(
    registry: Registry, profiled: Model, cancer: Any
) -> None:
    X, _ = cancer
    version = registry.register(profiled, "cancer", promote_to="production")
    row = _row(registry, version.content_hash)
    assert row is not None and row.runtime == fastload.runtime_key()
    blob = registry.artifact_store.get(row.blob_hash)
    assert hashlib.sha256(blob).hexdigest() == row.blob_hash
    _CACHE.clear()
    loaded = registry.load("cancer@production")
    assert loaded is not profiled
    # The whole model comes back: predictions, signature, Profile, the same bytes.
    assert np.allclose(loaded.predict_proba(X), profiled.predict_proba(X))
    assert loaded.signature == profiled.signature and loaded.target == "label"
    assert loaded.profile is not None and loaded.profile.row_count == len(X)
    assert loaded.to_bytes() == registry.artifact_store.get(version.content_hash)
    assert loaded.trusted_types() == list(version.trusted_types) == []


def test_a_fresh_process_loads_from_the_copy_without_skops_or_all_of_sklearn(
    settings: Settings, registry: Registry, profiled: Model
) -> None:
    registry.register(profiled, "cancer", promote_to="production")
    assert _fresh_load(settings, "cancer@production") == ["Pipeline", "False", "False", "True"]


def test_a_tampered_copy_is_refused_before_unpickling_and_the_load_falls_back(
    registry: Registry,
    profiled: Model,
    cancer: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    X, _ = cancer
    marker = tmp_path / "pwned"
    version = registry.register(profiled, "cancer")
    blob = _row(registry, version.content_hash).blob_hash
    with open(registry.artifact_store.uri(blob), "wb") as handle:  # the hash no longer matches
        handle.write(pickle.dumps(_Exploit(marker)))
    _CACHE.clear()
    with caplog.at_level(logging.WARNING, logger="conveyor.registry"):
        model = registry.load("cancer/1")
    assert not marker.exists()
    assert np.allclose(model.predict_proba(X), profiled.predict_proba(X))
    (message,) = [rec.getMessage() for rec in caplog.records]
    assert f"ignoring the fast-load copy {blob} of model blob {version.content_hash}" in message
    assert "loading through skops" in message and "no longer match their hash" in message
    # The skops load recorded a sound copy again: the next load uses it, silently.
    row = _row(registry, version.content_hash)
    data = registry.artifact_store.get(row.blob_hash)
    assert hashlib.sha256(data).hexdigest() == row.blob_hash
    caplog.clear()
    _CACHE.clear()
    with caplog.at_level(logging.WARNING, logger="conveyor.registry"):
        again = registry.load("cancer/1")
    assert caplog.records == [] and again.profile is not None


def test_a_copy_named_only_by_files_or_by_another_runtime_is_never_read(
    registry: Registry, profiled: Model, cancer: Any, tmp_path: Path
) -> None:
    X, _ = cancer
    marker = tmp_path / "pwned"
    version = registry.register(profiled, "cancer")
    evil, _ = registry.artifact_store.put(pickle.dumps(_Exploit(marker)))
    with registry.engine.begin() as c:  # a row of another runtime (other library versions)
        c.execute(
            r.serving_caches.insert(),
            [
                {
                    "model_hash": version.content_hash,
                    "runtime": "0" * 16,
                    "blob_hash": evil,
                    "created_at": 0.0,
                }
            ],
        )
    _CACHE.clear()
    model = registry.load("cancer/1")
    assert np.allclose(model.predict_proba(X), profiled.predict_proba(X))
    assert not marker.exists()


def test_a_version_without_a_copy_loads_through_skops_and_then_has_one(
    settings: Settings, registry: Registry, profiled: Model
) -> None:
    version = registry.register(profiled, "cancer", promote_to="production")
    with registry.engine.begin() as c:  # as registered by a release without copies
        c.execute(r.serving_caches.delete())
    first = _fresh_load(settings, "cancer@production")
    assert first == ["Pipeline", "True", first[2], "True"]  # through skops
    assert _row(registry, version.content_hash) is not None
    assert _fresh_load(settings, "cancer@production") == ["Pipeline", "False", "False", "True"]


def test_the_copy_keeps_the_names_the_registered_version_trusts(
    registry: Registry, cancer: Any
) -> None:
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.tree import DecisionTreeClassifier

    from tests.unit.training.safe_loading_helpers import double

    X, y = cancer
    pipe = make_pipeline(FunctionTransformer(double), DecisionTreeClassifier(max_depth=2))
    model = Model.from_fitted(pipe.fit(X, y), X, profile=False)
    version = registry.register(model, "doubled")
    assert version.trusted_types and _row(registry, version.content_hash) is not None
    _CACHE.clear()
    loaded = registry.load("doubled/1")
    assert np.array_equal(loaded.predict(X), pipe.predict(X))
    assert loaded.trusted_types() == list(version.trusted_types)


def test_copies_bind_on_every_metadata_backend(
    db_url: str, tmp_path: Path, profiled: Model, cancer: Any
) -> None:
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.metadata import open_metadata_store

    X, _ = cancer
    registry = Registry(open_metadata_store(db_url), open_artifact_store(str(tmp_path / "a")))
    first = registry.register(profiled, "cancer")
    again = registry.register(profiled, "cancer")  # the same bytes: one copy, replaced
    assert first.content_hash == again.content_hash
    with registry.engine.connect() as c:
        rows = c.execute(sa.select(r.serving_caches)).all()
    assert len(rows) == 1
    _CACHE.clear()
    model = registry.load("cancer/2")
    assert np.allclose(model.predict_proba(X), profiled.predict_proba(X))
