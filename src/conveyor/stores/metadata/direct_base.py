"""The run path of the metadata store written once for every database driver.

`DirectStore` holds the methods a pipeline run and `conveyor task run` use (runs, step
runs, cache hits, artifacts, lineage, events, alias lookups) as plain SQL with bound
parameters. A subclass per database (`sqlite_direct`, `postgres_direct`) supplies the
connection, its transactions and how values of each column type are stored; the SQL is
written with ``?`` placeholders and a subclass whose driver wants another style rewrites
them.

The schema has one source of truth, `tables` and its Alembic migrations: no module here
writes DDL. Each subclass learns the columns of every table and their types from the
database itself, so values are encoded as SQLAlchemy encodes them; tests compare the
rows both paths write.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from conveyor.exceptions import NotFoundError, StoreError
from conveyor.stores.metadata.events import RUN_FAILED, RUN_FINISHED, RUN_STARTED, event_row
from conveyor.stores.metadata.statuses import (
    COMPLETED,
    FAILED,
    INTERRUPTED,
    PENDING,
    RUNNING,
    alive,
)

Row = Mapping[str, Any]

# Child tables of a step, in the order `record_steps` writes them: parents first.
_STEP_TABLES = ("step_runs", "artifacts", "lineage_edges", "metrics", "step_logs", "run_tags")


class Cursor(Protocol):
    """Statements inside one transaction (or one statement on its own)."""

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Every row of a query."""
        ...

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        """The first row of a query, None when there is none."""
        ...

    def run(self, sql: str, args: Sequence[Any] = ()) -> None:
        """A statement without result rows."""
        ...

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for each of `rows`."""
        ...


class Table:
    """Columns of one table; a subclass encodes and decodes values for its driver.

    Args:
        name: The table's name.
        columns: ``(column, kind)`` pairs where kind is ``"json"``, ``"boolean"`` or
            anything else (stored as given).
    """

    def __init__(self, name: str, columns: Sequence[tuple[str, str]]) -> None:
        self.name = name
        self.columns = frozenset(c for c, _ in columns)
        self.json = frozenset(c for c, kind in columns if kind == "json")
        self.booleans = frozenset(c for c, kind in columns if kind == "boolean")

    def check(self, names: Iterable[str]) -> None:
        """Raises: StoreError: a name is not a column of the table."""
        unknown = sorted(set(names) - self.columns)
        if unknown:
            raise StoreError(
                f"Table {self.name!r} has no column(s) {', '.join(unknown)}; the metadata "
                "database may be from another conveyor version (see `conveyor db current`)."
            )

    def encode(self, name: str, value: Any) -> Any:
        """`value` as the driver is given it for column `name`."""
        return value

    def decode(self, row: Row) -> dict[str, Any]:
        """A row as SQLAlchemy returns it: JSON parsed, booleans as bool."""
        return dict(row)


class DirectStore:
    """The run-path methods of `MetadataStore` over one connection per process.

    Subclasses implement `_query` (one statement, no transaction of its own), `_write`
    (one write transaction), `_read` (one read transaction) and `_load_table`; every
    method holds `_lock` while it speaks to the database, so the store is thread safe.
    """

    dialect = ""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tables: dict[str, Table] = {}

    # ------------------------------------------------------------------ plumbing
    def _query(self) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    def _load_table(self, name: str) -> Table:
        raise NotImplementedError

    def schema_revision(self) -> str | None:
        """The Alembic revision of the database, None when it has no schema yet."""
        raise NotImplementedError

    def _table(self, name: str) -> Table:
        with self._lock:
            table = self._tables.get(name)
            if table is None:
                table = self._tables[name] = self._load_table(name)
            return table

    def forget_columns(self) -> None:
        """Read the tables' columns again on next use (after a migration)."""
        with self._lock:
            self._tables = {}

    def _insert(self, c: Cursor, table_name: str, rows: Iterable[Row]) -> None:
        table = self._table(table_name)
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for row in rows:
            names = tuple(row)
            groups.setdefault(names, []).append(tuple(table.encode(n, row[n]) for n in names))
        for names, values in groups.items():
            table.check(names)
            columns = ", ".join(f'"{n}"' for n in names)
            marks = ", ".join("?" * len(names))
            c.many(f"INSERT INTO {table_name} ({columns}) VALUES ({marks})", values)

    def _update(
        self, c: Cursor, table_name: str, fields: Row, where: str, args: Sequence[Any]
    ) -> None:
        if not fields:
            return
        table = self._table(table_name)
        table.check(fields)
        assignments = ", ".join(f'"{n}" = ?' for n in fields)
        values = [table.encode(n, v) for n, v in fields.items()]
        c.run(f"UPDATE {table_name} SET {assignments} WHERE {where}", [*values, *args])

    def _event(
        self,
        c: Cursor,
        kind: str,
        subject: str,
        summary: str,
        links: Row | None,
        data: Row | None,
    ) -> str:
        row = event_row(kind, subject, summary, links=links, data=data)
        self._insert(c, "events", [row])
        return str(row["id"])

    # ------------------------------------------------------------------ runs
    def create_run(self, row: Row, tags: Mapping[str, str] | None = None) -> None:
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
                row = c.one("SELECT pipeline, started_at FROM runs WHERE id = ?", [run_id])
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
            row = c.one("SELECT * FROM runs WHERE id = ?", [run_id])
            if row is None and len(run_id) >= 6:
                rows = c.all("SELECT * FROM runs WHERE id LIKE ? LIMIT 2", [run_id.upper() + "%"])
                row = rows[0] if len(rows) == 1 else None
            if row is None:
                raise NotFoundError(
                    f"No run with id {run_id!r}. List runs with `conveyor runs list`."
                )
            run = runs.decode(row)
            run["tags"] = {
                r["key"]: r["value"]
                for r in c.all("SELECT key, value FROM run_tags WHERE run_id = ?", [run["id"]])
            }
        return run

    def reconcile_stale_runs(self) -> list[str]:
        host = socket.gethostname()
        with self._query() as c:
            rows = c.all(
                "SELECT id, pid, proc_start FROM runs WHERE status = ? AND host = ?",
                [RUNNING, host],
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
    def start_step_runs(self, rows: Sequence[Row]) -> None:
        if rows:
            with self._write() as c:
                self._insert(c, "step_runs", rows)

    def update_step_run(self, step_run_id: str, **fields: Any) -> None:
        with self._write() as c:
            self._update(c, "step_runs", fields, "id = ?", [step_run_id])

    def _record_step(
        self,
        c: Cursor,
        inserts: dict[str, list[Row]],
        *,
        step_run_id: str,
        run_id: str,
        fields: Row,
        new_artifacts: Sequence[Row] = (),
        edges: Sequence[Row] = (),
        metrics: Sequence[Row] = (),
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
            c.run(f"DELETE FROM run_tags WHERE run_id = ? AND key IN ({marks})", [run_id, *tags])
            inserts["run_tags"].extend(
                {"run_id": run_id, "key": k, "value": v} for k, v in tags.items()
            )

    def _flush(self, c: Cursor, inserts: dict[str, list[Row]]) -> None:
        for table, rows in inserts.items():  # parents (step runs) before their children
            if rows:
                self._insert(c, table, rows)
                rows.clear()

    def record_steps(self, records: Sequence[Row]) -> None:
        if not records:
            return
        with self._write() as c:
            inserts: dict[str, list[Row]] = {name: [] for name in _STEP_TABLES}
            for record in records:
                self._record_step(c, inserts, **record)
            self._flush(c, inserts)

    def insert_artifacts(self, rows: Sequence[Row]) -> None:
        if rows:
            with self._write() as c:
                self._insert(c, "artifacts", rows)

    def step_runs(self, run_id: str) -> list[dict[str, Any]]:
        table = self._table("step_runs")
        with self._query() as c:
            rows = c.all(
                "SELECT * FROM step_runs WHERE run_id = ? ORDER BY started_at, id", [run_id]
            )
        return [table.decode(r) for r in rows]

    def get_step_run(self, step_run_id: str) -> dict[str, Any]:
        table = self._table("step_runs")
        with self._query() as c:
            row = c.one("SELECT * FROM step_runs WHERE id = ?", [step_run_id])
        if row is None:
            raise NotFoundError(f"No step run with id {step_run_id!r}.")
        return table.decode(row)

    def get_logs(self, step_run_id: str) -> str:
        with self._query() as c:
            row = c.one("SELECT text FROM step_logs WHERE step_run_id = ?", [step_run_id])
        return (row["text"] if row is not None else None) or ""

    def find_run_by_tag(self, key: str, value: str) -> str | None:
        with self._query() as c:
            row = c.one(
                "SELECT run_id FROM run_tags WHERE key = ? AND value = ? LIMIT 1", [key, value]
            )
        return None if row is None else str(row["run_id"])

    def step_outputs(self, run_id: str) -> dict[str, dict[str, dict[str, Any]]]:
        artifacts = self._table("artifacts")
        with self._query() as c:
            rows = c.all(
                "SELECT s.name AS step_name, e.name AS edge_name, a.* FROM step_runs s "
                "JOIN lineage_edges e ON e.step_run_id = s.id AND e.direction = 'out' "
                "JOIN artifacts a ON a.id = e.artifact_id "
                "WHERE s.run_id = ? AND s.status = ?",
                [run_id, COMPLETED],
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
        with self._query() as c:
            # One statement: the source step run and its outputs from one snapshot.
            rows = c.all(
                "SELECT s.id AS source_id, e.name AS edge_name, a.* FROM "
                "(SELECT id FROM step_runs WHERE cache_key = ? AND status = ? "
                "AND cache_hit = ? ORDER BY ended_at DESC LIMIT 1) s "
                "LEFT JOIN lineage_edges e ON e.step_run_id = s.id AND e.direction = 'out' "
                "LEFT JOIN artifacts a ON a.id = e.artifact_id",
                [cache_key, COMPLETED, False],
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
        table = self._table("step_runs")
        with self._read() as c:
            for key in wanted:
                row = c.one(
                    "SELECT cache_components FROM step_runs WHERE cache_key = ? "
                    "AND cache_components IS NOT NULL LIMIT 1",
                    [key],
                )
                if row is not None:
                    components = table.decode(row)["cache_components"]
                    if components is not None:
                        out[key] = list(components)
        return out

    def previous_step_run(self, step_run: Row) -> dict[str, Any] | None:
        table = self._table("step_runs")
        with self._read() as c:
            pipeline = c.one("SELECT pipeline FROM runs WHERE id = ?", [step_run["run_id"]])
            row = c.one(
                "SELECT s.* FROM step_runs s JOIN runs r ON r.id = s.run_id "
                "WHERE r.pipeline = ? AND s.name = ? AND s.step = ? AND s.run_id != ? "
                "AND s.cache_hit = ? AND s.cache_key != ? AND s.started_at <= ? "
                "ORDER BY s.started_at DESC, s.id DESC LIMIT 1",
                [
                    None if pipeline is None else pipeline["pipeline"],
                    step_run["name"],
                    step_run["step"],
                    step_run["run_id"],
                    False,
                    step_run["cache_key"],
                    step_run["started_at"] or time.time(),
                ],
            )
        return None if row is None else table.decode(row)

    # ------------------------------------------------------------------ artifacts
    def get_artifact(self, artifact_id: str) -> dict[str, Any]:
        table = self._table("artifacts")
        with self._read() as c:
            row = c.one("SELECT * FROM artifacts WHERE id = ?", [artifact_id])
            if row is None and len(artifact_id) >= 6:
                rows = c.all(
                    "SELECT * FROM artifacts WHERE id LIKE ? LIMIT 2", [artifact_id.upper() + "%"]
                )
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
                    row = c.one(
                        "SELECT a.version AS version FROM model_aliases a "
                        "JOIN models m ON m.id = a.model_id WHERE m.name = ? AND a.alias = ?",
                        [name, alias],
                    )
                else:
                    row = c.one(
                        "SELECT latest_version AS version FROM models WHERE name = ?", [name]
                    )
                version = None if row is None else row["version"]
                out.append(f"{ref}={'none' if version is None else version}")
        return out

    def emit_event(
        self,
        kind: str,
        subject: str,
        summary: str,
        *,
        links: Row | None = None,
        data: Row | None = None,
    ) -> str:
        with self._write() as c:
            return self._event(c, kind, subject, summary, links, data)
