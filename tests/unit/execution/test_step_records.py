"""When step runs are written: one transaction per step, before the next step runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conveyor import pipeline, step
from conveyor.config import Settings
from conveyor.core.context import current_context
from conveyor.execution.orchestrator import run_pipeline
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata.sqlite_direct import open_direct

SEEN: dict[str, dict[str, str]] = {}


def _statuses(settings: Settings) -> dict[str, str]:
    """The step runs of the running run, read by a connection of its own."""
    import sqlite3

    path = settings.db_url.removeprefix("sqlite:///")
    context = current_context()
    assert context is not None
    run_id = context.run_id
    with sqlite3.connect(path) as c:
        rows = c.execute("SELECT name, status FROM step_runs WHERE run_id = ?", [run_id])
        return dict(rows.fetchall())


@step
def first() -> int:
    return 1


@step
def second(x: int) -> int:
    return x + 1


@step
def third(x: int) -> int:
    return x + 1


@pipeline
def chain() -> int:
    return third(second(first()))


@pytest.fixture
def write_transactions(settings: Settings) -> Iterator[list[str]]:
    """The write transactions the process's direct connection begins."""
    open_metadata_store(settings.db_url)  # creates the schema
    direct = open_direct(settings.db_url)
    assert direct is not None
    seen: list[str] = []
    connection = direct._connect()
    connection.set_trace_callback(
        lambda sql: seen.append(sql) if sql == "BEGIN IMMEDIATE" else None
    )
    try:
        yield seen
    finally:
        connection.set_trace_callback(None)


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_a_chain_writes_each_step_run_in_one_transaction(
    settings: Settings, write_transactions: list[str], executor: str
) -> None:
    run = run_pipeline(chain, settings=settings, executor=executor, cache=False)
    # The run's start and end, the first step's start, and one per step after that: a
    # step's completion goes in with the next step's start (the last one's on its own).
    assert len(write_transactions) == 2 + 1 + 3
    assert {s["name"]: s["status"] for s in run.steps()} == dict.fromkeys(
        ("first", "second", "third"), "completed"
    )


def test_a_step_sees_its_own_row_and_its_upstream_completed(settings: Settings) -> None:
    @step
    def look(x: int) -> int:
        SEEN["look"] = _statuses(settings)
        return x

    @pipeline
    def watched() -> int:
        return look(second(first()))

    run_pipeline(watched, settings=settings, executor="threads", cache=False)
    assert SEEN["look"] == {"first": "completed", "second": "completed", "look": "running"}


def test_completed_events_fire_once_the_step_run_is_written(settings: Settings) -> None:
    store = open_metadata_store(settings.db_url)
    events: list[tuple[str, str, str | None]] = []

    def on_event(kind: str, node: str, info: dict[str, Any]) -> None:
        status = None
        if kind in ("submitted", "completed"):
            runs = store.list_runs(limit=1)
            by_name = {s["name"]: s["status"] for s in store.step_runs(runs[0]["id"])}
            status = by_name.get(node)
        events.append((kind, node, status))

    run_pipeline(chain, settings=settings, executor="threads", cache=False, on_event=on_event)
    assert events == [
        ("submitted", "first", "running"),
        ("completed", "first", "completed"),
        ("submitted", "second", "running"),
        ("completed", "second", "completed"),
        ("submitted", "third", "running"),
        ("completed", "third", "completed"),
    ]


def test_a_failure_is_recorded_after_what_finished_before_it(settings: Settings) -> None:
    @step
    def boom(x: int) -> int:
        raise ValueError("no")

    @pipeline
    def failing() -> object:
        value = first()
        return {"a": boom(value), "b": second(value)}

    run = run_pipeline(failing, settings=settings, executor="inline", raise_on_failure=False)
    by_name = {s["name"]: s for s in run.steps()}
    assert by_name["first"]["status"] == "completed"
    assert by_name["boom"]["status"] == "failed"
    assert by_name["boom"]["error"] == "no"
    assert by_name["second"]["status"] == "completed"


def test_cached_events_fire_once_the_cache_hit_is_recorded(settings: Settings) -> None:
    run_pipeline(chain, settings=settings, executor="threads", cache=True)
    store = open_metadata_store(settings.db_url)
    seen: list[tuple[str, str, str | None]] = []

    def on_event(kind: str, node: str, info: dict[str, Any]) -> None:
        run_id = store.list_runs(limit=1)[0]["id"]
        by_name = {s["name"]: s for s in store.step_runs(run_id)}
        row = by_name.get(node)
        seen.append((kind, node, row["status"] if row and row["cache_hit"] else None))

    run_pipeline(chain, settings=settings, executor="threads", cache=True, on_event=on_event)
    assert seen == [
        (kind, n, "completed")
        for kind, n in [("cached", "first"), ("cached", "second"), ("cached", "third")]
    ]
