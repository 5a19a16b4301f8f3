"""The run path of the metadata store on SQLite, through the standard library's sqlite3.

A `conveyor run` writes a run, its step runs, artifacts, lineage, metrics, logs and events,
and reads cache hits: a few hundred small statements. Through SQLAlchemy each costs tens
of microseconds of statement building and the import alone a third of a second, so on a
SQLite file these methods speak to the database directly with bound parameters.

The schema has one source of truth, `tables` and its Alembic migrations: this module
writes no DDL and learns each table's columns and their declared types (``JSON``,
``BOOLEAN``) from the database itself (``PRAGMA table_info``), so values are encoded
exactly as SQLAlchemy encodes them (JSON text by `json.dumps`, an explicit None as
``null``; booleans as 0/1) and decoded back the same way. A test compares the rows both
paths write.

Connections are configured like the SQLAlchemy engine's (WAL, ``synchronous=NORMAL``,
``BEGIN IMMEDIATE`` for writers, a 60 s busy timeout), one per database and process,
serialized by a lock, so methods are thread safe. Every method that writes does so in one
transaction.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from conveyor._internal.ids import new_id
from conveyor.exceptions import NotFoundError, StoreError
from conveyor.stores.metadata.events import KINDS, RUN_FAILED, RUN_FINISHED, RUN_STARTED
from conveyor.stores.metadata.statuses import (
    COMPLETED,
    FAILED,
    INTERRUPTED,
    PENDING,
    RUNNING,
    alive,
)

_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")
_OPEN: dict[str, SqliteDirect] = {}
_OPEN_LOCK = threading.Lock()


def sqlite_file(url: str) -> str | None:
    """The database file of a plain ``sqlite:///path`` URL, else None.

    In-memory databases, URI filenames, query options and percent-escapes are left to
    SQLAlchemy, which understands all of them.
    """
    for prefix in _PREFIXES:
        if url.startswith(prefix):
            path = url[len(prefix) :]
            break
    else:
        return None
    if not path or path == ":memory:" or path.startswith("file:") or any(c in path for c in "?%"):
        return None
    return path


def absolute_url(url: str) -> str:
    """`url` with a relative SQLite file path made absolute (against the current folder).

    A relative path names another database in another folder; resolving it once, where
    the store is opened, keeps the process's shared connections from mixing them up.
    """
    path = sqlite_file(url)
    if path is None or os.path.isabs(path):
        return url
    prefix = url[: len(url) - len(path)]
    return prefix + os.path.abspath(path)


def open_direct(url: str) -> SqliteDirect | None:
    """The process's direct connection to the SQLite file of `url`, or None for any
    other URL."""
    path = sqlite_file(url)
    if path is None:
        return None
    with _OPEN_LOCK:
        direct = _OPEN.get(url)
        if direct is None:
            direct = _OPEN[url] = SqliteDirect(path)
    direct.reopen_if_replaced()
    return direct


def _encode_json(value: Any) -> str:
    return json.dumps(value)


class _Table:
    """Columns of one table and how their values are stored."""

    def __init__(self, name: str, columns: Sequence[tuple[str, str]]) -> None:
        self.name = name
        self.columns = frozenset(c for c, _ in columns)
        self.json = frozenset(c for c, kind in columns if kind == "JSON")
        self.booleans = frozenset(c for c, kind in columns if kind == "BOOLEAN")

    def check(self, names: Iterable[str]) -> None:
        unknown = sorted(set(names) - self.columns)
        if unknown:
            raise StoreError(
                f"Table {self.name!r} has no column(s) {', '.join(unknown)}; the metadata "
                "database may be from another conveyor version (see `conveyor db current`)."
            )

    def encode(self, name: str, value: Any) -> Any:
        return _encode_json(value) if name in self.json else value

    def decode(self, row: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for name in self.json:
            value = out.get(name)
            if value is not None:
                out[name] = json.loads(value)
        for name in self.booleans:
            value = out.get(name)
            if value is not None:
                out[name] = bool(value)
        return out


class SqliteDirect:
    """The run-path methods of `MetadataStore` on one SQLite file (see the module doc)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._tables: dict[str, _Table] = {}
        self._file: tuple[int, int] | None = None

    def _identity(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_dev, stat.st_ino

    def reopen_if_replaced(self) -> None:
        """Reconnect when the file was deleted or replaced since the connection opened
        (a connection would go on writing to the old, unlinked file)."""
        with self._lock:
            if self._connection is not None and self._identity() != self._file:
                self._connection.close()
                self._connection = None

    # ------------------------------------------------------------------ plumbing
    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        folder = Path(self.path).parent
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
        # Autocommit at the driver level: transactions are begun explicitly below.
        connection = sqlite3.connect(
            self.path, timeout=60, isolation_level=None, check_same_thread=False
        )
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=60000")
        connection.execute("PRAGMA foreign_keys=ON")
        # A connection inherited through fork() is never used: it belongs to the parent.
        self._connection, self._pid, self._tables = connection, os.getpid(), {}
        self._file = self._identity()
        return connection

    def _table(self, name: str) -> _Table:
        table = self._tables.get(name)
        if table is None:
            rows = self._connect().execute(f"PRAGMA table_info({name})").fetchall()
            if not rows:
                raise StoreError(f"The metadata database {self.path} has no table {name!r}.")
            table = self._tables[name] = _Table(name, [(r[1], str(r[2]).upper()) for r in rows])
        return table

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding the write lock from its start."""
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: a consistent snapshot that takes no write lock."""
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN")
            try:
                yield connection
            finally:
                connection.execute("COMMIT")

    def _insert(
        self, c: sqlite3.Connection, table_name: str, rows: Iterable[Mapping[str, Any]]
    ) -> None:
        table = self._table(table_name)
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for row in rows:
            names = tuple(row)
            groups.setdefault(names, []).append(tuple(table.encode(n, row[n]) for n in names))
        for names, values in groups.items():
            table.check(names)
            columns = ", ".join(f'"{n}"' for n in names)
            marks = ", ".join("?" * len(names))
            c.executemany(f"INSERT INTO {table_name} ({columns}) VALUES ({marks})", values)

    def _update(
        self,
        c: sqlite3.Connection,
        table_name: str,
        fields: Mapping[str, Any],
        where: str,
        args: Sequence[Any],
    ) -> None:
        if not fields:
            return
        table = self._table(table_name)
        table.check(fields)
        assignments = ", ".join(f'"{n}" = ?' for n in fields)
        values = [table.encode(n, v) for n, v in fields.items()]
        c.execute(f"UPDATE {table_name} SET {assignments} WHERE {where}", [*values, *args])

    def _event(
        self,
        c: sqlite3.Connection,
        kind: str,
        subject: str,
        summary: str,
        links: Mapping[str, Any] | None,
        data: Mapping[str, Any] | None,
    ) -> str:
        if kind not in KINDS:
            raise ValueError(f"Unknown event kind {kind!r}; expected one of {', '.join(KINDS)}.")
        event_id = new_id()
        self._insert(
            c,
            "events",
            [
                {
                    "id": event_id,
                    "created_at": time.time(),
                    "kind": kind,
                    "subject": subject[:300],
                    "summary": summary,
                    "links": {k: v for k, v in (links or {}).items() if v is not None},
                    "data": dict(data or {}),
                }
            ],
        )
        return event_id

    # ------------------------------------------------------------------ schema
    def schema_revision(self) -> str | None:
        """The Alembic revision of the database, None when it has no schema yet."""
        with self._lock:
            try:
                row = self._connect().execute("SELECT version_num FROM alembic_version").fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return None
                raise StoreError(f"Cannot read the metadata store {self.path}: {exc}") from exc
        return None if row is None else str(row[0])

    def forget_columns(self) -> None:
        """Read the tables' columns again on next use (after a migration)."""
        with self._lock:
            self._tables = {}

    # ------------------------------------------------------------------ runs
    def create_run(self, row: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> None:
        with self._write() as c:
            self._insert(c, "runs", [row])
            if tags:
                self._insert(
                    c,
                    "run_tags",
                    [{"run_id": row["id"], "key": k, "value": v} for k, v in tags.items()],
                )
            if row.get("status") == RUNNING:
                trigger = row.get("trigger") or {}
                self._event(
                    c,
                    RUN_STARTED,
                    str(row["pipeline"]),
                    f"Run {row['id']} of {row['pipeline']} started",
                    {"run_id": row["id"], "trigger_event": trigger.get("event_id")},
                    {"executor": row.get("executor"), "trigger": trigger or None},
                )

    def update_run(self, run_id: str, **fields: Any) -> None:
        with self._write() as c:
            self._update(c, "runs", fields, "id = ?", [run_id])
            status = fields.get("status")
            if status in (COMPLETED, FAILED, INTERRUPTED):
                row = c.execute(
                    "SELECT pipeline, started_at FROM runs WHERE id = ?", [run_id]
                ).fetchone()
                if row is not None:
                    took = (fields.get("ended_at") or time.time()) - (row["started_at"] or 0)
                    error = fields.get("error")
                    self._event(
                        c,
                        RUN_FINISHED if status == COMPLETED else RUN_FAILED,
                        str(row["pipeline"]),
                        f"Run {run_id} of {row['pipeline']} {status} in {took:.1f}s"
                        + (f": {str(error)[:300]}" if error else ""),
                        {"run_id": run_id},
                        {"status": status, "duration": took},
                    )

    def get_run(self, run_id: str) -> dict[str, Any]:
        runs = self._table("runs")
        with self._read() as c:
            row = c.execute("SELECT * FROM runs WHERE id = ?", [run_id]).fetchone()
            if row is None and len(run_id) >= 6:
                rows = c.execute(
                    "SELECT * FROM runs WHERE id LIKE ? LIMIT 2", [run_id.upper() + "%"]
                ).fetchall()
                row = rows[0] if len(rows) == 1 else None
            if row is None:
                raise NotFoundError(
                    f"No run with id {run_id!r}. List runs with `conveyor runs list`."
                )
            run = runs.decode(row)
            run["tags"] = {
                r["key"]: r["value"]
                for r in c.execute("SELECT key, value FROM run_tags WHERE run_id = ?", [run["id"]])
            }
        return run

    def reconcile_stale_runs(self) -> list[str]:
        host = socket.gethostname()
        with self._lock:
            rows = (
                self._connect()
                .execute(
                    "SELECT id, pid, proc_start FROM runs WHERE status = ? AND host = ?",
                    [RUNNING, host],
                )
                .fetchall()
            )
        dead = [
            r["id"] for r in rows if r["pid"] is not None and not alive(r["pid"], r["proc_start"])
        ]
        if dead:
            now = time.time()
            marks = ", ".join("?" * len(dead))
            with self._write() as c:
                self._update(
                    c,
                    "runs",
                    {
                        "status": INTERRUPTED,
                        "ended_at": now,
                        "error": "The process running this run stopped without finishing it.",
                    },
                    f"id IN ({marks}) AND status = ?",
                    [*dead, RUNNING],
                )
                self._update(
                    c,
                    "step_runs",
                    {"status": INTERRUPTED, "ended_at": now},
                    f"run_id IN ({marks}) AND status IN (?, ?)",
                    [*dead, RUNNING, PENDING],
                )
        return dead

    def close_open_steps(self, run_id: str, status: str) -> None:
        with self._write() as c:
            self._update(
                c,
                "step_runs",
                {"status": status, "ended_at": time.time()},
                "run_id = ? AND status IN (?, ?)",
                [run_id, RUNNING, PENDING],
            )

    # ------------------------------------------------------------------ step runs
    def start_step_runs(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            with self._write() as c:
                self._insert(c, "step_runs", rows)

    def update_step_run(self, step_run_id: str, **fields: Any) -> None:
        with self._write() as c:
            self._update(c, "step_runs", fields, "id = ?", [step_run_id])

    def _record_step(
        self,
        c: sqlite3.Connection,
        inserts: dict[str, list[Mapping[str, Any]]],
        *,
        step_run_id: str,
        run_id: str,
        fields: Mapping[str, Any],
        new_artifacts: Sequence[Mapping[str, Any]] = (),
        edges: Sequence[Mapping[str, Any]] = (),
        metrics: Sequence[Mapping[str, Any]] = (),
        logs: str | None = None,
        tags: Mapping[str, str] | None = None,
        insert: bool = False,
    ) -> None:
        """One step's writes; its inserts join `inserts`, written per table by `_flush`."""
        if insert:
            inserts["step_runs"].append({"id": step_run_id, "run_id": run_id, **fields})
        else:
            self._flush(c, inserts)  # the row may be one this batch inserts
            self._update(c, "step_runs", fields, "id = ?", [step_run_id])
        inserts["artifacts"].extend(new_artifacts)
        inserts["lineage_edges"].extend(edges)
        inserts["metrics"].extend(metrics)
        if logs:
            inserts["step_logs"].append(
                {"step_run_id": step_run_id, "run_id": run_id, "text": logs}
            )
        if tags:
            self._flush(c, inserts)  # replaced tags may be ones this batch inserts
            marks = ", ".join("?" * len(tags))
            c.execute(
                f"DELETE FROM run_tags WHERE run_id = ? AND key IN ({marks})", [run_id, *tags]
            )
            inserts["run_tags"].extend(
                {"run_id": run_id, "key": k, "value": v} for k, v in tags.items()
            )

    def _flush(self, c: sqlite3.Connection, inserts: dict[str, list[Mapping[str, Any]]]) -> None:
        for table, rows in inserts.items():  # parents (step runs) before their children
            if rows:
                self._insert(c, table, rows)
                rows.clear()

    def record_steps(self, records: Sequence[Mapping[str, Any]]) -> None:
        if not records:
            return
        with self._write() as c:
            inserts: dict[str, list[Mapping[str, Any]]] = {
                name: []
                for name in (
                    "step_runs",
                    "artifacts",
                    "lineage_edges",
                    "metrics",
                    "step_logs",
                    "run_tags",
                )
            }
            for record in records:
                self._record_step(c, inserts, **record)
            self._flush(c, inserts)

    def insert_artifacts(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            with self._write() as c:
                self._insert(c, "artifacts", rows)

    def step_runs(self, run_id: str) -> list[dict[str, Any]]:
        table = self._table("step_runs")
        with self._lock:
            rows = (
                self._connect()
                .execute(
                    "SELECT * FROM step_runs WHERE run_id = ? ORDER BY started_at, id", [run_id]
                )
                .fetchall()
            )
        return [table.decode(r) for r in rows]

    def get_step_run(self, step_run_id: str) -> dict[str, Any]:
        table = self._table("step_runs")
        with self._lock:
            row = (
                self._connect()
                .execute("SELECT * FROM step_runs WHERE id = ?", [step_run_id])
                .fetchone()
            )
        if row is None:
            raise NotFoundError(f"No step run with id {step_run_id!r}.")
        return table.decode(row)

    def get_logs(self, step_run_id: str) -> str:
        with self._lock:
            row = (
                self._connect()
                .execute("SELECT text FROM step_logs WHERE step_run_id = ?", [step_run_id])
                .fetchone()
            )
        return (row[0] if row is not None else None) or ""

    def find_run_by_tag(self, key: str, value: str) -> str | None:
        with self._lock:
            row = (
                self._connect()
                .execute(
                    "SELECT run_id FROM run_tags WHERE key = ? AND value = ? LIMIT 1", [key, value]
                )
                .fetchone()
            )
        return None if row is None else str(row[0])

    def step_outputs(self, run_id: str) -> dict[str, dict[str, dict[str, Any]]]:
        artifacts = self._table("artifacts")
        with self._lock:
            rows = (
                self._connect()
                .execute(
                    "SELECT s.name AS step_name, e.name AS edge_name, a.* FROM step_runs s "
                    "JOIN lineage_edges e ON e.step_run_id = s.id AND e.direction = 'out' "
                    "JOIN artifacts a ON a.id = e.artifact_id "
                    "WHERE s.run_id = ? AND s.status = ?",
                    [run_id, COMPLETED],
                )
                .fetchall()
            )
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for row in rows:
            decoded = artifacts.decode(row)
            step = decoded.pop("step_name")
            out.setdefault(step, {})[decoded.pop("edge_name")] = decoded
        return out

    # ------------------------------------------------------------------ cache
    def find_cache_hit(self, cache_key: str) -> tuple[str, dict[str, dict[str, Any]]] | None:
        artifacts = self._table("artifacts")
        with self._lock:
            # One statement: the source step run and its outputs from one snapshot.
            rows = (
                self._connect()
                .execute(
                    "SELECT s.id AS source_id, e.name AS edge_name, a.* FROM "
                    "(SELECT id FROM step_runs WHERE cache_key = ? AND status = ? "
                    "AND cache_hit = 0 ORDER BY ended_at DESC LIMIT 1) s "
                    "LEFT JOIN lineage_edges e ON e.step_run_id = s.id AND e.direction = 'out' "
                    "LEFT JOIN artifacts a ON a.id = e.artifact_id",
                    [cache_key, COMPLETED],
                )
                .fetchall()
            )
        if not rows:
            return None
        outputs: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["id"] is None:  # a step without outputs, or an edge without its artifact
                continue
            decoded = artifacts.decode(row)
            del decoded["source_id"]
            outputs[decoded.pop("edge_name")] = decoded
        return str(rows[0]["source_id"]), outputs

    def cache_key_components(self, keys: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        wanted = [k for k in set(keys) if k]
        out: dict[str, list[dict[str, Any]]] = {}
        if not wanted:
            return out
        with self._read() as c:
            for key in wanted:
                row = c.execute(
                    "SELECT cache_components FROM step_runs WHERE cache_key = ? "
                    "AND cache_components IS NOT NULL LIMIT 1",
                    [key],
                ).fetchone()
                if row is not None:
                    components = json.loads(row[0])
                    if components is not None:
                        out[key] = list(components)
        return out

    def previous_step_run(self, step_run: Mapping[str, Any]) -> dict[str, Any] | None:
        table = self._table("step_runs")
        with self._read() as c:
            pipeline = c.execute(
                "SELECT pipeline FROM runs WHERE id = ?", [step_run["run_id"]]
            ).fetchone()
            row = c.execute(
                "SELECT s.* FROM step_runs s JOIN runs r ON r.id = s.run_id "
                "WHERE r.pipeline = ? AND s.name = ? AND s.step = ? AND s.run_id != ? "
                "AND s.cache_hit = 0 AND s.cache_key != ? AND s.started_at <= ? "
                "ORDER BY s.started_at DESC, s.id DESC LIMIT 1",
                [
                    None if pipeline is None else pipeline[0],
                    step_run["name"],
                    step_run["step"],
                    step_run["run_id"],
                    step_run["cache_key"],
                    step_run["started_at"] or time.time(),
                ],
            ).fetchone()
        return None if row is None else table.decode(row)

    # ------------------------------------------------------------------ artifacts
    def get_artifact(self, artifact_id: str) -> dict[str, Any]:
        table = self._table("artifacts")
        with self._read() as c:
            row = c.execute("SELECT * FROM artifacts WHERE id = ?", [artifact_id]).fetchone()
            if row is None and len(artifact_id) >= 6:
                rows = c.execute(
                    "SELECT * FROM artifacts WHERE id LIKE ? LIMIT 2", [artifact_id.upper() + "%"]
                ).fetchall()
                row = rows[0] if len(rows) == 1 else None
        if row is None:
            raise NotFoundError(
                f"No artifact with id {artifact_id!r}. Artifacts of a run are listed by "
                "`conveyor runs show RUN_ID`."
            )
        return table.decode(row)

    # ------------------------------------------------------------------ registry, events
    def current_versions(self, refs: Sequence[str]) -> list[str]:
        out: list[str] = []
        with self._read() as c:
            for ref in refs:
                name, at, alias = ref.partition("@")
                if "/" in name and not at:
                    out.append(f"{ref}={name.rpartition('/')[2]}")
                    continue
                if at:
                    row = c.execute(
                        "SELECT a.version FROM model_aliases a JOIN models m ON m.id = a.model_id "
                        "WHERE m.name = ? AND a.alias = ?",
                        [name, alias],
                    ).fetchone()
                else:
                    row = c.execute(
                        "SELECT latest_version FROM models WHERE name = ?", [name]
                    ).fetchone()
                version = None if row is None else row[0]
                out.append(f"{ref}={'none' if version is None else version}")
        return out

    def emit_event(
        self,
        kind: str,
        subject: str,
        summary: str,
        *,
        links: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> str:
        with self._write() as c:
            return self._event(c, kind, subject, summary, links, data)
