"""The serving cache: a pickle of a loaded model, unpickled only when its hash matches the
one recorded in the metadata database (issue 12, item 2)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from conveyor.config import Settings
from conveyor.registry import Registry
from conveyor.serving import modelcache
from conveyor.serving.servable import RegistrySource
from conveyor.stores.metadata import tables_registry as r
from conveyor.training.model import Model


class _Exploit:
    """Unpickling this runs `touch <path>`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


def _row(registry: Registry, content_hash: str) -> Any:
    with registry.engine.connect() as c:
        return c.execute(
            sa.select(r.serving_caches).where(r.serving_caches.c.model_hash == content_hash)
        ).first()


def test_the_first_load_records_the_cache_in_the_database_and_later_loads_use_it(
    registry: Registry, lr_model: Model, cancer: Any
) -> None:
    X, _ = cancer
    version = registry.register(lr_model, "cancer")
    store, db = registry.artifact_store, registry.metadata_store
    with registry.engine.begin() as c:  # as for a version registered by an older release
        c.execute(r.serving_caches.delete())
    first = modelcache.load_model(store, version.content_hash, metadata=db)
    row = _row(registry, version.content_hash)
    assert row is not None and row.runtime == modelcache.runtime_key()
    assert store.exists(row.blob_hash)
    again = modelcache.load_model(store, version.content_hash, metadata=db)
    assert again is not first and again.profile is None  # the lean copy
    assert _row(registry, version.content_hash) == row
    assert np.allclose(again.predict_proba(X), lr_model.predict_proba(X))
    assert again.signature == lr_model.signature


def test_files_under_the_artifact_folder_alone_never_choose_what_is_unpickled(
    registry: Registry, lr_model: Model, cancer: Any, tmp_path: Path
) -> None:
    """The attack of the issue: a pointer file naming a malicious blob, written by someone
    who can write the artifact folder but not the database."""
    X, _ = cancer
    marker = tmp_path / "pwned"
    version = registry.register(lr_model, "cancer")
    store, db = registry.artifact_store, registry.metadata_store
    evil, _ = store.put(pickle.dumps(_Exploit(marker)))
    pointer = {"blob": evil, "model": version.content_hash, "format": 1}
    for runtime in (modelcache.runtime_key(), "0" * 16):
        store.write_file(
            f"serving-cache/{version.content_hash}/{runtime}.json", json.dumps(pointer).encode()
        )
    model = modelcache.load_model(store, version.content_hash, metadata=db)
    assert np.allclose(model.predict_proba(X), lr_model.predict_proba(X))
    assert not marker.exists()


def test_a_tampered_cache_blob_is_refused_before_unpickling(
    registry: Registry, lr_model: Model, cancer: Any, tmp_path: Path
) -> None:
    X, _ = cancer
    marker = tmp_path / "pwned"
    version = registry.register(lr_model, "cancer")
    store, db = registry.artifact_store, registry.metadata_store
    modelcache.load_model(store, version.content_hash, metadata=db)
    blob = _row(registry, version.content_hash).blob_hash
    with open(store.uri(blob), "wb") as handle:  # the recorded hash no longer matches
        handle.write(pickle.dumps(_Exploit(marker)))
    model = modelcache.load_model(store, version.content_hash, metadata=db)
    assert np.allclose(model.predict_proba(X), lr_model.predict_proba(X))
    assert not marker.exists()


def test_without_a_metadata_store_there_is_no_cache(
    registry: Registry, lr_model: Model, cancer: Any
) -> None:
    X, _ = cancer
    content_hash, _ = registry.artifact_store.put(lr_model.to_bytes())
    model = modelcache.load_model(registry.artifact_store, content_hash)
    assert np.allclose(model.predict_proba(X), lr_model.predict_proba(X))
    assert _row(registry, content_hash) is None


def test_the_cache_holds_only_models_that_passed_the_trust_check(
    registry: Registry, cancer: Any
) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.tree import DecisionTreeClassifier

    from conveyor.exceptions import ModelError
    from tests.unit.training.safe_loading_helpers import double

    X, y = cancer
    pipe = make_pipeline(FunctionTransformer(double), DecisionTreeClassifier(max_depth=2))
    model = Model.from_fitted(pipe.fit(X, y), X, profile=False)
    data = model.to_bytes()
    content_hash, _ = registry.artifact_store.put(data)
    with pytest.raises(ModelError, match="double"):
        modelcache.load_model(
            registry.artifact_store, content_hash, metadata=registry.metadata_store
        )
    assert _row(registry, content_hash) is None
    # Registered, the row vouches for the function, and the server (and stream scorer)
    # source loads it.
    registry.register(model, "doubled")
    servable = RegistrySource("doubled/1", registry).load("1")
    assert np.array_equal(servable.predict_frame(X)[0], pipe.predict(X))


def test_a_cached_load_does_not_import_skops(
    settings: Settings, registry: Registry, lr_model: Model
) -> None:
    version = registry.register(lr_model, "cancer")
    modelcache.load_model(
        registry.artifact_store, version.content_hash, metadata=registry.metadata_store
    )
    code = (
        "import sys\n"
        "from conveyor.serving import modelcache\n"
        "from conveyor.stores.artifacts import open_artifact_store\n"
        "from conveyor.stores.metadata import open_metadata_store\n"
        f"model = modelcache.load_model(open_artifact_store({settings.artifact_url!r}), "
        f"{version.content_hash!r}, metadata=open_metadata_store({settings.db_url!r}))\n"
        "print(type(model.obj).__name__, 'skops.io' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert out.stdout.split() == ["Pipeline", "False"]


def test_the_cache_binding_works_on_every_metadata_backend(
    db_url: str, tmp_path: Path, lr_model: Model, cancer: Any
) -> None:
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.metadata import open_metadata_store

    X, _ = cancer
    registry = Registry(open_metadata_store(db_url), open_artifact_store(str(tmp_path / "a")))
    version = registry.register(lr_model, "cancer")
    for _ in range(2):  # records the row, then reads it
        model = modelcache.load_model(
            registry.artifact_store, version.content_hash, metadata=registry.metadata_store
        )
        assert np.allclose(model.predict_proba(X), lr_model.predict_proba(X))
    assert _row(registry, version.content_hash) is not None
