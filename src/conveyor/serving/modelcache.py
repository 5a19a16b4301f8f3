"""Fast model loading for servers: a pickled copy of the loaded model, kept in the store.

Registered scikit-learn models are stored with skops, which loads without running code but
costs a server about 0.7 s of start-up and 25 MB of memory: ``skops.io`` imports a large
part of scikit-learn to build its trust list. The first time a server loads a model
version, it writes a pickle of the loaded model into the same content-addressed artifact
store and a small pointer file naming that blob; later starts read the pointer, fetch the
blob (hash-verified on read, like every blob) and unpickle it.

Why unpickling is acceptable here: the pickle bytes are only ever read from conveyor's own
artifact store, by content hash, and were written there by a server from a model that
passed the skops trust check. Whoever can write to the store can already replace the
model itself. Bytes from anywhere else never take this path.

The pointer is keyed by the model's content hash and by the versions of Python and of the
libraries the pickle depends on, so a server with other library versions reloads through
skops (and writes its own copy). Anything unexpected (no pointer, a missing or damaged
blob, an unpicklable model, a read-only store) falls back to the regular load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import platform
import warnings
from importlib import metadata
from typing import TYPE_CHECKING

from conveyor.exceptions import StoreError

if TYPE_CHECKING:
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.training.model import Model

logger = logging.getLogger("conveyor.serving")

CACHE_FORMAT = 1
CACHE_DIR = "serving-cache"
# Flavors whose loaded objects pickle faithfully and whose regular load is slow.
FLAVORS = frozenset({"sklearn"})
# Distributions whose classes end up inside a pickled scikit-learn model.
_DISTRIBUTIONS = ("numpy", "scipy", "pandas", "scikit-learn", "conveyor")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def runtime_key() -> str:
    """A short key naming this interpreter and the versions a pickle depends on."""
    parts = {
        "format": CACHE_FORMAT,
        "python": platform.python_version(),
        "pickle": pickle.HIGHEST_PROTOCOL,
        **{dist: _version(dist) for dist in _DISTRIBUTIONS},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def pointer_path(content_hash: str) -> str:
    """Where the pointer for a model blob and this runtime lives (under the store's files/)."""
    return f"{CACHE_DIR}/{content_hash}/{runtime_key()}.json"


def _cached(store: ArtifactStore, content_hash: str) -> Model | None:
    from conveyor.training.model import Model

    try:
        pointer = json.loads(store.read_file(pointer_path(content_hash)))
    except StoreError:
        return None
    except ValueError as exc:
        logger.warning("ignoring the unreadable serving cache pointer of %s: %s", content_hash, exc)
        return None
    try:
        model = pickle.loads(store.get(str(pointer["blob"])))
    except Exception as exc:
        # A missing or damaged blob, or classes renamed under the same versions: reload.
        logger.warning("ignoring the serving cache of model blob %s: %s", content_hash, exc)
        return None
    if not isinstance(model, Model):
        logger.warning("ignoring the serving cache of model blob %s: not a Model", content_hash)
        return None
    return model


def _store(store: ArtifactStore, content_hash: str, model: Model) -> None:
    from conveyor.training.model import Model

    # The Profile (drift baseline) and the flavor's bytes are not needed to answer requests.
    lean = Model(
        flavor=model.flavor,
        obj=model.obj,
        signature=model.signature,
        metrics=model.metrics,
        library_versions=model.library_versions,
        target=model.target,
        flavor_meta=model.flavor_meta,
    )
    try:
        blob, _ = store.put(pickle.dumps(lean, protocol=pickle.HIGHEST_PROTOCOL))
        pointer = {"blob": blob, "model": content_hash, "format": CACHE_FORMAT}
        store.write_file(pointer_path(content_hash), json.dumps(pointer).encode())
    except Exception as exc:
        # A read-only store or an unpicklable object: the next start loads the slow way.
        logger.warning("cannot write the serving cache of model blob %s: %s", content_hash, exc)


def load_model(store: ArtifactStore, content_hash: str) -> Model:
    """The model stored under `content_hash`, through the serving cache when possible.

    Warns with `LibraryVersionWarning` as `Model.from_bytes` does when the model was
    trained with another version of its library.

    Raises:
        ArtifactCorruptError: the model blob is missing or damaged.
        ModelError: the blob is not a loadable model.
    """
    from conveyor.training.flavors import flavor_named, library_version
    from conveyor.training.model import LibraryVersionWarning, Model

    model = _cached(store, content_hash)
    if model is None:
        model = Model.from_bytes(store.get(content_hash))
        if model.flavor in FLAVORS:
            _store(store, content_hash, model)
        return model
    module = flavor_named(model.flavor).module
    recorded = model.library_versions.get(module)
    current = library_version(module)
    if recorded is not None and recorded != current:
        warnings.warn(
            f"This model was trained with {module} {recorded} and is loaded with {module} "
            f"{current}; predictions may differ. Install {module}=={recorded} or retrain "
            "and register a new version.",
            LibraryVersionWarning,
            stacklevel=2,
        )
    return model
