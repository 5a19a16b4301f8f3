"""Queries the pages need beyond `conveyor.api.queries` (bounded: one query each)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from conveyor.stores.metadata import tables as t

if TYPE_CHECKING:
    from conveyor.stores.metadata import MetadataStore

MAX_STATUS_IDS = 200


def run_statuses(db: MetadataStore, run_ids: Sequence[str]) -> dict[str, str]:
    """The current status of each run id that exists (for live status polling).

    At most MAX_STATUS_IDS ids are looked up; the rest are ignored.
    """
    ids = [i for i in dict.fromkeys(run_ids) if i][:MAX_STATUS_IDS]
    if not ids:
        return {}
    with db.engine.connect() as c:
        return {
            row.id: row.status
            for row in c.execute(
                sa.select(t.runs.c.id, t.runs.c.status).where(t.runs.c.id.in_(ids))
            )
        }


def cache_components(db: MetadataStore, step_run_id: str) -> dict[str, object] | None:
    """What went into a step run's cache key, when the store records it (issue 11).

    Returns None on a store that does not record the components.
    """
    column = t.step_runs.c.get("cache_components")
    if column is None:
        return None
    with db.engine.connect() as c:
        value = c.execute(
            sa.select(column).where(t.step_runs.c.id == step_run_id)
        ).scalar_one_or_none()
    return dict(value) if isinstance(value, dict) else None
