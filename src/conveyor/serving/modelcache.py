"""Fast model loading for servers: a pickled copy of the loaded model, bound to the database.

Registered scikit-learn models are stored with skops, which loads without running code but
costs a server about 0.7 s of start-up and 25 MB of memory: ``skops.io`` imports a large
part of scikit-learn to build its trust list. The first time a server loads a model
version, it writes a pickle of the loaded model into the content-addressed artifact store
and records the pickle's hash in the metadata database (table ``serving_caches``, keyed by
the model's content hash and this runtime); later starts read that row, fetch the blob,
check that its bytes hash to the recorded value, and only then unpickle it.

Why unpickling is acceptable here: the database is the root of trust (docs/security.md).
The pickle is unpickled only when its sha256 equals the hash a server recorded in the
database after loading the model through the skops trust check, so whoever can write the
artifact folder but not the database cannot make a server unpickle anything of theirs
(pointer files in the folder are not read at all). Whoever can write the database can
already point an alias at any model.

The row is keyed by the versions of Python and of the libraries the pickle depends on, so
a server with other library versions reloads through skops (and records its own copy).
Anything unexpected (no row, a missing or damaged blob, an unpicklable model, a read-only
store or database) falls back to the regular load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import platform
import warnings
from collections.abc import Collection
from importlib import metadata as _metadata
from typing import TYPE_CHECKING

from conveyor.exceptions import StoreError

if TYPE_CHECKING:
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore
    from conveyor.training.model import Model

logger = logging.getLogger("conveyor.serving")

CACHE_FORMAT = 2
# Flavors whose loaded objects pickle faithfully and whose regular load is slow.
FLAVORS = frozenset({"sklearn"})
# Distributions whose classes end up inside a pickled scikit-learn model.
_DISTRIBUTIONS = ("numpy", "scipy", "pandas", "scikit-learn", "conveyor")


def _version(dist: str) -> str | None:
    try:
        return _metadata.version(dist)
    except _metadata.PackageNotFoundError:
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


def _cached(
    store: ArtifactStore, metadata: MetadataStore, content_hash: str, runtime: str
) -> Model | None:
    import sqlalchemy as sa

    from conveyor.stores.metadata import tables_registry as r
    from conveyor.training.model import Model

    table = r.serving_caches
    try:
        with metadata.engine.connect() as c:
            blob_hash = c.execute(
                sa.select(table.c.blob_hash).where(
                    table.c.model_hash == content_hash, table.c.runtime == runtime
                )
            ).scalar()
    except sa.exc.SQLAlchemyError as exc:
        logger.warning("cannot read the serving cache of model blob %s: %s", content_hash, exc)
        return None
    if blob_hash is None:
        return None
    try:
        data = store.get(blob_hash)
    except StoreError as exc:
        logger.warning("ignoring the serving cache of model blob %s: %s", content_hash, exc)
        return None
    # Checked here too, whatever the store does: these bytes are about to be unpickled.
    if hashlib.sha256(data).hexdigest() != blob_hash:
        logger.warning(
            "ignoring the serving cache of model blob %s: its bytes do not match the hash "
            "recorded in the database",
            content_hash,
        )
        return None
    try:
        model = pickle.loads(data)
    except Exception as exc:
        # Classes renamed under the same versions: reload.
        logger.warning("ignoring the serving cache of model blob %s: %s", content_hash, exc)
        return None
    if not isinstance(model, Model):
        logger.warning("ignoring the serving cache of model blob %s: not a Model", content_hash)
        return None
    return model


def _store(
    store: ArtifactStore, metadata: MetadataStore, content_hash: str, runtime: str, model: Model
) -> None:
    import time

    import sqlalchemy as sa

    from conveyor.stores.metadata import tables_registry as r
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
        table = r.serving_caches
        with metadata.engine.begin() as c:
            c.execute(
                table.delete().where(table.c.model_hash == content_hash, table.c.runtime == runtime)
            )
            c.execute(
                table.insert(),
                [
                    {
                        "model_hash": content_hash,
                        "runtime": runtime,
                        "blob_hash": blob,
                        "created_at": time.time(),
                    }
                ],
            )
    except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
        # Another server recorded its copy first, or the database is read-only for us.
        logger.info("serving cache of model blob %s not recorded: %s", content_hash, exc)
    except Exception as exc:
        # A read-only store or an unpicklable object: the next start loads the slow way.
        logger.warning("cannot write the serving cache of model blob %s: %s", content_hash, exc)


def load_model(
    store: ArtifactStore,
    content_hash: str,
    *,
    metadata: MetadataStore | None = None,
    trusted: Collection[str] = (),
) -> Model:
    """The model stored under `content_hash`, through the serving cache when possible.

    Warns with `LibraryVersionWarning` as `Model.from_bytes` does when the model was
    trained with another version of its library.

    Args:
        store: The artifact store holding the model blob.
        content_hash: The model blob's hash, from its registry row.
        metadata: The metadata store binding cached pickles to their hashes; None loads
            without the cache.
        trusted: Type names the model's bytes may use beyond the allow-list (the
            registry row's list, or an explicit opt-in).

    Raises:
        ArtifactCorruptError: the model blob is missing or damaged.
        ModelError: the blob is not a loadable model, or names a type not trusted.
    """
    from conveyor.training.flavors import flavor_named, library_version
    from conveyor.training.model import LibraryVersionWarning, Model

    runtime = runtime_key()
    model = _cached(store, metadata, content_hash, runtime) if metadata is not None else None
    if model is None:
        model = Model.from_bytes(store.get(content_hash), trusted=trusted)
        if metadata is not None and model.flavor in FLAVORS:
            _store(store, metadata, content_hash, runtime, model)
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
