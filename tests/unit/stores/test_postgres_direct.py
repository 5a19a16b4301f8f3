"""The psycopg run path on PostgreSQL writes exactly what the SQLAlchemy path writes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from conveyor.exceptions import StoreError
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata.engine import make_engine
from conveyor.stores.metadata.postgres_direct import PostgresDirect, postgres_conninfo
from conveyor.stores.metadata.store import MetadataStore
from tests.unit.stores.test_sqlite_direct import ART, HIT, RUN, STEP, _write_everything

pytestmark = pytest.mark.postgres

# Event ids and times are made when the event is written; everything else is given.
_VOLATILE = {"events": ("id", "created_at")}


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def other_postgres_url(postgres_server: str) -> Iterator[str]:
    """A second new, empty database next to `postgres_url`."""
    name = f"conveyor_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(postgres_server), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        from conveyor.stores.metadata.engine import _ENGINES

        engine = _ENGINES.pop(postgres_server.rsplit("/", 1)[0] + f"/{name}", None)
        if engine is not None:
            engine.dispose()
        with psycopg.connect(_libpq(postgres_server), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _raw(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, each value as PostgreSQL's text of it (JSON verbatim)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(_libpq(url)) as connection:
        tables = [
            r[0]
            for r in connection.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() ORDER BY table_name"
            )
        ]
        for table in tables:
            names = [
                r[0]
                for r in connection.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                    "AND table_schema = current_schema() ORDER BY ordinal_position",
                    [table],
                )
            ]
            kept = [n for n in names if n not in _VOLATILE.get(table, ())]
            select = ", ".join(f'"{n}"::text' for n in kept)
            rows = connection.execute(f"SELECT {select} FROM {table}").fetchall()
            out[table] = sorted(rows, key=repr)
    return out


def _direct_store(url: str) -> MetadataStore:
    open_metadata_store(url, auto_upgrade=True)  # create the schema (through Alembic)
    store = open_metadata_store(url)
    assert isinstance(store._direct, PostgresDirect) and store._engine is None
    return store


def test_both_paths_write_identical_rows(postgres_url: str, other_postgres_url: str) -> None:
    direct = _direct_store(postgres_url)
    open_metadata_store(other_postgres_url, auto_upgrade=True)
    through_sqlalchemy = MetadataStore(other_postgres_url, engine=make_engine(other_postgres_url))
    _write_everything(direct)
    _write_everything(through_sqlalchemy)
    written = _raw(postgres_url)
    assert written == _raw(other_postgres_url)
    assert written["runs"] and written["lineage_edges"] and written["events"]
    assert written["metrics"] and written["step_logs"] and written["run_tags"]
    # JSON text as SQLAlchemy writes it (json.dumps), an explicit None as JSON null.
    (run,) = [r for r in written["runs"] if r[0] == RUN]
    assert '{"a": 1, "nested": {"b": [1, 2.5, null, "\\u00e9"]}}' in run
    assert "null" in run  # trigger=None


def test_what_the_direct_path_writes_reads_back_the_same_through_sqlalchemy(
    postgres_url: str,
) -> None:
    direct = _direct_store(postgres_url)
    _write_everything(direct)
    sql = MetadataStore(postgres_url, engine=make_engine(postgres_url))
    assert direct.get_run(RUN) == sql.get_run(RUN)
    assert direct.get_run(RUN[:8]) == sql.get_run(RUN)  # a unique prefix
    assert direct.step_runs(RUN) == sql.step_runs(RUN)
    assert direct.get_step_run(HIT)["cache_hit"] is True
    assert direct.get_step_run(STEP) == sql.get_step_run(STEP)
    assert direct.get_artifact(ART) == sql.get_artifact(ART)
    assert direct.get_logs(STEP) == sql.get_logs(STEP) == "hello\n"
    assert direct.get_logs(HIT) == ""
    assert direct.cache_key_components(["k" * 64]) == sql.cache_key_components(["k" * 64])
    assert direct.step_outputs(RUN) == sql.step_outputs(RUN)
    assert direct.find_run_by_tag("team", "ds") == sql.find_run_by_tag("team", "ds") == RUN
    direct_hit, sql_hit = direct.find_cache_hit("k" * 64), sql.find_cache_hit("k" * 64)
    assert direct_hit is not None and sql_hit is not None
    assert direct_hit[0] == sql_hit[0] == STEP
    # (SQLAlchemy's rows also carry the edge's name, as ``name_1``.)
    assert direct_hit[1]["output"] == {
        k: v for k, v in sql_hit[1]["output"].items() if k != "name_1"
    }
    direct.create_run(
        {
            "id": "01J0RUN00000000000000000AB",
            "pipeline": "p",
            "status": "completed",
            "created_at": 1e10,
            "params": {},
        }
    )
    later = {
        **direct.get_step_run(STEP),
        "run_id": "01J0RUN00000000000000000AB",
        "cache_key": "z" * 64,
        "started_at": 1e10,
    }
    previous = direct.previous_step_run(later)
    assert previous == sql.previous_step_run(later)
    assert previous is not None and previous["id"] == STEP
    refs = ["m@prod", "m", "m/3"]
    assert direct.current_versions(refs) == sql.current_versions(refs)
    assert direct.find_cache_hit("n" * 64) is None
    assert direct.dialect == sql.dialect == "postgresql"


def test_a_connection_the_server_ended_is_replaced(postgres_url: str) -> None:
    store = _direct_store(postgres_url)
    _write_everything(store)
    assert isinstance(store._direct, PostgresDirect)
    for _ in range(2):  # a read, then a write, each on a connection the server ended
        pid = store._direct._connect().info.backend_pid
        with psycopg.connect(_libpq(postgres_url), autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", [pid])
        if _ == 0:
            assert store.get_run(RUN)["status"] == "completed"
        else:
            store.update_run(RUN, error="later")
            assert store.get_run(RUN)["error"] == "later"
        assert store._direct._connect().info.backend_pid != pid


def test_threads_share_the_store_safely(postgres_url: str) -> None:
    store = _direct_store(postgres_url)
    _write_everything(store)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(20):
                store.emit_event("step_failed", "p", f"{i}-{j}", links={"run_id": RUN})
                store.record_step(
                    step_run_id=f"01J0THREAD{i:02d}{j:02d}00000000000",
                    run_id=RUN,
                    insert=True,
                    fields={"name": f"t{i}-{j}", "step": "t", "status": "completed"},
                    metrics=[{"run_id": RUN, "key": "k", "value": float(j), "timestamp": 1.0}],
                )
                assert store.get_run(RUN)["id"] == RUN
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.step_runs(RUN)) == 2 + 6 * 20
    with psycopg.connect(_libpq(postgres_url)) as c:
        row = c.execute("SELECT count(*) FROM events WHERE kind = 'step_failed'").fetchone()
    assert row is not None and row[0] == 1 + 6 * 20


@pytest.mark.parametrize(
    ("url", "direct"),
    [
        ("postgresql+psycopg://u@h/db", True),
        ("postgresql://u:p%40ss@h:5433/db", True),
        ("postgresql://h/db", True),
        ("postgresql://u@[::1]:5432/db", True),
        ("postgresql://u@h/db?sslmode=require", False),
        ("postgresql+psycopg2://u@h/db", False),
        ("postgresql+asyncpg://u@h/db", False),
        ("postgres://u@h/db", False),
        ("postgresql://u@h:port/db", False),
        ("postgresql://u@p@h/db", False),
        ("postgresql://u@h1,h2/db", False),
        ("postgresql://u@h/", False),
        ("postgresql://u@h/a/b", False),
        ("postgresql:///db", False),
        ("sqlite:///x.db", False),
    ],
)
def test_only_plain_postgres_urls_take_the_direct_path(url: str, direct: bool) -> None:
    conninfo = postgres_conninfo(url)
    assert (conninfo is not None) == direct
    if conninfo is not None:
        assert conninfo.startswith("postgresql://") and conninfo.endswith("/db")


def test_an_unusual_url_is_served_by_sqlalchemy(postgres_url: str) -> None:
    open_metadata_store(postgres_url, auto_upgrade=True)
    store = open_metadata_store(postgres_url + "?application_name=conveyor_test")
    assert store._direct is None
    assert store.find_run_by_tag("nope", "nope") is None


def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    with pytest.raises(StoreError) as caught:
        open_metadata_store("postgresql://ana:s3cret-pw@127.0.0.1:1/db")
    message = str(caught.value)
    assert "s3cret-pw" not in message and "\n" not in message
    assert message.startswith("Cannot reach the metadata store")
