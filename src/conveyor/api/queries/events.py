"""The event log (alias moved, gate decided, report written, trigger fired, run ended)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.api.queries._page import DEFAULT_LIMIT, Page, check_limit, paginate, reading

if TYPE_CHECKING:
    from conveyor.stores.metadata import MetadataStore


@dataclass(frozen=True)
class Event:
    """One event of the log."""

    seq: int
    id: str
    created_at: float
    kind: str
    subject: str
    summary: str
    links: Mapping[str, Any]
    data: Mapping[str, Any]


def list_events(
    db: MetadataStore,
    *,
    kind: str | None = None,
    subject: str | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[Event]:
    """Events, newest first, optionally of one kind or about one subject.

    Raises:
        QueryError: a bad cursor or limit.
    """
    from conveyor.stores.metadata import tables_events as te

    check_limit(limit)
    e = te.events
    query = sa.select(e)
    if kind is not None:
        query = query.where(e.c.kind == kind)
    if subject is not None:
        query = query.where(e.c.subject == subject)
    with reading(db) as c:
        rows, next_cursor, prev_cursor = paginate(
            c,
            query,
            order=[(e.c.seq, True)],
            key=lambda row: (row.seq,),
            before=before,
            after=after,
            limit=limit,
        )
    items = tuple(
        Event(
            seq=row.seq,
            id=row.id,
            created_at=row.created_at,
            kind=row.kind,
            subject=row.subject,
            summary=row.summary,
            links=row.links or {},
            data=row.data or {},
        )
        for row in rows
    )
    return Page(items, next_cursor, prev_cursor, limit)
