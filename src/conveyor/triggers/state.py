"""Trigger state, events and scheduler leases in the metadata store.

Exactly-once firing rests on two database guarantees that hold on SQLite and PostgreSQL
alike, so it does not depend on a lease being held or a clock being right:

- the unique ``(trigger_key, dedup_key)`` of ``trigger_events``: an occurrence is decided
  (fired or suppressed) at most once, by whichever transaction commits first;
- a compare-and-set on the trigger's state row (``last_fired_at`` older than the cooldown)
  in the same transaction: two occurrences racing inside one cooldown fire once.

The lease only keeps a standby scheduler idle so that two schedulers do not both do the
evaluation work.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from conveyor._internal.ids import new_id
from conveyor.stores.metadata import tables as t
from conveyor.stores.metadata import tables_monitoring as tm
from conveyor.stores.metadata.events import (
    DECAY,
    TRIGGER_FIRED,
    TRIGGER_SUPPRESSED,
    record_event,
)
from conveyor.triggers.specs import Occurrence, Trigger

FIRED = "fired"
SUPPRESSED = "suppressed"
COMPLETED = "completed"
FAILED = "failed"


@dataclass(frozen=True)
class Decision:
    """The outcome of `claim`: fired (with the event id), suppressed, or a duplicate."""

    status: str
    event_id: str | None = None
    reason: str = ""


def ensure_state(engine: sa.Engine, trigger: Trigger, pipeline: str, now: float) -> Any:
    """The trigger's cursor, creating its state row on first sight."""
    key = trigger.key(pipeline)
    s = tm.trigger_state
    with engine.connect() as c:
        row = c.execute(sa.select(s.c.cursor).where(s.c.key == key)).first()
        if row is not None:
            return row.cursor
        cursor = trigger.initial_cursor(c, now)
    try:
        with engine.begin() as c:
            c.execute(
                s.insert(),
                [
                    {
                        "key": key,
                        "pipeline": pipeline,
                        "kind": trigger.kind,
                        "spec": trigger.spec(),
                        "cursor": cursor,
                        "fire_count": 0,
                        "updated_at": now,
                    }
                ],
            )
    except sa.exc.IntegrityError:
        with engine.connect() as c:
            row = c.execute(sa.select(s.c.cursor).where(s.c.key == key)).first()
            return None if row is None else row.cursor
    return cursor


def save_cursor(engine: sa.Engine, key: str, cursor: Any, now: float) -> None:
    with engine.begin() as c:
        c.execute(
            tm.trigger_state.update()
            .where(tm.trigger_state.c.key == key)
            .values(cursor=cursor, updated_at=now)
        )


def claim(
    engine: sa.Engine,
    trigger: Trigger,
    pipeline: str,
    occurrence: Occurrence,
    *,
    now: float,
    cursor: Any,
    scheduler: str,
) -> Decision:
    """Decide `occurrence` once: fire it, suppress it (cooldown, or the occurrence's own
    `suppress` reason), or see it is decided."""
    key = trigger.key(pipeline)
    s, e = tm.trigger_state, tm.trigger_events
    event_id = new_id()
    row = {
        "id": event_id,
        "trigger_key": key,
        "pipeline": pipeline,
        "kind": trigger.kind,
        "dedup_key": occurrence.dedup_key,
        "reason": occurrence.reason,
        "details": dict(occurrence.details),
        "report_id": occurrence.report_id,
        "scheduler": scheduler,
        "created_at": now,
    }
    try:
        with engine.begin() as c:
            fired = (
                occurrence.suppress is None
                and c.execute(
                    s.update()
                    .where(
                        s.c.key == key,
                        sa.or_(
                            s.c.last_fired_at.is_(None),
                            s.c.last_fired_at <= now - trigger.cooldown,
                        ),
                    )
                    .values(
                        last_fired_at=now,
                        fire_count=s.c.fire_count + 1,
                        cursor=cursor,
                        updated_at=now,
                    )
                ).rowcount
            )
            if fired:
                c.execute(e.insert(), [{**row, "status": FIRED}])
                record_event(
                    c,
                    TRIGGER_FIRED,
                    pipeline,
                    f"{trigger.kind} trigger of {pipeline} fired: {occurrence.reason}",
                    links={"trigger_event": event_id, "report_id": occurrence.report_id},
                    data={"kind": trigger.kind, "details": dict(occurrence.details)},
                )
                if trigger.kind == "decay":
                    # The decay finding itself, under the monitor it was found in.
                    record_event(
                        c,
                        DECAY,
                        str(occurrence.details.get("monitor") or pipeline),
                        f"Performance decay: {occurrence.reason}",
                        links={"report_id": occurrence.report_id, "trigger_event": event_id},
                        data=dict(occurrence.details),
                    )
                return Decision(FIRED, event_id, occurrence.reason)
            if occurrence.suppress is not None:
                reason = f"{occurrence.reason}; suppressed: {occurrence.suppress}"
            else:
                last = c.execute(sa.select(s.c.last_fired_at).where(s.c.key == key)).scalar()
                wait = 0.0 if last is None else last + trigger.cooldown - now
                reason = f"{occurrence.reason}; suppressed: cooldown, {wait:.0f} s left"
            c.execute(e.insert(), [{**row, "status": SUPPRESSED, "reason": reason}])
            record_event(
                c,
                TRIGGER_SUPPRESSED,
                pipeline,
                f"{trigger.kind} trigger of {pipeline} suppressed: {reason}",
                links={"trigger_event": event_id, "report_id": occurrence.report_id},
                data={"kind": trigger.kind},
            )
            c.execute(s.update().where(s.c.key == key).values(cursor=cursor, updated_at=now))
            return Decision(SUPPRESSED, event_id, reason)
    except sa.exc.IntegrityError:
        return Decision("duplicate", None, "already decided")


def finish_event(
    engine: sa.Engine, event_id: str, key: str, *, run_id: str | None, status: str
) -> None:
    with engine.begin() as c:
        c.execute(
            tm.trigger_events.update()
            .where(tm.trigger_events.c.id == event_id)
            .values(run_id=run_id, status=status)
        )
        if run_id is not None:
            c.execute(
                tm.trigger_state.update()
                .where(tm.trigger_state.c.key == key)
                .values(last_run_id=run_id)
            )


def active_run(engine: sa.Engine, key: str, now: float, launch_timeout: float = 120.0) -> bool:
    """Whether a run this trigger started is still going (or still being launched)."""
    e = tm.trigger_events
    with engine.connect() as c:
        pending = c.execute(
            sa.select(e.c.id, e.c.created_at)
            .where(e.c.trigger_key == key, e.c.status == FIRED)
            .order_by(e.c.created_at.desc())
            .limit(5)
        ).all()
        for event in pending:
            run = c.execute(
                sa.select(t.runs.c.status)
                .join(t.run_tags, t.run_tags.c.run_id == t.runs.c.id)
                .where(t.run_tags.c.key == EVENT_TAG, t.run_tags.c.value == event.id)
            ).first()
            if run is None:
                if now - float(event.created_at) < launch_timeout:
                    return True
            elif run.status == "running":
                return True
    return False


EVENT_TAG = "conveyor.trigger_event"


def acquire_lease(engine: sa.Engine, name: str, owner: str, now: float, ttl: float) -> bool:
    """Take or renew the scheduler lease `name`; False while another owner holds it."""
    lease = tm.scheduler_leases
    with engine.begin() as c:
        taken = c.execute(
            lease.update()
            .where(lease.c.name == name, sa.or_(lease.c.owner == owner, lease.c.expires_at < now))
            .values(owner=owner, expires_at=now + ttl)
        ).rowcount
    if taken:
        return True
    try:
        with engine.begin() as c:
            c.execute(
                lease.insert(),
                [{"name": name, "owner": owner, "acquired_at": now, "expires_at": now + ttl}],
            )
    except sa.exc.IntegrityError:
        return False
    return True


def release_lease(engine: sa.Engine, name: str, owner: str) -> None:
    lease = tm.scheduler_leases
    with engine.begin() as c:
        c.execute(lease.delete().where(lease.c.name == name, lease.c.owner == owner))


def list_events(
    engine: sa.Engine, *, limit: int = 50, pipeline: str | None = None
) -> list[dict[str, Any]]:
    """Trigger events, newest first."""
    e = tm.trigger_events
    query = sa.select(e).order_by(e.c.created_at.desc(), e.c.id.desc()).limit(limit)
    if pipeline:
        query = query.where(e.c.pipeline == pipeline)
    with engine.connect() as c:
        return [dict(r) for r in c.execute(query).mappings()]


def trigger_record(
    decision: Decision, occurrence: Occurrence, trigger: Trigger
) -> Mapping[str, Any]:
    """The JSON stored on the run's ``trigger`` column (lineage run -> trigger -> report)."""
    return {
        "kind": trigger.kind,
        "event_id": decision.event_id,
        "reason": occurrence.reason,
        "report_id": occurrence.report_id,
        "dedup_key": occurrence.dedup_key,
        "details": dict(occurrence.details),
        "at": time.time(),
    }
