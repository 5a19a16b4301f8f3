"""One conformance suite for the metadata store, run against SQLite and PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import psycopg
import pytest
import sqlalchemy as sa

from conveyor._internal.ids import new_id
from conveyor.exceptions import NotFoundError, SchemaVersionError
from conveyor.stores.metadata import HEAD_REVISION, open_metadata_store
from conveyor.stores.metadata import tables as t
from conveyor.stores.metadata.engine import MIGRATIONS, current_revision, make_engine
from conveyor.stores.metadata.store import MetadataStore


def _run_row(**fields: object) -> dict[str, object]:
    now = time.time()
    row: dict[str, object] = {
        "id": new_id(),
        "pipeline": "p",
        "status": "running",
        "created_at": now,
        "started_at": now,
        "params": {"a": 1},
    }
    row.update(fields)
    return row


def _artifact(run_id: str, step_run_id: str, name: str = "output") -> dict[str, object]:
    return {
        "id": new_id(),
        "name": name,
        "kind": "output",
        "content_hash": "ab" * 32,
        "uri": "x",
        "type_name": "builtins.int",
        "materializer": "json",
        "materializer_version": "1",
        "size": 1,
        "summary": {"value": 1},
        "created_at": time.time(),
        "run_id": run_id,
        "step_run_id": step_run_id,
    }


def test_fresh_database_is_created_at_the_head_revision(db_url: str) -> None:
    store = open_metadata_store(db_url, auto_upgrade=True)
    assert current_revision(store.engine) == HEAD_REVISION


def test_head_revision_constant_matches_the_shipped_migrations() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_migrations_produce_exactly_the_declared_tables(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = open_metadata_store(db_url, auto_upgrade=True)
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), t.metadata)
    assert diff == []


def test_postgres_behind_head_needs_an_explicit_upgrade(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        c.exec_driver_sql("INSERT INTO alembic_version VALUES ('0000')")
    with pytest.raises(SchemaVersionError, match="conveyor db upgrade"):
        open_metadata_store(postgres_url)


def test_run_step_artifact_edges_round_trip(db_url: str) -> None:
    store = open_metadata_store(db_url, auto_upgrade=True)
    run = _run_row()
    store.create_run(run, tags={"team": "ml"})
    step_id = new_id()
    store.start_step_runs(
        [
            {
                "id": step_id,
                "run_id": run["id"],
                "name": "s",
                "step": "s",
                "status": "running",
                "attempts": 1,
                "started_at": time.time(),
                "cache_key": "k" * 64,
            }
        ]
    )
    artifact = _artifact(str(run["id"]), step_id)
    store.record_step(
        step_run_id=step_id,
        run_id=str(run["id"]),
        fields={"status": "completed", "ended_at": time.time(), "duration": 0.1},
        new_artifacts=[artifact],
        edges=[
            {
                "run_id": run["id"],
                "step_run_id": step_id,
                "artifact_id": artifact["id"],
                "direction": "out",
                "name": "output",
            }
        ],
        metrics=[
            {
                "run_id": run["id"],
                "step_run_id": step_id,
                "key": "loss",
                "value": 0.5,
                "step": 1,
                "timestamp": time.time(),
            }
        ],
        logs="hello\n",
    )
    got = store.get_run(str(run["id"]))
    assert got["params"] == {"a": 1} and got["tags"] == {"team": "ml"}
    assert store.get_run(str(run["id"])[:10])["id"] == run["id"]  # unique prefix
    assert store.step_runs(str(run["id"]))[0]["status"] == "completed"
    assert store.get_logs(step_id) == "hello\n"
    assert store.latest_metrics(str(run["id"])) == {"loss": 0.5}
    hit = store.find_cache_hit("k" * 64)
    assert hit is not None
    source, outputs = hit
    assert source == step_id and outputs["output"]["id"] == artifact["id"]
    assert store.get_artifact(str(artifact["id"]))["summary"] == {"value": 1}


def test_writes_are_atomic(db_url: str) -> None:
    store = open_metadata_store(db_url, auto_upgrade=True)
    run = _run_row()
    store.create_run(run)
    step_id = new_id()
    duplicate = _artifact(str(run["id"]), step_id)
    store.insert_artifacts([duplicate])
    # The driver's error: sqlite3's or psycopg's on the direct paths, SQLAlchemy's otherwise.
    with pytest.raises((sa.exc.IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError)):
        store.record_step(
            step_run_id=step_id,
            run_id=str(run["id"]),
            insert=True,
            fields={"name": "s", "step": "s", "status": "completed"},
            new_artifacts=[duplicate],  # primary key clash: the whole step is rolled back
        )
    assert store.step_runs(str(run["id"])) == []


def test_missing_ids_raise_not_found(db_url: str) -> None:
    store = open_metadata_store(db_url, auto_upgrade=True)
    with pytest.raises(NotFoundError, match="conveyor runs list"):
        store.get_run("01NOTARUN")
    with pytest.raises(NotFoundError):
        store.get_artifact("nope")


def test_listing_is_newest_first_and_paginates(db_url: str) -> None:
    store = open_metadata_store(db_url, auto_upgrade=True)
    ids = []
    for i in range(7):
        row = _run_row(created_at=1000.0 + i, pipeline="a" if i % 2 else "b", status="completed")
        store.create_run(row)
        ids.append(row["id"])
    page1 = store.list_runs(limit=3)
    page2 = store.list_runs(limit=3, before=page1[-1]["id"])
    page3 = store.list_runs(limit=3, before=page2[-1]["id"])
    assert [r["id"] for r in page1 + page2 + page3] == ids[::-1]
    assert {r["pipeline"] for r in store.list_runs(pipeline="a")} == {"a"}


def test_runs_of_dead_processes_are_marked_interrupted(db_url: str) -> None:
    store = open_metadata_store(db_url, auto_upgrade=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    import socket

    stale = _run_row(host=socket.gethostname(), pid=int(dead.stdout))
    alive = _run_row(host=socket.gethostname(), pid=os.getpid())
    store.create_run(stale)
    store.create_run(alive)
    step_id = new_id()
    store.start_step_runs(
        [
            {
                "id": step_id,
                "run_id": stale["id"],
                "name": "s",
                "step": "s",
                "status": "running",
                "attempts": 1,
            }
        ]
    )
    assert store.reconcile_stale_runs() == [stale["id"]]
    assert store.get_run(str(stale["id"]))["status"] == "interrupted"
    assert store.get_run(str(alive["id"]))["status"] == "running"
    assert store.get_step_run(step_id)["status"] == "interrupted"


def test_lineage_walks_upstream(db_url: str) -> None:
    store: MetadataStore = open_metadata_store(db_url, auto_upgrade=True)
    run = _run_row()
    store.create_run(run)
    previous = None
    artifacts = []
    for index in range(3):
        step_id = new_id()
        artifact = _artifact(str(run["id"]), step_id, name=f"a{index}")
        edges = [
            {
                "run_id": run["id"],
                "step_run_id": step_id,
                "artifact_id": artifact["id"],
                "direction": "out",
                "name": "output",
            }
        ]
        if previous:
            edges.append(
                {
                    "run_id": run["id"],
                    "step_run_id": step_id,
                    "artifact_id": previous,
                    "direction": "in",
                    "name": "x",
                }
            )
        store.record_step(
            step_run_id=step_id,
            run_id=str(run["id"]),
            insert=True,
            fields={"name": f"s{index}", "step": "s", "status": "completed"},
            new_artifacts=[artifact],
            edges=edges,
        )
        previous = str(artifact["id"])
        artifacts.append(previous)
    graph = store.lineage(artifacts[-1])
    assert set(graph["artifacts"]) == set(artifacts)
    assert {r["name"] for r in graph["step_runs"].values()} == {"s0", "s1", "s2"}
