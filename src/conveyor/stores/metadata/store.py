"""`MetadataStore`: every read and write of run metadata goes through here.

Contract: methods are thread safe; a method that writes does so in one transaction, so a
killed process leaves either all or none of its rows. Rows come back as plain dicts
(copies), never live objects.

Two implementations sit behind it. `SqlAlchemyStore` (`sql_store`) serves every method on
every database. The methods a pipeline run and `conveyor task run` use (runs, step runs,
cache hits, artifacts, lineage, events, alias lookups, the schema check) go through a
`DirectStore` (`direct_base`) instead: `SqliteDirect` (`sqlite_direct`, the standard
library) on a SQLite file, `PostgresDirect` (`postgres_direct`, psycopg) on a plain
PostgreSQL URL. Running a pipeline on an existing store therefore never imports
SQLAlchemy; it is imported on first use of anything else (`engine`, listings, lineage,
migrations), and for every URL the direct paths do not take.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from conveyor._internal.urls import redact_url
from conveyor.exceptions import NotFoundError, did_you_mean
from conveyor.stores.metadata.direct_base import DirectStore
from conveyor.stores.metadata.revision import HEAD_REVISION
from conveyor.stores.metadata.sqlite_direct import absolute_url, open_direct
from conveyor.stores.metadata.statuses import (
    COMPLETED,
    FAILED,
    INTERRUPTED,
    PENDING,
    RUNNING,
    SKIPPED,
    process_start_time,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

    from conveyor.stores.metadata.sql_store import SqlAlchemyStore

__all__ = [
    "COMPLETED",
    "FAILED",
    "INTERRUPTED",
    "PENDING",
    "RUNNING",
    "SKIPPED",
    "MetadataStore",
    "open_metadata_store",
    "process_start_time",
]


class MetadataStore:
    """Runs, step runs, artifacts, lineage, metrics, tags and logs in a SQL database.

    Args:
        url: The database URL.
        engine: A SQLAlchemy engine for `url` (made on first use when omitted).
        direct: The direct connection serving the run path (SQLite or PostgreSQL), if any.
    """

    def __init__(
        self,
        url: str,
        *,
        engine: sa.Engine | None = None,
        direct: DirectStore | None = None,
    ) -> None:
        self._url = url
        self._engine = engine
        self._direct = direct
        self._sql_store: SqlAlchemyStore | None = None
        self.url = redact_url(url)

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (importing SQLAlchemy on first use)."""
        if self._engine is None:
            from conveyor.stores.metadata.engine import make_engine

            self._engine = make_engine(self._url)
        return self._engine

    @property
    def dialect(self) -> str:
        """The database's kind: ``sqlite`` or ``postgresql``."""
        return self._direct.dialect if self._direct is not None else self.engine.dialect.name

    @property
    def _sql(self) -> SqlAlchemyStore:
        if self._sql_store is None:
            from conveyor.stores.metadata.sql_store import SqlAlchemyStore

            self._sql_store = SqlAlchemyStore(self.engine)
        return self._sql_store

    @property
    def _run(self) -> DirectStore | SqlAlchemyStore:
        """What serves the run path: the direct connection when there is one."""
        return self._direct if self._direct is not None else self._sql

    # ------------------------------------------------------------------ runs
    def create_run(self, row: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> None:
        """Insert a run (and its tags); a running run also records a run_started event."""
        self._run.create_run(row, tags)

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Change fields of a run; moving it to a final status records its event."""
        self._run.update_run(run_id, **fields)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        """Set (replace) tags of a run."""
        self._sql.set_tags(run_id, tags)

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run with this id; a unique prefix of at least 6 characters also works.

        Raises:
            NotFoundError: no run (or several) match.
        """
        return self._run.get_run(run_id)

    def list_runs(
        self,
        *,
        limit: int = 50,
        before: str | None = None,
        pipeline: str | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; `before` is the id of the last run of the previous page."""
        return self._sql.list_runs(limit=limit, before=before, pipeline=pipeline, status=status)

    def count_runs(self) -> int:
        return self._sql.count_runs()

    def reconcile_stale_runs(self) -> list[str]:
        """Mark runs whose process died on this host as interrupted; return their ids."""
        return self._run.reconcile_stale_runs()

    def close_open_steps(self, run_id: str, status: str) -> None:
        """Give step runs still marked running in `run_id` a final status."""
        self._run.close_open_steps(run_id, status)

    # ------------------------------------------------------------------ step runs
    def start_step_runs(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert step run rows (one transaction)."""
        self._run.start_step_runs(rows)

    def cache_key_components(self, keys: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """The recorded components of each of `keys` that is known (from any step run that
        was started with that key)."""
        return self._run.cache_key_components(keys)

    def previous_step_run(self, step_run: Mapping[str, Any]) -> dict[str, Any] | None:
        """The latest executed (not cached) step run of the same step and invocation name
        in an earlier run of the same pipeline, with another cache key; None if there is
        none."""
        return self._run.previous_step_run(step_run)

    def update_step_run(self, step_run_id: str, **fields: Any) -> None:
        self._run.update_step_run(step_run_id, **fields)

    def record_step(
        self,
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
        """Write everything a finished step produced, in one transaction.

        `fields` update the step run row (``insert=True``: create it); the artifacts,
        lineage edges, metrics, logs and run tags are inserted with it.
        """
        self.record_steps(
            [
                {
                    "step_run_id": step_run_id,
                    "run_id": run_id,
                    "fields": fields,
                    "new_artifacts": new_artifacts,
                    "edges": edges,
                    "metrics": metrics,
                    "logs": logs,
                    "tags": tags,
                    "insert": insert,
                }
            ]
        )

    def record_steps(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Several `record_step` calls (each as its keyword arguments) in one transaction."""
        self._run.record_steps(records)

    def insert_artifacts(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self._run.insert_artifacts(rows)

    def step_runs(self, run_id: str) -> list[dict[str, Any]]:
        """The step runs of a run, in the order they started."""
        return self._run.step_runs(run_id)

    def get_step_run(self, step_run_id: str) -> dict[str, Any]:
        """Raises: NotFoundError: no step run with this id."""
        return self._run.get_step_run(step_run_id)

    def find_step_run(self, run_id: str, name: str) -> dict[str, Any]:
        """The step run of `run_id` whose invocation name is `name`.

        Raises:
            NotFoundError: no such step in the run (lists the run's steps).
        """
        rows = self.step_runs(run_id)
        for row in rows:
            if row["name"] == name:
                return row
        names = [r["name"] for r in rows]
        raise NotFoundError(
            f"Run {run_id} has no step {name!r}."
            + did_you_mean(name, names)
            + (" Its steps: " + ", ".join(names) + "." if names else "")
        )

    def get_logs(self, step_run_id: str) -> str:
        return self._run.get_logs(step_run_id)

    # ------------------------------------------------------------------ cache
    def find_cache_hit(self, cache_key: str) -> tuple[str, dict[str, dict[str, Any]]] | None:
        """The newest completed step run with this key and its output artifacts by name."""
        return self._run.find_cache_hit(cache_key)

    # ------------------------------------------------------------------ artifacts & lineage
    def get_artifact(self, artifact_id: str) -> dict[str, Any]:
        """The artifact row; a unique id prefix of at least 6 characters also works.

        Raises:
            NotFoundError: no artifact (or several) match.
        """
        return self._run.get_artifact(artifact_id)

    def artifacts_of_run(self, run_id: str) -> list[dict[str, Any]]:
        """Artifacts the run's steps produced or reused from cache, with step and direction."""
        return self._sql.artifacts_of_run(run_id)

    def lineage(self, artifact_id: str, *, depth: int = 100) -> dict[str, Any]:
        """Upstream graph of an artifact: the step runs and artifacts that led to it.

        Returns ``{"artifacts": {id: row}, "step_runs": {id: row}, "edges": [...]}`` where
        edges are ``(artifact_id, step_run_id, "in"|"out", name)``.
        """
        return self._sql.lineage(artifact_id, depth=depth)

    def step_edges(self, step_run_ids: Iterable[str]) -> list[dict[str, Any]]:
        return self._sql.step_edges(step_run_ids)

    def step_outputs(self, run_id: str) -> dict[str, dict[str, dict[str, Any]]]:
        """Output artifacts of the run's completed step runs: step name -> output -> row."""
        return self._run.step_outputs(run_id)

    def find_run_by_tag(self, key: str, value: str) -> str | None:
        """The id of a run with the tag `key`=`value`, or None."""
        return self._run.find_run_by_tag(key, value)

    # ------------------------------------------------------------------ metrics
    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        return self._sql.metrics(run_id)

    def latest_metrics(self, run_id: str) -> dict[str, float]:
        """The last logged value of each metric key of a run."""
        values: dict[str, float] = {}
        for row in self.metrics(run_id):
            values[row["key"]] = row["value"]
        return values

    # ------------------------------------------------------------------ registry, events
    def current_versions(self, refs: Sequence[str]) -> list[str]:
        """``ref=version`` for each registry reference (``ref=none`` when it points at
        nothing yet): ``name@alias`` reads the alias, ``name`` the latest version,
        ``name/3`` is fixed."""
        return self._run.current_versions(refs)

    def emit_event(
        self,
        kind: str,
        subject: str,
        summary: str,
        *,
        links: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> str:
        """Record an event in a transaction of its own; returns its id.

        Raises:
            ValueError: `kind` is not one of `events.KINDS`.
        """
        return self._run.emit_event(kind, subject, summary, links=links, data=data)


def open_metadata_store(url: str, *, auto_upgrade: bool | None = None) -> MetadataStore:
    """Open (and on first use create) the metadata store at `url`.

    SQLite databases are upgraded automatically; other databases need `conveyor db upgrade`
    unless `auto_upgrade` is set. A SQLite file or a plain PostgreSQL URL already at the
    current schema opens without importing SQLAlchemy.

    Raises:
        SchemaVersionError: the database needs an upgrade.
        ConfigError: the URL or its driver is not usable.
    """
    url = absolute_url(url)
    direct: DirectStore | None = open_direct(url)
    if direct is None:
        from conveyor.stores.metadata.postgres_direct import open_postgres

        direct = open_postgres(url)
    if direct is not None and direct.schema_revision() == HEAD_REVISION:
        return MetadataStore(url, direct=direct)
    from conveyor.stores.metadata.engine import ensure_schema, make_engine

    engine = make_engine(url)
    if auto_upgrade is None:
        auto_upgrade = engine.dialect.name == "sqlite"
    ensure_schema(engine, auto_upgrade=auto_upgrade)
    if direct is not None:
        direct.forget_columns()  # the schema may have just been created or migrated
    return MetadataStore(url, engine=engine, direct=direct)
