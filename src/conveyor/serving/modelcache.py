"""Model loading for servers: the registry's database-bound fast-load copy, kept lean.

A server (and the stream scorer) loads a registered version through
`conveyor.registry.fastload`: the pickle recorded in the database for the model's bytes
(written at registration from the live model, or by the first load through skops in this
runtime) is unpickled only when its bytes hash to the recorded value, else the model loads
through skops and the trust checks and a copy is recorded for the next start. See that
module and docs/security.md for why this is safe.

The server then keeps a lean copy: the training Profile and the flavor's bytes are not
needed to answer requests.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from conveyor.registry import fastload
from conveyor.registry.fastload import CACHE_FORMAT, FLAVORS, runtime_key

if TYPE_CHECKING:
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore
    from conveyor.training.model import Model

__all__ = ["CACHE_FORMAT", "FLAVORS", "load_model", "runtime_key"]


def load_model(
    store: ArtifactStore,
    content_hash: str,
    *,
    metadata: MetadataStore | None = None,
    trusted: Collection[str] = (),
    flavor: str | None = None,
) -> Model:
    """The model stored under `content_hash`, through its fast-load copy when possible,
    without its Profile and flavor bytes.

    Warns with `LibraryVersionWarning` as `Model.from_bytes` does when the model was
    trained with another version of its library.

    Args:
        store: The artifact store holding the model blob.
        content_hash: The model blob's hash, from its registry row.
        metadata: The metadata store binding fast-load copies to their hashes; None loads
            through skops without them.
        trusted: Type names the model's bytes may use beyond the allow-list (the
            registry row's list, or an explicit opt-in).
        flavor: The flavor recorded in the registry row, when known.

    Raises:
        ArtifactCorruptError: the model blob is missing or damaged.
        ModelError: the blob is not a loadable model, or names a type not trusted.
    """
    engine = metadata.engine if metadata is not None else None
    model = fastload.load(store, content_hash, engine=engine, trusted=trusted, flavor=flavor)
    return model.lean()
