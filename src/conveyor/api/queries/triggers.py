"""Triggers: their state and the events they decided (fired or suppressed, and why)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.api.queries._page import DEFAULT_LIMIT, Page, check_limit, paginate, reading
from conveyor.stores.metadata import tables_monitoring as tm

if TYPE_CHECKING:
    from conveyor.stores.metadata import MetadataStore


@dataclass(frozen=True)
class TriggerState:
    """A trigger of a pipeline and when it last fired."""

    key: str
    pipeline: str
    kind: str
    spec: Mapping[str, Any]
    last_fired_at: float | None
    last_run_id: str | None
    fire_count: int
    updated_at: float


@dataclass(frozen=True)
class TriggerEvent:
    """One decision of a trigger: the run it started, or why it did not."""

    id: str
    trigger_key: str
    pipeline: str
    kind: str
    dedup_key: str
    status: str
    reason: str
    details: Mapping[str, Any]
    report_id: str | None
    run_id: str | None
    run_status: str | None
    scheduler: str | None
    created_at: float


def list_triggers(
    db: MetadataStore,
    *,
    pipeline: str | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[TriggerState]:
    """Triggers the scheduler has evaluated, by key.

    Raises:
        QueryError: a bad cursor or limit.
    """
    check_limit(limit)
    s = tm.trigger_state
    query = sa.select(s)
    if pipeline is not None:
        query = query.where(s.c.pipeline == pipeline)
    with reading(db) as c:
        rows, next_cursor, prev_cursor = paginate(
            c,
            query,
            order=[(s.c.key, False)],
            key=lambda row: (row.key,),
            before=before,
            after=after,
            limit=limit,
        )
    items = tuple(
        TriggerState(
            key=row.key,
            pipeline=row.pipeline,
            kind=row.kind,
            spec=row.spec or {},
            last_fired_at=row.last_fired_at,
            last_run_id=row.last_run_id,
            fire_count=row.fire_count,
            updated_at=row.updated_at,
        )
        for row in rows
    )
    return Page(items, next_cursor, prev_cursor, limit)


def list_trigger_events(
    db: MetadataStore,
    *,
    pipeline: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    trigger_key: str | None = None,
    report_id: str | None = None,
    run_id: str | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[TriggerEvent]:
    """Trigger events, newest first, with the status of the run each one started.

    Raises:
        QueryError: a bad cursor or limit.
    """
    from conveyor.stores.metadata import tables as t

    check_limit(limit)
    e = tm.trigger_events
    query = sa.select(e, t.runs.c.status.label("run_status")).outerjoin(
        t.runs, t.runs.c.id == e.c.run_id
    )
    for column, value in (
        (e.c.pipeline, pipeline),
        (e.c.kind, kind),
        (e.c.status, status),
        (e.c.trigger_key, trigger_key),
        (e.c.report_id, report_id),
        (e.c.run_id, run_id),
    ):
        if value is not None:
            query = query.where(column == value)
    with reading(db) as c:
        rows, next_cursor, prev_cursor = paginate(
            c,
            query,
            order=[(e.c.created_at, True), (e.c.id, True)],
            key=lambda row: (row.created_at, row.id),
            before=before,
            after=after,
            limit=limit,
        )
    items = tuple(trigger_event_from_row(row) for row in rows)
    return Page(items, next_cursor, prev_cursor, limit)


def trigger_event_from_row(row: Any) -> TriggerEvent:
    """A `TriggerEvent` from a trigger_events row joined with its run's status."""
    return TriggerEvent(
        id=row.id,
        trigger_key=row.trigger_key,
        pipeline=row.pipeline,
        kind=row.kind,
        dedup_key=row.dedup_key,
        status=row.status,
        reason=row.reason,
        details=row.details or {},
        report_id=row.report_id,
        run_id=row.run_id,
        run_status=row.run_status,
        scheduler=row.scheduler,
        created_at=row.created_at,
    )
