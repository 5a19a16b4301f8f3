"""`SqlAlchemyStore`: the metadata store on any SQLAlchemy engine (SQLite, PostgreSQL).

`MetadataStore` delegates here for every backend except the run path on SQLite, which
`conveyor.stores.metadata.sqlite_direct` serves with the standard library. Importing this
module imports SQLAlchemy.

Contract: methods are thread safe (each uses its own connection from the pool); a method
that writes does so in one transaction, so a killed process leaves either all or none of
its rows. Rows come back as plain dicts (copies), never live objects.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from conveyor.exceptions import NotFoundError
from conveyor.stores.metadata import tables as t
from conveyor.stores.metadata.events import RUN_FAILED, RUN_FINISHED, RUN_STARTED, record_event
from conveyor.stores.metadata.statuses import (
    COMPLETED,
    FAILED,
    INTERRUPTED,
    PENDING,
    RUNNING,
)
from conveyor.stores.metadata.statuses import alive as _alive


class SqlAlchemyStore:
    """Runs, step runs, artifacts, lineage, metrics, tags and logs through SQLAlchemy."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ runs
    def create_run(self, row: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> None:
        """Insert a run (and its tags); a running run also records a run_started event."""
        with self.engine.begin() as c:
            c.execute(t.runs.insert(), [dict(row)])
            if tags:
                c.execute(
                    t.run_tags.insert(),
                    [{"run_id": row["id"], "key": k, "value": v} for k, v in tags.items()],
                )
            if row.get("status") == RUNNING:
                trigger = row.get("trigger") or {}
                record_event(
                    c,
                    RUN_STARTED,
                    str(row["pipeline"]),
                    f"Run {row['id']} of {row['pipeline']} started",
                    links={"run_id": row["id"], "trigger_event": trigger.get("event_id")},
                    data={"executor": row.get("executor"), "trigger": trigger or None},
                )

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Change fields of a run; moving it to a final status records its event."""
        with self.engine.begin() as c:
            c.execute(t.runs.update().where(t.runs.c.id == run_id).values(**fields))
            status = fields.get("status")
            if status in (COMPLETED, FAILED, INTERRUPTED):
                row = c.execute(
                    sa.select(t.runs.c.pipeline, t.runs.c.started_at).where(t.runs.c.id == run_id)
                ).first()
                if row is not None:
                    took = (fields.get("ended_at") or time.time()) - (row.started_at or 0)
                    error = fields.get("error")
                    record_event(
                        c,
                        RUN_FINISHED if status == COMPLETED else RUN_FAILED,
                        str(row.pipeline),
                        f"Run {run_id} of {row.pipeline} {status} in {took:.1f}s"
                        + (f": {str(error)[:300]}" if error else ""),
                        links={"run_id": run_id},
                        data={"status": status, "duration": took},
                    )

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        if not tags:
            return
        with self.engine.begin() as c:
            c.execute(
                t.run_tags.delete().where(
                    t.run_tags.c.run_id == run_id, t.run_tags.c.key.in_(list(tags))
                )
            )
            c.execute(
                t.run_tags.insert(),
                [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()],
            )

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run with this id; a unique prefix of at least 6 characters also works.

        Raises:
            NotFoundError: no run (or several) match.
        """
        with self.engine.connect() as c:
            row = c.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).mappings().first()
            if row is None and len(run_id) >= 6:
                rows = (
                    c.execute(
                        sa.select(t.runs).where(t.runs.c.id.like(run_id.upper() + "%")).limit(2)
                    )
                    .mappings()
                    .all()
                )
                row = rows[0] if len(rows) == 1 else None
            if row is None:
                raise NotFoundError(
                    f"No run with id {run_id!r}. List runs with `conveyor runs list`."
                )
            run = dict(row)
            run["tags"] = {
                r.key: r.value
                for r in c.execute(
                    sa.select(t.run_tags.c.key, t.run_tags.c.value).where(
                        t.run_tags.c.run_id == run["id"]
                    )
                )
            }
        return run

    def list_runs(
        self,
        *,
        limit: int = 50,
        before: str | None = None,
        pipeline: str | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; `before` is the id of the last run of the previous page."""
        query = sa.select(t.runs).order_by(t.runs.c.created_at.desc(), t.runs.c.id.desc())
        if pipeline:
            query = query.where(t.runs.c.pipeline == pipeline)
        if status:
            query = query.where(t.runs.c.status == status)
        if before:
            anchor = self.get_run(before)
            query = query.where(
                sa.or_(
                    t.runs.c.created_at < anchor["created_at"],
                    sa.and_(
                        t.runs.c.created_at == anchor["created_at"], t.runs.c.id < anchor["id"]
                    ),
                )
            )
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(query.limit(limit)).mappings()]

    def count_runs(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(t.runs)).scalar_one())

    def reconcile_stale_runs(self) -> list[str]:
        """Mark runs whose process died on this host as interrupted; return their ids."""
        host = socket.gethostname()
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(t.runs.c.id, t.runs.c.pid, t.runs.c.proc_start).where(
                    t.runs.c.status == RUNNING, t.runs.c.host == host
                )
            ).all()
        dead = [r.id for r in rows if r.pid is not None and not _alive(r.pid, r.proc_start)]
        if dead:
            now = time.time()
            with self.engine.begin() as c:
                c.execute(
                    t.runs.update()
                    .where(t.runs.c.id.in_(dead), t.runs.c.status == RUNNING)
                    .values(
                        status=INTERRUPTED,
                        ended_at=now,
                        error="The process running this run stopped without finishing it.",
                    )
                )
                c.execute(
                    t.step_runs.update()
                    .where(
                        t.step_runs.c.run_id.in_(dead),
                        t.step_runs.c.status.in_([RUNNING, PENDING]),
                    )
                    .values(status=INTERRUPTED, ended_at=now)
                )
        return dead

    def close_open_steps(self, run_id: str, status: str) -> None:
        """Give step runs still marked running in `run_id` a final status."""
        with self.engine.begin() as c:
            c.execute(
                t.step_runs.update()
                .where(
                    t.step_runs.c.run_id == run_id,
                    t.step_runs.c.status.in_([RUNNING, PENDING]),
                )
                .values(status=status, ended_at=time.time())
            )

    # ------------------------------------------------------------------ step runs
    def start_step_runs(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            with self.engine.begin() as c:
                c.execute(t.step_runs.insert(), [dict(r) for r in rows])

    def cache_key_components(self, keys: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """The recorded components of each of `keys` that is known (from any step run that
        was started with that key)."""
        wanted = [k for k in set(keys) if k]
        if not wanted:
            return {}
        out: dict[str, list[dict[str, Any]]] = {}
        with self.engine.connect() as c:
            for key in wanted:
                components = c.execute(
                    sa.select(t.step_runs.c.cache_components)
                    .where(
                        t.step_runs.c.cache_key == key,
                        t.step_runs.c.cache_components.is_not(None),
                    )
                    .limit(1)
                ).scalar_one_or_none()
                if components is not None:
                    out[key] = list(components)
        return out

    def previous_step_run(self, step_run: Mapping[str, Any]) -> dict[str, Any] | None:
        """The latest executed (not cached) step run of the same step and invocation name
        in an earlier run of the same pipeline, with another cache key; None if there is
        none."""
        with self.engine.connect() as c:
            pipeline = c.execute(
                sa.select(t.runs.c.pipeline).where(t.runs.c.id == step_run["run_id"])
            ).scalar_one_or_none()
            row = (
                c.execute(
                    sa.select(t.step_runs)
                    .join(t.runs, t.runs.c.id == t.step_runs.c.run_id)
                    .where(
                        t.runs.c.pipeline == pipeline,
                        t.step_runs.c.name == step_run["name"],
                        t.step_runs.c.step == step_run["step"],
                        t.step_runs.c.run_id != step_run["run_id"],
                        t.step_runs.c.cache_hit == sa.false(),
                        t.step_runs.c.cache_key != step_run["cache_key"],
                        t.step_runs.c.started_at <= (step_run["started_at"] or time.time()),
                    )
                    .order_by(t.step_runs.c.started_at.desc(), t.step_runs.c.id.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return dict(row) if row is not None else None

    def update_step_run(self, step_run_id: str, **fields: Any) -> None:
        with self.engine.begin() as c:
            c.execute(t.step_runs.update().where(t.step_runs.c.id == step_run_id).values(**fields))

    def _record_step(
        self,
        c: sa.Connection,
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
        if insert:
            c.execute(t.step_runs.insert(), [{"id": step_run_id, "run_id": run_id, **fields}])
        else:
            c.execute(t.step_runs.update().where(t.step_runs.c.id == step_run_id).values(**fields))
        if new_artifacts:
            c.execute(t.artifacts.insert(), [dict(a) for a in new_artifacts])
        if edges:
            c.execute(t.edges.insert(), [dict(e) for e in edges])
        if metrics:
            c.execute(t.metrics.insert(), [dict(m) for m in metrics])
        if logs:
            c.execute(
                t.step_logs.insert(),
                [{"step_run_id": step_run_id, "run_id": run_id, "text": logs}],
            )
        if tags:
            c.execute(
                t.run_tags.delete().where(
                    t.run_tags.c.run_id == run_id, t.run_tags.c.key.in_(list(tags))
                )
            )
            c.execute(
                t.run_tags.insert(),
                [{"run_id": run_id, "key": k, "value": v} for k, v in tags.items()],
            )

    def record_step(self, **record: Any) -> None:
        """Write everything a finished step produced, in one transaction."""
        with self.engine.begin() as c:
            self._record_step(c, **record)

    def record_steps(self, records: Sequence[Mapping[str, Any]]) -> None:
        """`record_step` for each record (its keyword arguments), in one transaction."""
        if records:
            with self.engine.begin() as c:
                for record in records:
                    self._record_step(c, **record)

    def insert_artifacts(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            with self.engine.begin() as c:
                c.execute(t.artifacts.insert(), [dict(r) for r in rows])

    def step_runs(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [
                dict(r)
                for r in c.execute(
                    sa.select(t.step_runs)
                    .where(t.step_runs.c.run_id == run_id)
                    .order_by(t.step_runs.c.started_at, t.step_runs.c.id)
                ).mappings()
            ]

    def get_step_run(self, step_run_id: str) -> dict[str, Any]:
        with self.engine.connect() as c:
            row = (
                c.execute(sa.select(t.step_runs).where(t.step_runs.c.id == step_run_id))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFoundError(f"No step run with id {step_run_id!r}.")
        return dict(row)

    def get_logs(self, step_run_id: str) -> str:
        with self.engine.connect() as c:
            text = c.execute(
                sa.select(t.step_logs.c.text).where(t.step_logs.c.step_run_id == step_run_id)
            ).scalar_one_or_none()
        return text or ""

    # ------------------------------------------------------------------ cache
    def find_cache_hit(self, cache_key: str) -> tuple[str, dict[str, dict[str, Any]]] | None:
        """The newest completed step run with this key and its output artifacts by name."""
        with self.engine.connect() as c:
            source = c.execute(
                sa.select(t.step_runs.c.id)
                .where(
                    t.step_runs.c.cache_key == cache_key,
                    t.step_runs.c.status == COMPLETED,
                    t.step_runs.c.cache_hit == sa.false(),
                )
                .order_by(t.step_runs.c.ended_at.desc())
                .limit(1)
            ).scalar_one_or_none()
            if source is None:
                return None
            rows = c.execute(
                sa.select(t.edges.c.name, t.artifacts)
                .join(t.artifacts, t.artifacts.c.id == t.edges.c.artifact_id)
                .where(t.edges.c.step_run_id == source, t.edges.c.direction == "out")
            ).mappings()
            outputs = {r["name"]: dict(r) for r in rows}
        return source, outputs

    # ------------------------------------------------------------------ artifacts & lineage
    def get_artifact(self, artifact_id: str) -> dict[str, Any]:
        with self.engine.connect() as c:
            row = (
                c.execute(sa.select(t.artifacts).where(t.artifacts.c.id == artifact_id))
                .mappings()
                .first()
            )
            if row is None and len(artifact_id) >= 6:
                rows = (
                    c.execute(
                        sa.select(t.artifacts)
                        .where(t.artifacts.c.id.like(artifact_id.upper() + "%"))
                        .limit(2)
                    )
                    .mappings()
                    .all()
                )
                row = rows[0] if len(rows) == 1 else None
        if row is None:
            raise NotFoundError(
                f"No artifact with id {artifact_id!r}. Artifacts of a run are listed by "
                "`conveyor runs show RUN_ID`."
            )
        return dict(row)

    def artifacts_of_run(self, run_id: str) -> list[dict[str, Any]]:
        """Artifacts the run's steps produced or reused from cache, with step and direction."""
        query = (
            sa.select(
                t.artifacts,
                t.edges.c.step_run_id.label("edge_step_run_id"),
                t.edges.c.name.label("edge_name"),
            )
            .join(t.edges, t.edges.c.artifact_id == t.artifacts.c.id)
            .where(t.edges.c.run_id == run_id, t.edges.c.direction == "out")
        )
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(query).mappings()]

    def lineage(self, artifact_id: str, *, depth: int = 100) -> dict[str, Any]:
        """Upstream graph of an artifact: the step runs and artifacts that led to it.

        Returns ``{"artifacts": {id: row}, "step_runs": {id: row}, "edges": [...]}`` where
        edges are ``(artifact_id, step_run_id, "in"|"out", name)``.
        """
        artifact = self.get_artifact(artifact_id)
        seen_artifacts: dict[str, dict[str, Any]] = {artifact["id"]: artifact}
        seen_steps: dict[str, dict[str, Any]] = {}
        edges: list[dict[str, Any]] = []
        frontier = [artifact["id"]]
        with self.engine.connect() as c:
            for _ in range(depth):
                if not frontier:
                    break
                producers = (
                    c.execute(
                        sa.select(t.edges).where(
                            t.edges.c.artifact_id.in_(frontier), t.edges.c.direction == "out"
                        )
                    )
                    .mappings()
                    .all()
                )
                # An artifact reused from cache has several producers; the original one
                # (not a cache hit) is the true origin, but every use is lineage.
                step_ids = {p["step_run_id"] for p in producers} - set(seen_steps)
                edges.extend(dict(p) for p in producers)
                if not step_ids:
                    break
                for row in c.execute(
                    sa.select(t.step_runs).where(t.step_runs.c.id.in_(step_ids))
                ).mappings():
                    seen_steps[row["id"]] = dict(row)
                inputs = (
                    c.execute(
                        sa.select(t.edges).where(
                            t.edges.c.step_run_id.in_(step_ids), t.edges.c.direction == "in"
                        )
                    )
                    .mappings()
                    .all()
                )
                edges.extend(dict(i) for i in inputs)
                new = {i["artifact_id"] for i in inputs} - set(seen_artifacts)
                for row in c.execute(
                    sa.select(t.artifacts).where(t.artifacts.c.id.in_(new))
                ).mappings():
                    seen_artifacts[row["id"]] = dict(row)
                frontier = list(new)
        return {"artifacts": seen_artifacts, "step_runs": seen_steps, "edges": edges}

    def step_edges(self, step_run_ids: Iterable[str]) -> list[dict[str, Any]]:
        ids = list(step_run_ids)
        if not ids:
            return []
        with self.engine.connect() as c:
            return [
                dict(r)
                for r in c.execute(
                    sa.select(t.edges).where(t.edges.c.step_run_id.in_(ids))
                ).mappings()
            ]

    def find_run_by_tag(self, key: str, value: str) -> str | None:
        with self.engine.connect() as c:
            found = c.execute(
                sa.select(t.run_tags.c.run_id)
                .where(t.run_tags.c.key == key, t.run_tags.c.value == value)
                .limit(1)
            ).scalar()
        return None if found is None else str(found)

    def step_outputs(self, run_id: str) -> dict[str, dict[str, dict[str, Any]]]:
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(
                    t.step_runs.c.name.label("step_name"),
                    t.edges.c.name.label("edge_name"),
                    t.artifacts,
                )
                .join(t.edges, t.edges.c.step_run_id == t.step_runs.c.id)
                .join(t.artifacts, t.artifacts.c.id == t.edges.c.artifact_id)
                .where(
                    t.step_runs.c.run_id == run_id,
                    t.step_runs.c.status == COMPLETED,
                    t.edges.c.direction == "out",
                )
            ).mappings()
            out: dict[str, dict[str, dict[str, Any]]] = {}
            for row in rows:
                record = dict(row)
                step = record.pop("step_name")
                out.setdefault(step, {})[record.pop("edge_name")] = record
        return out

    # ------------------------------------------------------------------ metrics
    def metrics(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [
                dict(r)
                for r in c.execute(
                    sa.select(t.metrics)
                    .where(t.metrics.c.run_id == run_id)
                    .order_by(t.metrics.c.key, t.metrics.c.step, t.metrics.c.id)
                ).mappings()
            ]

    # ------------------------------------------------------------------ registry, events
    def current_versions(self, refs: Sequence[str]) -> list[str]:
        from conveyor.stores.metadata.aliases import current_versions

        return current_versions(self.engine, refs)

    def emit_event(
        self,
        kind: str,
        subject: str,
        summary: str,
        *,
        links: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> str:
        with self.engine.begin() as c:
            return record_event(c, kind, subject, summary, links=links, data=data)
