"""Retrying a trigger event: run the pipeline again for an incident whose run failed (or
that was suppressed), recorded on the same event so the incident is not lost.

The event keeps its id and de-duplication key; its status and run become those of the
retry, and ``details["retries"]`` lists every attempt (time, run, outcome).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.exceptions import ConfigError, NotFoundError, did_you_mean
from conveyor.stores.metadata import tables_monitoring as tm
from conveyor.triggers import state
from conveyor.triggers.specs import triggers_of

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.core.pipeline import Pipeline

RETRYABLE = (state.FAILED, state.SUPPRESSED)


def get_event(engine: sa.Engine, event_id: str) -> dict[str, Any]:
    """The trigger event with this id (or a unique prefix of at least 6 characters).

    Raises:
        NotFoundError: no (or several) events match.
    """
    e = tm.trigger_events
    with engine.connect() as c:
        row = c.execute(sa.select(e).where(e.c.id == event_id)).mappings().first()
        if row is None and len(event_id) >= 6:
            rows = (
                c.execute(sa.select(e).where(e.c.id.like(event_id.upper() + "%")).limit(2))
                .mappings()
                .all()
            )
            row = rows[0] if len(rows) == 1 else None
    if row is None:
        raise NotFoundError(
            f"No trigger event with id {event_id!r}. List them with `conveyor triggers events`."
        )
    return dict(row)


def retry_event(
    event_id: str,
    pipelines: Sequence[Pipeline[Any, Any]],
    *,
    settings: Settings,
) -> dict[str, Any]:
    """Run the pipeline of a failed or suppressed trigger event again, in this process.

    The run's ``trigger`` is the event's record plus ``retry_of``; the event ends
    ``completed`` or ``failed`` with the new run.

    Returns:
        The updated event row.

    Raises:
        NotFoundError: no such event, or none of `pipelines` is the event's pipeline, or
            the pipeline no longer has the trigger.
        ConfigError: the event is not retryable (fired and still going, or completed).
    """
    from conveyor.execution.orchestrator import run_pipeline
    from conveyor.stores.metadata import open_metadata_store

    engine = open_metadata_store(settings.db_url).engine
    event = get_event(engine, event_id)
    if event["status"] not in RETRYABLE:
        ran = f" (run {event['run_id']})" if event["run_id"] else ""
        raise ConfigError(
            f"Trigger event {event['id']} is {event['status']}{ran}; only failed or suppressed "
            "events can be retried."
        )
    by_name = {p.name: p for p in pipelines}
    pipeline = by_name.get(event["pipeline"])
    if pipeline is None:
        raise NotFoundError(
            f"Event {event['id']} belongs to pipeline {event['pipeline']!r}, which is not among "
            f"the loaded ones ({', '.join(by_name) or 'none'})."
            + did_you_mean(event["pipeline"], list(by_name))
            + " Pass it with -p FILE.py:PIPELINE."
        )
    trigger = next(
        (t for t in triggers_of(pipeline) if t.key(pipeline.name) == event["trigger_key"]), None
    )
    if trigger is None:
        raise NotFoundError(
            f"Pipeline {pipeline.name!r} no longer has the {event['kind']} trigger of event "
            f"{event['id']} (its definition changed); run the pipeline by hand instead."
        )
    record = {
        "kind": event["kind"],
        "event_id": event["id"],
        "reason": event["reason"],
        "report_id": event["report_id"],
        "dedup_key": event["dedup_key"],
        "details": dict(event["details"] or {}),
        "at": time.time(),
        "retry_of": event["id"],
    }
    e = tm.trigger_events
    with engine.begin() as c:
        c.execute(e.update().where(e.c.id == event["id"]).values(status=state.FIRED))
    run_id: str | None = None
    status = state.FAILED
    try:
        run = run_pipeline(
            pipeline,
            dict(trigger.params),
            settings=settings,
            trigger=record,
            tags={state.EVENT_TAG: str(event["id"])},
            raise_on_failure=False,
        )
        run_id = str(run.id)
        status = state.COMPLETED if run.status == "completed" else state.FAILED
    finally:
        details = dict(event["details"] or {})
        details["retries"] = [
            *details.get("retries", []),
            {"at": time.time(), "run_id": run_id, "status": status, "was": event["status"]},
        ]
        with engine.begin() as c:
            c.execute(e.update().where(e.c.id == event["id"]).values(details=details))
        state.finish_event(engine, event["id"], event["trigger_key"], run_id=run_id, status=status)
    return get_event(engine, event["id"])


def list_triggers(engine: sa.Engine) -> list[dict[str, Any]]:
    """Every trigger a scheduler has seen, with its cursor, fire count and last run."""
    s = tm.trigger_state
    with engine.connect() as c:
        return [dict(r) for r in c.execute(sa.select(s).order_by(s.c.pipeline, s.c.key)).mappings()]


__all__ = ["RETRYABLE", "get_event", "list_triggers", "retry_event"]
