"""The event log: what happened, recorded in the same transaction as the change itself.

Every component that changes something a person may want to hear about (a run failed, an
alias moved, a monitor found drift) calls `record_event` with the connection of the
transaction that makes the change, so an event exists exactly when its change does. The
log doubles as the outbox of webhook delivery (`conveyor.events.delivery`): a delivery is
done only once a receiver has answered 2xx, so a killed deliverer loses nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor._internal.ids import new_id

if TYPE_CHECKING:
    import sqlalchemy as sa

RUN_STARTED = "run_started"
RUN_FINISHED = "run_finished"
RUN_FAILED = "run_failed"
STEP_FAILED = "step_failed"
DATASET_VERSION_CREATED = "dataset_version_created"
VALIDATION_FAILED = "validation_failed"
MODEL_REGISTERED = "model_registered"
GATE_PASSED = "gate_passed"
GATE_REFUSED = "gate_refused"
ALIAS_MOVED = "alias_moved"
ROLLBACK = "rollback"
MONITOR_REPORT = "monitor_report"
DRIFT = "drift"
DECAY = "decay"
QUALITY = "quality"
TRIGGER_FIRED = "trigger_fired"
TRIGGER_SUPPRESSED = "trigger_suppressed"
SERVER_LOADED = "server_loaded"

KINDS = (
    RUN_STARTED,
    RUN_FINISHED,
    RUN_FAILED,
    STEP_FAILED,
    DATASET_VERSION_CREATED,
    VALIDATION_FAILED,
    MODEL_REGISTERED,
    GATE_PASSED,
    GATE_REFUSED,
    ALIAS_MOVED,
    ROLLBACK,
    MONITOR_REPORT,
    DRIFT,
    DECAY,
    QUALITY,
    TRIGGER_FIRED,
    TRIGGER_SUPPRESSED,
    SERVER_LOADED,
)


@dataclass(frozen=True)
class Event:
    """One recorded event.

    Attributes:
        seq: Position in the log (strictly increasing; the cursor of `--follow`).
        id: Unique id receivers deduplicate by.
        created_at: Epoch seconds.
        kind: One of `KINDS`.
        subject: What it is about: a pipeline, ``model@alias``, a dataset, a monitor.
        summary: One human sentence.
        links: Ids of related records (``run_id``, ``model_version``, ``report_id``...).
        data: Details of the kind (metrics, findings, versions).
    """

    seq: int
    id: str
    created_at: float
    kind: str
    subject: str
    summary: str
    links: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id,
            "created_at": self.created_at,
            "kind": self.kind,
            "subject": self.subject,
            "summary": self.summary,
            "links": dict(self.links),
            "data": dict(self.data),
        }


def event_row(
    kind: str,
    subject: str,
    summary: str,
    *,
    links: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The row of a new event (a new id, now); links without a value are dropped.

    Raises:
        ValueError: `kind` is not one of `KINDS` (a programming error, not user input).
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown event kind {kind!r}; expected one of {', '.join(KINDS)}.")
    return {
        "id": new_id(),
        "created_at": time.time(),
        "kind": kind,
        "subject": subject[:300],
        "summary": summary,
        "links": {k: v for k, v in (links or {}).items() if v is not None},
        "data": dict(data or {}),
    }


def record_event(
    c: sa.Connection,
    kind: str,
    subject: str,
    summary: str,
    *,
    links: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
) -> str:
    """Append an event inside the caller's transaction; returns its id.

    Raises:
        ValueError: `kind` is not one of `KINDS` (a programming error, not user input).
    """
    from conveyor.stores.metadata import tables_events as te

    row = event_row(kind, subject, summary, links=links, data=data)
    c.execute(te.events.insert(), [row])
    return str(row["id"])


def emit(
    engine: sa.Engine,
    kind: str,
    subject: str,
    summary: str,
    *,
    links: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
) -> str:
    """`record_event` in a transaction of its own, for changes that have none to share."""
    with engine.begin() as c:
        return record_event(c, kind, subject, summary, links=links, data=data)


def event_from_row(row: Any) -> Event:
    """An `Event` from a row of the events table."""
    return Event(
        seq=int(row.seq),
        id=row.id,
        created_at=float(row.created_at),
        kind=row.kind,
        subject=row.subject,
        summary=row.summary,
        links=dict(row.links or {}),
        data=dict(row.data or {}),
    )


def list_events(
    engine: sa.Engine,
    *,
    kinds: Iterable[str] | None = None,
    subject: str | None = None,
    after: int | None = None,
    before: int | None = None,
    since: float | None = None,
    limit: int = 100,
) -> list[Event]:
    """Events, newest first (or oldest first after a cursor `after`, for following).

    Keyset-paginated: pass the smallest `seq` seen as `before` for the next (older) page,
    or the largest as `after` to read what came since. `subject` matches exactly, or as a
    prefix when it ends with ``*``.
    """
    import sqlalchemy as sa

    from conveyor.stores.metadata import tables_events as te

    e = te.events
    query = sa.select(e)
    wanted = [k for k in (kinds or []) if k]
    if wanted:
        query = query.where(e.c.kind.in_(wanted))
    if subject:
        if subject.endswith("*"):
            prefix = subject[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(e.c.subject.like(prefix + "%", escape="\\"))
        else:
            query = query.where(e.c.subject == subject)
    if since is not None:
        query = query.where(e.c.created_at >= since)
    if before is not None:
        query = query.where(e.c.seq < before)
    if after is not None:
        query = query.where(e.c.seq > after).order_by(e.c.seq)
    else:
        query = query.order_by(e.c.seq.desc())
    with engine.connect() as c:
        rows = c.execute(query.limit(max(1, min(int(limit), 10_000)))).all()
    return [event_from_row(row) for row in rows]


def last_seq(engine: sa.Engine) -> int:
    """The `seq` of the newest event, 0 for an empty log."""
    import sqlalchemy as sa

    from conveyor.stores.metadata import tables_events as te

    with engine.connect() as c:
        value = c.execute(sa.select(sa.func.max(te.events.c.seq))).scalar()
    return int(value or 0)


def get_event(engine: sa.Engine, event_id: str) -> Event | None:
    """The event with `event_id`, or None."""
    import sqlalchemy as sa

    from conveyor.stores.metadata import tables_events as te

    with engine.connect() as c:
        row = c.execute(sa.select(te.events).where(te.events.c.id == event_id)).first()
    return None if row is None else event_from_row(row)


def deliveries(
    engine: sa.Engine,
    *,
    target: str | None = None,
    statuses: Sequence[str] = (),
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The delivery log (attempts, last code and error per target and event), newest first."""
    import sqlalchemy as sa

    from conveyor.stores.metadata import tables_events as te

    d, e = te.event_deliveries, te.events
    query = sa.select(d, e.c.id.label("event_id"), e.c.kind, e.c.subject).join(
        e, e.c.seq == d.c.event_seq
    )
    if target:
        query = query.where(d.c.target == target)
    if statuses:
        query = query.where(d.c.status.in_(list(statuses)))
    query = query.order_by(d.c.updated_at.desc()).limit(limit)
    with engine.connect() as c:
        return [dict(row._mapping) for row in c.execute(query)]
