"""The stdlib SQLite run path writes exactly what the SQLAlchemy path writes and reads back."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata.engine import make_engine
from conveyor.stores.metadata.sqlite_direct import sqlite_file
from conveyor.stores.metadata.store import MetadataStore

RUN = "01J0RUN00000000000000000AA"
STEP = "01J0STEP0000000000000000AA"
HIT = "01J0STEP0000000000000000AB"
ART = "01J0ART00000000000000000AA"
NOW = 1_700_000_000.25

# Event ids and times are made when the event is written; everything else is given.
_VOLATILE = {"events": ("id", "created_at")}


def _write_everything(store: MetadataStore) -> None:
    store.create_run(
        {
            "id": RUN,
            "pipeline": "p",
            "status": "running",
            "created_at": NOW,
            "started_at": NOW,
            "params": {"a": 1, "nested": {"b": [1, 2.5, None, "é"]}},
            "code_sha": None,
            "code_dirty": False,
            "executor": "threads:4",
            "host": "h",
            "pid": 1,
            "proc_start": 2**40,
            "trigger": None,
        },
        tags={"team": "ml"},
    )
    store.start_step_runs(
        [
            {
                "id": STEP,
                "run_id": RUN,
                "name": "s",
                "step": "s",
                "status": "running",
                "attempts": 1,
                "started_at": NOW,
                "cache_key": "k" * 64,
                "cache_components": [{"kind": "step", "name": "s", "hash": "a" * 16}],
                "params": {"x": 1},
            }
        ]
    )
    store.update_step_run(STEP, attempts=2)
    artifact = {
        "id": ART,
        "name": "output",
        "kind": "output",
        "content_hash": "ab" * 32,
        "uri": "/x",
        "type_name": "builtins.int",
        "materializer": "json",
        "materializer_version": "1",
        "size": 1,
        "summary": {"value": 1},
        "created_at": NOW,
        "run_id": RUN,
        "step_run_id": STEP,
    }
    edge = {"run_id": RUN, "step_run_id": STEP, "direction": "out", "name": "output"}
    store.record_step(
        step_run_id=STEP,
        run_id=RUN,
        fields={"status": "completed", "ended_at": NOW + 1, "duration": 1, "error": None},
        new_artifacts=[artifact],
        edges=[{**edge, "artifact_id": ART}],
        metrics=[
            {
                "run_id": RUN,
                "step_run_id": STEP,
                "key": "loss",
                "value": 0.5,
                "step": 1,
                "timestamp": NOW,
            }
        ],
        logs="hello\n",
        tags={"team": "ds", "extra": "1"},
    )
    store.record_steps(
        [
            {
                "step_run_id": HIT,
                "run_id": RUN,
                "insert": True,
                "fields": {
                    "name": "s2",
                    "step": "s",
                    "status": "completed",
                    "attempts": 0,
                    "started_at": NOW + 2,
                    "ended_at": NOW + 2,
                    "duration": 0.0,
                    "cache_key": "k" * 64,
                    "cache_hit": True,
                    "cache_source": STEP,
                    "params": {},
                },
                "edges": [{**edge, "step_run_id": HIT, "artifact_id": ART}],
            }
        ]
    )
    store.emit_event("step_failed", "p", "a summary", links={"run_id": RUN, "x": None})
    store.close_open_steps(RUN, "skipped")
    store.update_run(RUN, status="completed", ended_at=NOW + 3, outputs={"out": ART}, error=None)


def _raw(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, each value with its SQLite storage class."""
    connection = sqlite3.connect(path)
    tables = [
        r[0]
        for r in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'sqlite_sequence'"
        )
    ]
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table in sorted(tables):
        names = [r[1] for r in connection.execute(f"PRAGMA table_info({table})")]
        kept = [n for n in names if n not in _VOLATILE.get(table, ())]
        select = ", ".join(f'"{n}", typeof("{n}")' for n in kept)
        rows = connection.execute(f"SELECT {select} FROM {table}").fetchall()
        out[table] = sorted(rows, key=repr)
    connection.close()
    return out


def test_both_paths_write_identical_rows(tmp_path: Path) -> None:
    direct_url = f"sqlite:///{tmp_path / 'direct.db'}"
    sql_url = f"sqlite:///{tmp_path / 'sql.db'}"
    open_metadata_store(direct_url)
    open_metadata_store(sql_url)
    direct = open_metadata_store(direct_url)
    assert direct._direct is not None and direct._engine is None  # the stdlib path
    through_sqlalchemy = MetadataStore(sql_url, engine=make_engine(sql_url))
    _write_everything(direct)
    _write_everything(through_sqlalchemy)
    written = _raw(tmp_path / "direct.db")
    assert written == _raw(tmp_path / "sql.db")
    assert written["runs"] and written["lineage_edges"] and written["events"]


def test_what_the_direct_path_writes_reads_back_the_same_through_sqlalchemy(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'conveyor.db'}"
    open_metadata_store(url)
    direct = open_metadata_store(url)
    _write_everything(direct)
    sql = MetadataStore(url, engine=make_engine(url))
    assert direct.get_run(RUN) == sql.get_run(RUN)
    assert direct.step_runs(RUN) == sql.step_runs(RUN)
    assert direct.get_step_run(STEP) == sql.get_step_run(STEP)
    assert direct.get_artifact(ART) == sql.get_artifact(ART)
    assert direct.get_logs(STEP) == sql.get_logs(STEP) == "hello\n"
    assert direct.cache_key_components(["k" * 64]) == sql.cache_key_components(["k" * 64])
    direct_hit, sql_hit = direct.find_cache_hit("k" * 64), sql.find_cache_hit("k" * 64)
    assert direct_hit is not None and sql_hit is not None
    assert direct_hit[0] == sql_hit[0] == STEP
    fields = ("id", "content_hash", "materializer", "summary", "uri", "size")
    assert {k: v for k, v in direct_hit[1]["output"].items() if k in fields} == {
        k: v for k, v in sql_hit[1]["output"].items() if k in fields
    }
    later = {**direct.get_step_run(HIT), "run_id": "other", "cache_key": "z" * 64}
    assert direct.previous_step_run(later) == sql.previous_step_run(later)
    assert direct.current_versions(["m@prod", "m", "m/3"]) == sql.current_versions(
        ["m@prod", "m", "m/3"]
    )
    assert direct.find_cache_hit("n" * 64) is None


def test_a_write_that_fails_leaves_nothing(db_url: str) -> None:
    open_metadata_store(db_url, auto_upgrade=True)
    store = open_metadata_store(db_url)  # the direct path of either database
    _write_everything(store)
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        store.record_steps(
            [
                {
                    "step_run_id": "01J0STEP0000000000000000ZZ",
                    "run_id": RUN,
                    "insert": True,
                    "fields": {"name": "z", "step": "z", "status": "completed"},
                },
                {"step_run_id": STEP, "run_id": RUN, "insert": True, "fields": {}},  # clash
            ]
        )
    assert [r["name"] for r in store.step_runs(RUN)] == ["s", "s2"]
    store.update_step_run(STEP, attempts=5)  # the connection is usable after the rollback
    assert store.get_step_run(STEP)["attempts"] == 5


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///conveyor.db", "conveyor.db"),
        ("sqlite:////abs/conveyor.db", "/abs/conveyor.db"),
        ("sqlite+pysqlite:///a/b.db", "a/b.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:///a.db?mode=ro", None),
        ("sqlite:///a%20b.db", None),
        ("postgresql://u@h/db", None),
    ],
)
def test_only_plain_sqlite_files_take_the_direct_path(url: str, path: str | None) -> None:
    assert sqlite_file(url) == path


def test_a_new_store_is_created_through_the_migrations_then_served_directly(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'conveyor.db'}"
    store = open_metadata_store(url)  # no file yet: Alembic creates the schema
    _write_everything(store)
    assert store.get_run(RUN)["status"] == "completed"
    assert open_metadata_store(url)._engine is None


def test_a_relative_sqlite_url_names_the_database_of_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    open_metadata_store("sqlite:///conveyor.db").create_run(
        {"id": "run-a", "pipeline": "p", "status": "completed", "created_at": 1.0, "params": {}}
    )
    monkeypatch.chdir(second)
    store = open_metadata_store("sqlite:///conveyor.db")
    assert store.list_runs() == []
    assert (first / "conveyor.db").exists() and (second / "conveyor.db").exists()
