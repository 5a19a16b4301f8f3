"""The stores a component uses when the caller passes none.

Inside a running step they are the run's own stores (from the step context), so a step
that registers a model or reads a dataset writes where its run is recorded; elsewhere they
come from the project's settings (conveyor.toml, CONVEYOR_* variables).
"""

from __future__ import annotations

from conveyor.core.context import current_context
from conveyor.stores.artifacts import ArtifactStore, open_artifact_store
from conveyor.stores.metadata import MetadataStore, open_metadata_store


def default_urls() -> tuple[str, str]:
    """(metadata store URL, artifact store URL) for the current step or project."""
    context = current_context()
    if context is not None and context.db_url and context.artifact_url:
        return context.db_url, context.artifact_url
    from conveyor.config import load_settings

    settings = load_settings()
    return settings.db_url, settings.artifact_url


def default_stores(
    metadata_store: MetadataStore | None = None, artifact_store: ArtifactStore | None = None
) -> tuple[MetadataStore, ArtifactStore]:
    """The given stores, with the missing ones filled in from `default_urls`."""
    if metadata_store is None or artifact_store is None:
        db_url, artifact_url = default_urls()
        metadata_store = metadata_store or open_metadata_store(db_url)
        artifact_store = artifact_store or open_artifact_store(artifact_url)
    return metadata_store, artifact_store
