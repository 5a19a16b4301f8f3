"""The metadata store: runs, steps, artifacts, lineage, metrics and domain records.

Import `open_metadata_store` to get a `MetadataStore` for a database URL. Names are
imported on first use, so opening a SQLite store for a pipeline run does not import
SQLAlchemy (see `store`); importing `tables` brings in every domain's tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._internal.lazy import lazy_exports

if TYPE_CHECKING:
    from conveyor.stores.metadata import (
        tables,
        tables_data,
        tables_events,
        tables_monitoring,
        tables_registry,
    )
    from conveyor.stores.metadata.engine import make_engine, upgrade
    from conveyor.stores.metadata.revision import HEAD_REVISION
    from conveyor.stores.metadata.store import MetadataStore, open_metadata_store

__all__ = [
    "HEAD_REVISION",
    "MetadataStore",
    "make_engine",
    "open_metadata_store",
    "tables",
    "upgrade",
]

_EXPORTS = {
    "HEAD_REVISION": "conveyor.stores.metadata.revision",
    "MetadataStore": "conveyor.stores.metadata.store",
    "open_metadata_store": "conveyor.stores.metadata.store",
    "make_engine": "conveyor.stores.metadata.engine",
    "upgrade": "conveyor.stores.metadata.engine",
}
_TABLE_MODULES = ("tables", "tables_data", "tables_events", "tables_monitoring", "tables_registry")
_export, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


def __getattr__(name: str) -> object:
    if name in _TABLE_MODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    return _export(name)
