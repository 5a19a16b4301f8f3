"""The metadata store: runs, steps, artifacts, lineage, metrics and domain records.

Import `open_metadata_store` to get a `MetadataStore` for a SQLAlchemy URL. Table modules
of every domain are imported here so that migrations and the conformance suite see them.
"""

from __future__ import annotations

from conveyor.stores.metadata import (
    tables,
    tables_data,
    tables_events,
    tables_monitoring,
    tables_registry,
)
from conveyor.stores.metadata.engine import HEAD_REVISION, make_engine, upgrade
from conveyor.stores.metadata.store import MetadataStore, open_metadata_store

__all__ = [
    "HEAD_REVISION",
    "MetadataStore",
    "make_engine",
    "open_metadata_store",
    "tables",
    "upgrade",
]
