"""Step runs of a run: the list, the DAG, one step's details and why it ran or hit the
cache, its logs, and a run's metric curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.api.queries._page import Page, check_limit, paginate, reading
from conveyor.api.queries._rows import first_line as _first_line
from conveyor.api.queries._rows import resolve_run_id as _resolve_run_id
from conveyor.exceptions import NotFoundError
from conveyor.stores.metadata import tables as t

if TYPE_CHECKING:
    from conveyor.stores.metadata import MetadataStore

MAX_STEPS_PAGE = 5000


@dataclass(frozen=True)
class StepRunSummary:
    """One step execution of a run."""

    id: str
    run_id: str
    name: str
    step: str
    status: str
    attempts: int
    started_at: float | None
    ended_at: float | None
    duration: float | None
    cache_key: str | None
    cache_hit: bool
    cache_source: str | None
    error_type: str | None
    error: str | None


@dataclass(frozen=True)
class StepArtifact:
    """An artifact a step read ("in") or wrote ("out"), under its input/output name."""

    artifact_id: str
    name: str
    direction: str
    type_name: str
    kind: str
    size: int
    content_hash: str
    summary: Mapping[str, Any] | None


@dataclass(frozen=True)
class StepRunDetail:
    """A step run with its params, error, inputs, outputs and why it ran or hit the cache."""

    step: StepRunSummary
    params: Mapping[str, Any] | None
    error: str | None
    traceback: str | None
    host: str | None
    inputs: tuple[StepArtifact, ...]
    outputs: tuple[StepArtifact, ...]
    cache_reason: str


@dataclass(frozen=True)
class StepEdge:
    """Data flowing from one step run to another through an artifact."""

    source: str
    target: str
    artifact_id: str
    name: str


@dataclass(frozen=True)
class RunGraph:
    """The DAG of a run: every step run and the artifact edges between them."""

    run_id: str
    steps: tuple[StepRunSummary, ...]
    edges: tuple[StepEdge, ...]


@dataclass(frozen=True)
class MetricPoint:
    """One logged value of a metric."""

    value: float
    step: int | None
    timestamp: float
    step_run_id: str | None


@dataclass(frozen=True)
class StepLogs:
    """The captured output of one step run."""

    step_run_id: str
    run_id: str
    name: str
    text: str


def _step_summary(row: Any) -> StepRunSummary:
    # Positional: a Row's attribute access costs more than building the summary, and a run
    # page reads thousands of these. The row starts with _STEP_COLUMNS, in that order.
    (
        id_,
        run_id,
        name,
        step,
        status,
        attempts,
        started_at,
        ended_at,
        duration,
        cache_key,
        cache_hit,
        cache_source,
        error_type,
        error,
    ) = tuple(row)[:14]
    return StepRunSummary(
        id_,
        run_id,
        name,
        step,
        status,
        attempts,
        started_at,
        ended_at,
        duration,
        cache_key,
        bool(cache_hit),
        cache_source,
        error_type,
        _first_line(error) if error else error,
    )


_STEP_COLUMNS = [
    t.step_runs.c.id,
    t.step_runs.c.run_id,
    t.step_runs.c.name,
    t.step_runs.c.step,
    t.step_runs.c.status,
    t.step_runs.c.attempts,
    t.step_runs.c.started_at,
    t.step_runs.c.ended_at,
    t.step_runs.c.duration,
    t.step_runs.c.cache_key,
    t.step_runs.c.cache_hit,
    t.step_runs.c.cache_source,
    t.step_runs.c.error_type,
    t.step_runs.c.error,
]


# ---------------------------------------------------------------------------- step runs
def list_step_runs(
    db: MetadataStore,
    run_id: str,
    *,
    status: str | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: int = 500,
) -> Page[StepRunSummary]:
    """The step runs of a run in the order they were planned (ids are time-sortable).

    Raises:
        NotFoundError: no such run.
        QueryError: a bad cursor or a limit outside 1..5000.
    """
    check_limit(limit, MAX_STEPS_PAGE)
    s = t.step_runs
    with reading(db) as c:
        run_id = _resolve_run_id(c, run_id)
        query = sa.select(*_STEP_COLUMNS).where(s.c.run_id == run_id)
        if status:
            query = query.where(s.c.status == status)
        rows, next_cursor, prev_cursor = _paginate_steps(c, query, before, after, limit)
    return Page(tuple(_step_summary(r) for r in rows), next_cursor, prev_cursor, limit)


def _paginate_steps(
    c: sa.Connection, query: sa.Select[Any], before: str | None, after: str | None, limit: int
) -> tuple[list[Any], str | None, str | None]:
    from conveyor.api.queries import _page

    if before is None and after is None and limit > _page.MAX_LIMIT:
        rows = list(c.execute(query.order_by(t.step_runs.c.id).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (_page.encode_cursor([rows[-1].id]) if more else None), None
    return paginate(
        c,
        query,
        order=[(t.step_runs.c.id, False)],
        key=lambda row: (row.id,),
        before=before,
        after=after,
        limit=min(limit, _page.MAX_LIMIT),
    )


def run_graph(db: MetadataStore, run_id: str, *, max_steps: int = MAX_STEPS_PAGE) -> RunGraph:
    """Every step run of a run and the artifact edges between them (for the DAG view).

    Raises:
        NotFoundError: no such run.
    """
    s, e = t.step_runs, t.edges
    with reading(db) as c:
        run_id = _resolve_run_id(c, run_id)
        rows = c.execute(
            sa.select(*_STEP_COLUMNS).where(s.c.run_id == run_id).order_by(s.c.id).limit(max_steps)
        ).all()
        # Every edge of the run in one indexed read, joined here: artifact -> producer.
        run_edges = c.execute(
            sa.select(e.c.step_run_id, e.c.artifact_id, e.c.direction, e.c.name)
            .where(e.c.run_id == run_id)
            .order_by(e.c.id)
        ).all()
    # Plain tuples until the end: Row attribute access and hashing dataclasses dominated
    # this function on a 2,000-step run.
    producers: dict[str, list[str]] = {}
    inputs: list[tuple[str, str, str]] = []
    for step_run_id, artifact_id, direction, name in map(tuple, run_edges):
        if direction == "out":
            producers.setdefault(artifact_id, []).append(step_run_id)
        elif direction == "in":
            inputs.append((step_run_id, artifact_id, name))
    steps = tuple(_step_summary(r) for r in rows)
    known = {step.id for step in steps}
    links = dict.fromkeys(
        (source, target, artifact, name)
        for target, artifact, name in inputs
        if target in known
        for source in producers.get(artifact, ())
        if source in known and source != target
    )
    edges = tuple(StepEdge(*link) for link in links)
    return RunGraph(run_id=run_id, steps=steps, edges=edges)


def _artifact_edges(c: sa.Connection, step_run_id: str) -> list[StepArtifact]:
    a, e = t.artifacts, t.edges
    rows = c.execute(
        sa.select(
            e.c.direction,
            e.c.name,
            a.c.id,
            a.c.type_name,
            a.c.kind,
            a.c.size,
            a.c.content_hash,
            a.c.summary,
        )
        .join(a, a.c.id == e.c.artifact_id)
        .where(e.c.step_run_id == step_run_id)
        .order_by(e.c.id)
    ).all()
    return [
        StepArtifact(
            artifact_id=r.id,
            name=r.name,
            direction=r.direction,
            type_name=r.type_name,
            kind=r.kind,
            size=r.size,
            content_hash=r.content_hash,
            summary=r.summary,
        )
        for r in rows
    ]


def _cache_reason(c: sa.Connection, row: Any, pipeline: str) -> str:
    """Why this step ran or hit the cache, in one sentence."""
    if row.cache_hit:
        source = row.cache_source or "an earlier step run"
        return f"Cache hit: reused the outputs of step run {source} (same cache key)."
    if row.cache_key is None:
        return "Ran without the cache (cache=False on the step, --no-cache, or not reached)."
    s, r = t.step_runs, t.runs
    previous = c.execute(
        sa.select(s.c.cache_key, s.c.run_id)
        .join(r, r.c.id == s.c.run_id)
        .where(
            r.c.pipeline == pipeline,
            s.c.name == row.name,
            s.c.id < row.id,
            s.c.cache_key.is_not(None),
        )
        .order_by(s.c.id.desc())
        .limit(1)
    ).first()
    if previous is None:
        return "Ran: no earlier run of this step in this pipeline."
    if previous.cache_key != row.cache_key:
        return (
            f"Ran: its cache key differs from the previous run's ({previous.run_id}): the "
            "code, params, inputs or materializers changed."
        )
    return (
        f"Ran: the previous run ({previous.run_id}) had the same cache key but left no "
        "completed result to reuse."
    )


def get_step_run(db: MetadataStore, step_run_id: str) -> StepRunDetail:
    """A step run with its inputs, outputs and why it ran or hit the cache.

    Raises:
        NotFoundError: no such step run.
    """
    s = t.step_runs
    with reading(db) as c:
        row = c.execute(
            sa.select(*_STEP_COLUMNS, s.c.params, s.c.traceback, s.c.host, t.runs.c.pipeline)
            .join(t.runs, t.runs.c.id == s.c.run_id)
            .where(s.c.id == step_run_id)
        ).first()
        if row is None:
            raise NotFoundError(f"No step run with id {step_run_id!r}.")
        artifacts = _artifact_edges(c, step_run_id)
        reason = _cache_reason(c, row, row.pipeline)
    return StepRunDetail(
        step=_step_summary(row),
        params=row.params,
        error=row.error,
        traceback=row.traceback,
        host=row.host,
        inputs=tuple(a for a in artifacts if a.direction == "in"),
        outputs=tuple(a for a in artifacts if a.direction == "out"),
        cache_reason=reason,
    )


def find_step_run_id(db: MetadataStore, run_id: str, name: str) -> str:
    """The id of the step run named `name` in `run_id`.

    Raises:
        NotFoundError: no such run or step (the message lists close step names).
    """
    with reading(db) as c:
        run_id = _resolve_run_id(c, run_id)
        found = c.execute(
            sa.select(t.step_runs.c.id).where(
                t.step_runs.c.run_id == run_id, t.step_runs.c.name == name
            )
        ).scalar_one_or_none()
    if found is None:
        return str(db.find_step_run(run_id, name)["id"])
    return str(found)


def step_logs(db: MetadataStore, step_run_id: str) -> StepLogs:
    """The captured stdout/stderr/logging of a step run ('' when it printed nothing).

    Raises:
        NotFoundError: no such step run.
    """
    s = t.step_runs
    with reading(db) as c:
        row = c.execute(
            sa.select(s.c.id, s.c.run_id, s.c.name, t.step_logs.c.text)
            .outerjoin(t.step_logs, t.step_logs.c.step_run_id == s.c.id)
            .where(s.c.id == step_run_id)
        ).first()
    if row is None:
        raise NotFoundError(f"No step run with id {step_run_id!r}.")
    return StepLogs(step_run_id=row.id, run_id=row.run_id, name=row.name, text=row.text or "")


def run_metrics(
    db: MetadataStore, run_id: str, *, keys: Sequence[str] | None = None
) -> dict[str, tuple[MetricPoint, ...]]:
    """Every logged value of each metric of a run, in logging order (the metric curves).

    Raises:
        NotFoundError: no such run.
    """
    m = t.metrics
    with reading(db) as c:
        run_id = _resolve_run_id(c, run_id)
        query = sa.select(m.c.key, m.c.value, m.c.step, m.c.timestamp, m.c.step_run_id).where(
            m.c.run_id == run_id
        )
        if keys is not None:
            query = query.where(m.c.key.in_(list(keys)))
        rows = c.execute(query.order_by(m.c.key, m.c.id)).all()
    out: dict[str, list[MetricPoint]] = {}
    for row in rows:
        out.setdefault(row.key, []).append(
            MetricPoint(
                value=row.value, step=row.step, timestamp=row.timestamp, step_run_id=row.step_run_id
            )
        )
    return {k: tuple(v) for k, v in out.items()}
