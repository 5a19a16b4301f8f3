"""The serving cache: a pickled copy of a loaded model, read back from the artifact store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np

from conveyor.config import Settings
from conveyor.registry import Registry
from conveyor.serving import modelcache
from conveyor.training.model import Model


def test_the_first_load_writes_the_cache_and_later_loads_read_it(
    registry: Registry, lr_model: Model, cancer: Any
) -> None:
    X, _ = cancer
    version = registry.register(lr_model, "cancer")
    store = registry.artifact_store
    first = modelcache.load_model(store, version.content_hash)
    pointer = json.loads(store.read_file(modelcache.pointer_path(version.content_hash)))
    assert store.exists(pointer["blob"]) and pointer["model"] == version.content_hash
    again = modelcache.load_model(store, version.content_hash)
    assert again is not first and again.profile is None
    assert np.allclose(again.predict_proba(X), lr_model.predict_proba(X))
    assert again.signature == lr_model.signature


def test_a_damaged_cache_falls_back_to_the_model_blob(
    registry: Registry, lr_model: Model, cancer: Any
) -> None:
    X, _ = cancer
    version = registry.register(lr_model, "cancer")
    store = registry.artifact_store
    modelcache.load_model(store, version.content_hash)
    path = modelcache.pointer_path(version.content_hash)
    blob = json.loads(store.read_file(path))["blob"]
    with open(store.uri(blob), "wb") as handle:  # the pickle's bytes no longer match its hash
        handle.write(b"not a pickle")
    model = modelcache.load_model(store, version.content_hash)
    assert np.allclose(model.predict_proba(X), lr_model.predict_proba(X))
    store.write_file(path, b"{not json")
    model = modelcache.load_model(store, version.content_hash)
    assert np.allclose(model.predict_proba(X), lr_model.predict_proba(X))


def test_a_cached_load_does_not_import_skops(
    settings: Settings, registry: Registry, lr_model: Model
) -> None:
    version = registry.register(lr_model, "cancer")
    modelcache.load_model(registry.artifact_store, version.content_hash)
    code = (
        "import sys\n"
        "from conveyor.serving import modelcache\n"
        "from conveyor.stores.artifacts import open_artifact_store\n"
        f"model = modelcache.load_model(open_artifact_store({settings.artifact_url!r}), "
        f"{version.content_hash!r})\n"
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
