"""Fast loading of registered models: a pickle of the Model, bound to the database.

Registered scikit-learn models are stored with skops, which loads without running code
named by the file but costs every fresh process 1-2 s of CPU: ``import skops.io`` walks
the whole of scikit-learn (and scipy) to build its trust list. So next to the skops bytes,
conveyor keeps a pickle of the same `Model`, written by conveyor itself:

- at registration, from the live model (`Registry.register`), in the same transaction as
  the version's row;
- after a load through skops that found no usable copy (versions registered by older
  releases, another runtime, a damaged copy), from the model that passed the skops checks.

The pickle goes into the content-addressed artifact store and its sha256 into the metadata
database (table ``serving_caches``: model blob hash, runtime key, pickle hash). A load
reads that row, fetches the pickle, checks that its bytes hash to the recorded value, and
only then unpickles it; anything else (no row, a missing or damaged blob, bytes that do not
unpickle to a Model) logs why and loads through skops.

Why unpickling is acceptable here: the database is the root of trust (docs/security.md).
Whoever can write the artifact folder but not the database cannot make conveyor unpickle
bytes of theirs: the hash check refuses them. Whoever can write the database can already
point an alias at any model and record the names it may use.

The row is keyed by the versions of Python and of the libraries a pickled scikit-learn
model depends on (`runtime_key`), so a process with other versions loads through skops
and records its own copy.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import pickle
import platform
import time
import warnings
from collections.abc import Collection
from importlib import metadata as _metadata
from typing import TYPE_CHECKING

from conveyor.exceptions import StoreError

if TYPE_CHECKING:
    import sqlalchemy as sa

    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.training.model import Model

logger = logging.getLogger("conveyor.registry")

# 3: the pickle holds the whole Model (Profile bytes and the flavor's bytes included).
CACHE_FORMAT = 3
# Flavors whose loaded objects pickle faithfully and whose regular load is slow.
FLAVORS = frozenset({"sklearn"})
# Distributions whose classes end up inside a pickled scikit-learn model.
_DISTRIBUTIONS = ("numpy", "scipy", "pandas", "scikit-learn", "conveyor")


def _version(dist: str) -> str | None:
    try:
        return _metadata.version(dist)
    except _metadata.PackageNotFoundError:
        return None


@functools.cache
def runtime_key() -> str:
    """A short key naming this interpreter and the versions a pickle depends on."""
    parts = {
        "format": CACHE_FORMAT,
        "python": platform.python_version(),
        "pickle": pickle.HIGHEST_PROTOCOL,
        **{dist: _version(dist) for dist in _DISTRIBUTIONS},
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def dumps(model: Model) -> bytes | None:
    """The pickle of `model` kept for fast loading, or None when it cannot be pickled.

    The copy holds the Profile as bytes (decoded on first use, as after a skops load) and
    the flavor's bytes, so the loaded Model writes the same bytes back (`to_bytes`).
    """
    if model.flavor not in FLAVORS:
        return None
    try:
        return pickle.dumps(model.self_contained(), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        # Something inside the model does not pickle (a lambda, a local class): it loads
        # through skops, which is what the registered bytes are for anyway.
        logger.info("no fast-load copy of this %s model: %s", model.flavor, exc)
        return None


def record(c: sa.Connection, model_hash: str, blob_hash: str) -> None:
    """Record (or replace) the fast-load copy of `model_hash` for this runtime, in `c`'s
    transaction."""
    from conveyor.stores.metadata import tables_registry as r

    table = r.serving_caches
    runtime = runtime_key()
    c.execute(table.delete().where(table.c.model_hash == model_hash, table.c.runtime == runtime))
    c.execute(
        table.insert(),
        [
            {
                "model_hash": model_hash,
                "runtime": runtime,
                "blob_hash": blob_hash,
                "created_at": time.time(),
            }
        ],
    )


def read(store: ArtifactStore, engine: sa.Engine, model_hash: str) -> Model | None:
    """The Model of the fast-load copy recorded for `model_hash`, or None (logged why)."""
    import sqlalchemy as sa

    from conveyor.stores.metadata import tables_registry as r
    from conveyor.training.model import Model

    table = r.serving_caches
    try:
        with engine.connect() as c:
            blob_hash = c.execute(
                sa.select(table.c.blob_hash).where(
                    table.c.model_hash == model_hash, table.c.runtime == runtime_key()
                )
            ).scalar()
    except sa.exc.SQLAlchemyError as exc:
        logger.warning("cannot read the fast-load record of model blob %s: %s", model_hash, exc)
        return None
    if blob_hash is None:
        return None
    skip = f"ignoring the fast-load copy {blob_hash} of model blob {model_hash}"
    try:
        data = store.get(blob_hash)
    except StoreError as exc:
        logger.warning("%s (loading through skops): %s", skip, exc)
        return None
    # Checked here too, whatever the store does: these bytes are about to be unpickled.
    if hashlib.sha256(data).hexdigest() != blob_hash:
        logger.warning(
            "%s (loading through skops): its bytes do not match the hash recorded in the database",
            skip,
        )
        return None
    try:
        model = pickle.loads(data)
    except Exception as exc:
        # Classes renamed under the same library versions, a project module gone: reload.
        logger.warning("%s (loading through skops): %s", skip, exc)
        return None
    if not isinstance(model, Model):
        logger.warning("%s (loading through skops): not a Model", skip)
        return None
    return model


def write(store: ArtifactStore, engine: sa.Engine, model_hash: str, model: Model) -> None:
    """Keep a fast-load copy of `model` (loaded from `model_hash` through the trust
    checks); failures are logged, never raised."""
    import sqlalchemy as sa

    data = dumps(model)
    if data is None:
        return
    try:
        blob_hash, _ = store.put(data)
        with engine.begin() as c:
            record(c, model_hash, blob_hash)
    except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
        # Another process recorded its copy first, or the database is read-only for us.
        logger.info("fast-load copy of model blob %s not recorded: %s", model_hash, exc)
    except Exception as exc:
        # A read-only store, say: the next load goes through skops again.
        logger.warning("cannot write the fast-load copy of model blob %s: %s", model_hash, exc)


def _warn_versions(model: Model) -> None:
    """The warnings `Model.from_bytes` gives for library versions, for a pickled copy."""
    from conveyor.training.flavors import flavor_named, library_version
    from conveyor.training.model import LibraryVersionWarning, check_component_versions

    module = flavor_named(model.flavor).module
    recorded = model.library_versions.get(module)
    current = library_version(module)
    if recorded is not None and recorded != current:
        warnings.warn(
            f"This model was trained with {module} {recorded} and is loaded with {module} "
            f"{current}; predictions may differ. Install {module}=={recorded} or retrain "
            "and register a new version.",
            LibraryVersionWarning,
            stacklevel=4,
        )
    check_component_versions(model.library_versions, module, stacklevel=5)


def load(
    store: ArtifactStore,
    model_hash: str,
    *,
    engine: sa.Engine | None,
    trusted: Collection[str] = (),
    flavor: str | None = None,
) -> Model:
    """The model stored under `model_hash`: its fast-load copy when one is recorded for
    this runtime, else through `Model.from_bytes` (then a copy is recorded).

    Warns with `LibraryVersionWarning` as `Model.from_bytes` does.

    Args:
        store: The artifact store holding the model's blobs.
        model_hash: The model blob's hash, from its registry row.
        engine: The metadata database binding fast-load copies to their hashes; None
            loads through skops without reading or writing a copy.
        trusted: Type names the skops bytes may use beyond the allow-list (the registry
            row's list, or an explicit opt-in).
        flavor: The flavor recorded in the registry row, when known: a flavor without
            fast-load copies skips the look-up.

    Raises:
        ArtifactCorruptError: the model blob is missing or damaged.
        ModelError: the blob is not a loadable model, or names a type not trusted.
    """
    from conveyor.training.model import Model

    if engine is None:
        return Model.from_bytes(store.get(model_hash), trusted=trusted)
    if flavor is None or flavor in FLAVORS:
        model = read(store, engine, model_hash)
        if model is not None:
            _warn_versions(model)
            return model
    model = Model.from_bytes(store.get(model_hash), trusted=trusted)
    if model.flavor in FLAVORS:
        write(store, engine, model_hash, model)
    return model
