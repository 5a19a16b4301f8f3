"""Queries the pages need beyond `conveyor.api.queries` (bounded: one query each)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.api.queries._page import reading
from conveyor.stores.metadata import tables as t

if TYPE_CHECKING:
    from conveyor.api.queries.triggers import TriggerEvent
    from conveyor.stores.metadata import MetadataStore

MAX_STATUS_IDS = 200


def run_statuses(db: MetadataStore, run_ids: Sequence[str]) -> dict[str, str]:
    """The current status of each run id that exists (for live status polling).

    At most MAX_STATUS_IDS ids are looked up; the rest are ignored.
    """
    ids = [i for i in dict.fromkeys(run_ids) if i][:MAX_STATUS_IDS]
    if not ids:
        return {}
    with reading(db) as c:
        return {
            row.id: row.status
            for row in c.execute(
                sa.select(t.runs.c.id, t.runs.c.status).where(t.runs.c.id.in_(ids))
            )
        }


@dataclass(frozen=True)
class ComponentChange:
    """One component that differs between two cache keys of the same step."""

    kind: str
    name: str
    change: str  # "changed", "added" or "removed"
    before: str
    after: str


@dataclass(frozen=True)
class CacheExplanation:
    """What went into a step run's cache key and, when it ran, what changed since the
    previous execution of the same step in the same pipeline.

    Attributes:
        components: The recorded components of its key (kind, name, digest, ...).
        previous: The previous executed step run (id, run_id) with another key, if any.
        changes: Components added, removed or changed against `previous`'s key.
    """

    components: tuple[Mapping[str, Any], ...]
    previous: Mapping[str, Any] | None
    changes: tuple[ComponentChange, ...]


def _normal(component: Mapping[str, Any]) -> dict[str, Any]:
    """A component with its content hash under ``digest`` (stored as ``hash``)."""
    return {
        "kind": str(component.get("kind", "")),
        "name": str(component.get("name", "")),
        "digest": str(component.get("hash") or component.get("digest") or ""),
        "where": str(component.get("where") or ""),
        "note": str(component.get("note") or ""),
        "value": str(component.get("value") or ""),
    }


def _shown(component: Mapping[str, Any]) -> str:
    value = str(component.get("value") or "")
    digest = str(component.get("digest") or "")[:12]
    return f"{value} ({digest})" if value else digest


def cache_explanation(db: MetadataStore, step_run_id: str) -> CacheExplanation | None:
    """Why a step ran or hit the cache, from the recorded key components (issue 11).

    Returns None when the step run has no cache key or the store has no components for it
    (runs recorded before components were stored). Four queries whatever the key's size.
    """
    with reading(db) as c:
        row = (
            c.execute(sa.select(t.step_runs).where(t.step_runs.c.id == step_run_id))
            .mappings()
            .first()
        )
    if row is None or not row["cache_key"]:
        return None
    previous = None if row["cache_hit"] else db.previous_step_run(dict(row))
    keys = [row["cache_key"], *([previous["cache_key"]] if previous else [])]
    found = db.cache_key_components(keys)
    if row["cache_key"] not in found:
        return None
    mine = [_normal(x) for x in found[row["cache_key"]]]
    changes: list[ComponentChange] = []
    if previous is not None and previous["cache_key"] in found:
        before = {(x["kind"], x["name"]): x for x in map(_normal, found[previous["cache_key"]])}
        after = {(x["kind"], x["name"]): x for x in mine}
        for key in sorted(before.keys() | after.keys()):
            old, new = before.get(key), after.get(key)
            if old is not None and new is not None and old.get("digest") == new.get("digest"):
                continue
            changes.append(
                ComponentChange(
                    kind=key[0],
                    name=key[1],
                    change="changed" if old and new else ("added" if new else "removed"),
                    before=_shown(old) if old else "",
                    after=_shown(new) if new else "",
                )
            )
    return CacheExplanation(
        components=tuple(mine),
        previous=None if previous is None else {"id": previous["id"], "run_id": previous["run_id"]},
        changes=tuple(changes),
    )


def events_for_reports(db: MetadataStore, report_ids: Sequence[str]) -> list[TriggerEvent]:
    """Trigger events decided on any of these monitor reports, newest first, with the
    status of the run each one started (one query)."""
    from conveyor.stores.metadata import tables_monitoring as tm

    ids = [i for i in dict.fromkeys(report_ids) if i]
    if not ids:
        return []
    e = tm.trigger_events
    query = (
        sa.select(e, t.runs.c.status.label("run_status"))
        .outerjoin(t.runs, t.runs.c.id == e.c.run_id)
        .where(e.c.report_id.in_(ids))
        .order_by(e.c.created_at.desc(), e.c.id.desc())
        .limit(MAX_STATUS_IDS)
    )
    with reading(db) as c:
        rows = c.execute(query).all()
    from conveyor.api.queries.triggers import trigger_event_from_row

    return [trigger_event_from_row(row) for row in rows]
