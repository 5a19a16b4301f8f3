"""Runs, step runs, logs, metrics and run comparison."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.api.queries._page import (
    DEFAULT_LIMIT,
    Page,
    QueryError,
    Segment,
    check_limit,
    paginate,
    paginate_segments,
    reading,
)
from conveyor.exceptions import NotFoundError
from conveyor.stores.metadata import tables as t

if TYPE_CHECKING:
    from conveyor.stores.metadata import MetadataStore

# Sort keys of the runs list; "metric:<key>" sorts by the last value of a metric.
RUN_SORTS = ("created_at", "duration")
# Stand-ins for a missing sort value so runs without it come last in either direction.
_LOW, _HIGH = -1e300, 1e300
MAX_COMPARE = 50
MAX_STEPS_PAGE = 5000


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs list (and the head of a run page)."""

    id: str
    pipeline: str
    status: str
    created_at: float
    started_at: float | None
    ended_at: float | None
    duration: float | None
    code_sha: str | None
    code_dirty: bool | None
    executor: str | None
    trigger: Mapping[str, Any] | None
    params: Mapping[str, Any]
    tags: Mapping[str, str]
    metrics: Mapping[str, float]
    error: str | None


@dataclass(frozen=True)
class RunDetail:
    """A run with its outputs, every metric's last value and its step counts by status."""

    run: RunSummary
    outputs: Mapping[str, Any] | None
    host: str | None
    step_counts: Mapping[str, int]
    cached_steps: int


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


@dataclass(frozen=True)
class RunComparison:
    """N runs side by side.

    Attributes:
        runs: The runs in the order asked for, each with every metric's last value.
        param_keys: Union of parameter names, sorted.
        metric_keys: Union of metric keys, sorted.
        differing_params: Parameter names whose values are not all equal.
        differing_metrics: Metric keys whose values are not all equal.
        data: Per run id, the dataset versions and sources its steps read.
        cache_keys: Per step name, the cache key of that step in each run (None if absent).
        differing_steps: Step names whose cache keys are not all equal.
    """

    runs: tuple[RunSummary, ...]
    param_keys: tuple[str, ...]
    metric_keys: tuple[str, ...]
    differing_params: tuple[str, ...]
    differing_metrics: tuple[str, ...]
    data: Mapping[str, tuple[Mapping[str, Any], ...]]
    cache_keys: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)
    differing_steps: tuple[str, ...] = ()


# ---------------------------------------------------------------------------- helpers
def _first_line(text: str | None) -> str | None:
    if not text:
        return text
    return text.strip().splitlines()[0][:500] if text.strip() else text


def _duration(started: float | None, ended: float | None) -> float | None:
    return None if started is None or ended is None else ended - started


def _resolve_run_id(c: sa.Connection, run_id: str) -> str:
    found = c.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)).scalar_one_or_none()
    if found is None and len(run_id) >= 6:
        rows = c.execute(
            sa.select(t.runs.c.id).where(t.runs.c.id.like(run_id.upper() + "%")).limit(2)
        ).all()
        found = rows[0][0] if len(rows) == 1 else None
    if found is None:
        raise NotFoundError(f"No run with id {run_id!r}. List runs with `conveyor runs list`.")
    return str(found)


def _tags_of(c: sa.Connection, run_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {r: {} for r in run_ids}
    if run_ids:
        for row in c.execute(
            sa.select(t.run_tags.c.run_id, t.run_tags.c.key, t.run_tags.c.value).where(
                t.run_tags.c.run_id.in_(list(run_ids))
            )
        ):
            out[row.run_id][row.key] = row.value
    return out


def latest_metrics(
    c: sa.Connection, run_ids: Sequence[str], keys: Sequence[str] | None = None
) -> dict[str, dict[str, float]]:
    """The last logged value of each metric (or of `keys`) of each run, in one query."""
    out: dict[str, dict[str, float]] = {r: {} for r in run_ids}
    if not run_ids or (keys is not None and not keys):
        return out
    m = t.metrics
    inner = sa.select(sa.func.max(m.c.id)).where(m.c.run_id.in_(list(run_ids)))
    if keys is not None:
        inner = inner.where(m.c.key.in_(list(keys)))
    inner = inner.group_by(m.c.run_id, m.c.key)
    for row in c.execute(sa.select(m.c.run_id, m.c.key, m.c.value).where(m.c.id.in_(inner))):
        out[row.run_id][row.key] = row.value
    return out


def _summary(
    row: Any, tags: Mapping[str, str], metrics: Mapping[str, float], *, full_error: bool = False
) -> RunSummary:
    return RunSummary(
        id=row.id,
        pipeline=row.pipeline,
        status=row.status,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        duration=_duration(row.started_at, row.ended_at),
        code_sha=row.code_sha,
        code_dirty=row.code_dirty,
        executor=row.executor,
        trigger=row.trigger,
        params=row.params or {},
        tags=tags,
        metrics=metrics,
        error=row.error if full_error else _first_line(row.error),
    )


_RUN_COLUMNS = [
    t.runs.c.id,
    t.runs.c.pipeline,
    t.runs.c.status,
    t.runs.c.created_at,
    t.runs.c.started_at,
    t.runs.c.ended_at,
    t.runs.c.code_sha,
    t.runs.c.code_dirty,
    t.runs.c.executor,
    t.runs.c.trigger,
    t.runs.c.params,
    t.runs.c.error,
]


def _step_summary(row: Any) -> StepRunSummary:
    return StepRunSummary(
        id=row.id,
        run_id=row.run_id,
        name=row.name,
        step=row.step,
        status=row.status,
        attempts=row.attempts,
        started_at=row.started_at,
        ended_at=row.ended_at,
        duration=row.duration,
        cache_key=row.cache_key,
        cache_hit=bool(row.cache_hit),
        cache_source=row.cache_source,
        error_type=row.error_type,
        error=_first_line(row.error),
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


def _run_filters(
    *,
    pipeline: str | None,
    status: str | None,
    trigger: str | None,
    tags: Mapping[str, str] | None,
    created_after: float | None,
    created_before: float | None,
    search: str | None,
) -> list[sa.ColumnElement[bool]]:
    r = t.runs
    where: list[sa.ColumnElement[bool]] = []
    if pipeline:
        where.append(r.c.pipeline == pipeline)
    if status:
        where.append(r.c.status == status)
    if trigger:
        kind = r.c.trigger["kind"].as_string()
        # A run started by hand stores JSON null (or SQL NULL): its kind extracts as NULL.
        where.append(kind.is_(None) if trigger == "none" else kind == trigger)
    for key, wanted in (tags or {}).items():
        where.append(
            sa.exists().where(
                t.run_tags.c.run_id == r.c.id, t.run_tags.c.key == key, t.run_tags.c.value == wanted
            )
        )
    if created_after is not None:
        where.append(r.c.created_at >= created_after)
    if created_before is not None:
        where.append(r.c.created_at < created_before)
    if search:
        pattern = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(
            sa.or_(
                r.c.id.like(pattern.upper() + "%", escape="\\"),
                r.c.pipeline.like("%" + pattern + "%", escape="\\"),
            )
        )
    return where


def _metric_segments(
    metric: str, descending: bool, filters: Sequence[sa.ColumnElement[bool]]
) -> list[Segment]:
    """Runs with the metric by its last value, then runs without it (newest first).

    The first part walks the metric's (key, value, run_id) index in value order and keeps
    a row only when no later value of the same key exists for its run, so a page reads
    about as many index entries as it shows, however many runs match.
    """
    r = t.runs
    m = t.metrics.alias("m")
    later = t.metrics.alias("later")
    newest = ~sa.exists().where(
        later.c.run_id == m.c.run_id, later.c.key == m.c.key, later.c.id > m.c.id
    )
    scored = (
        sa.select(*_RUN_COLUMNS, m.c.value.label("sort_value"))
        .select_from(m.join(r, r.c.id == m.c.run_id))
        .where(m.c.key == metric, newest, *filters)
    )
    unscored = sa.select(*_RUN_COLUMNS, sa.null().label("sort_value")).where(
        ~sa.exists().where(t.metrics.c.run_id == r.c.id, t.metrics.c.key == metric), *filters
    )
    return [
        Segment(
            scored,
            [(m.c.value, descending), (m.c.run_id, descending)],
            lambda row: (row.sort_value, row.id),
        ),
        Segment(
            unscored,
            [(r.c.created_at, True), (r.c.id, True)],
            lambda row: (row.created_at, row.id),
        ),
    ]


# ---------------------------------------------------------------------------- runs
def list_runs(
    db: MetadataStore,
    *,
    pipeline: str | None = None,
    status: str | None = None,
    trigger: str | None = None,
    tags: Mapping[str, str] | None = None,
    created_after: float | None = None,
    created_before: float | None = None,
    search: str | None = None,
    sort: str = "-created_at",
    metrics: Sequence[str] = (),
    before: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[RunSummary]:
    """Runs matching the filters, newest first unless `sort` says otherwise.

    Args:
        db: The metadata store.
        pipeline: Only runs of this pipeline.
        status: Only runs in this status (running, completed, failed, interrupted).
        trigger: Only runs started by this trigger kind (``schedule``, ``drift``, ...);
            ``none`` for runs started by hand.
        tags: Only runs carrying every one of these tag values.
        created_after: Only runs created at or after this epoch time.
        created_before: Only runs created before this epoch time.
        search: Only runs whose id starts with it or whose pipeline name contains it.
        sort: ``created_at``, ``duration`` or ``metric:<key>``; a leading ``-`` sorts
            descending.
        metrics: Metric keys whose last value each row carries (the leaderboard columns);
            a metric sort key is included automatically.
        before: Cursor for the next page.
        after: Cursor for the previous page.
        limit: Page size (1..1000).

    Raises:
        QueryError: an unknown sort key, a bad cursor or limit.
    """
    check_limit(limit)
    descending = sort.startswith("-")
    sort_key = sort.lstrip("-")
    r = t.runs
    keys = list(dict.fromkeys(metrics))
    filters = _run_filters(
        pipeline=pipeline,
        status=status,
        trigger=trigger,
        tags=tags,
        created_after=created_after,
        created_before=created_before,
        search=search,
    )
    with reading(db) as c:
        if sort_key.startswith("metric:") and len(sort_key) > 7:
            metric = sort_key[7:]
            if metric not in keys:
                keys.append(metric)
            rows, next_cursor, prev_cursor = paginate_segments(
                c,
                _metric_segments(metric, descending, filters),
                before=before,
                after=after,
                limit=limit,
            )
        else:
            sort_column: sa.ColumnElement[Any]
            if sort_key == "created_at":
                sort_column = r.c.created_at
            elif sort_key == "duration":
                sort_column = sa.func.coalesce(
                    r.c.ended_at - r.c.started_at, _LOW if descending else _HIGH
                )
            else:
                raise QueryError(
                    f"Cannot sort runs by {sort!r}. Use created_at, duration or metric:<key>, "
                    "with a leading '-' for descending."
                )
            query = sa.select(*_RUN_COLUMNS, sort_column.label("sort_value")).where(*filters)
            rows, next_cursor, prev_cursor = paginate(
                c,
                query,
                order=[(sort_column, descending), (r.c.id, descending)],
                key=lambda row: (row.sort_value, row.id),
                before=before,
                after=after,
                limit=limit,
            )
        ids = [row.id for row in rows]
        tag_map = _tags_of(c, ids)
        metric_map = latest_metrics(c, ids, keys)
    items = tuple(_summary(row, tag_map[row.id], metric_map[row.id]) for row in rows)
    return Page(items, next_cursor, prev_cursor, limit)


def get_run(db: MetadataStore, run_id: str) -> RunDetail:
    """One run (a unique id prefix of 6+ characters works) with every metric's last value.

    Raises:
        NotFoundError: no run matches.
    """
    with reading(db) as c:
        run_id = _resolve_run_id(c, run_id)
        row = c.execute(
            sa.select(*_RUN_COLUMNS, t.runs.c.outputs, t.runs.c.host).where(t.runs.c.id == run_id)
        ).one()
        tags = _tags_of(c, [run_id])[run_id]
        metrics = latest_metrics(c, [run_id])[run_id]
        counts: dict[str, int] = {}
        cached = 0
        s = t.step_runs
        for status, hit, n in c.execute(
            sa.select(s.c.status, s.c.cache_hit, sa.func.count())
            .where(s.c.run_id == run_id)
            .group_by(s.c.status, s.c.cache_hit)
        ):
            counts[status] = counts.get(status, 0) + int(n)
            cached += int(n) if hit else 0
    return RunDetail(
        run=_summary(row, tags, metrics, full_error=True),
        outputs=row.outputs,
        host=row.host,
        step_counts=counts,
        cached_steps=cached,
    )


def resolve_run_id(db: MetadataStore, run_id: str) -> str:
    """The full id of a run given its id or a unique prefix of 6+ characters.

    Raises:
        NotFoundError: no run matches.
    """
    with reading(db) as c:
        return _resolve_run_id(c, run_id)


def pipelines(db: MetadataStore) -> tuple[str, ...]:
    """Names of the pipelines that have runs, sorted (for the filter of the runs list)."""
    with reading(db) as c:
        return tuple(
            c.execute(sa.select(t.runs.c.pipeline).distinct().order_by(t.runs.c.pipeline)).scalars()
        )


def metric_keys(
    db: MetadataStore, *, pipeline: str | None = None, recent: int = 200
) -> tuple[str, ...]:
    """Metric keys logged by the `recent` newest runs (of `pipeline`), sorted."""
    newest = sa.select(t.runs.c.id).order_by(t.runs.c.created_at.desc()).limit(recent)
    if pipeline:
        newest = newest.where(t.runs.c.pipeline == pipeline)
    with reading(db) as c:
        ids = list(c.execute(newest).scalars())
        if not ids:
            return ()
        return tuple(
            c.execute(
                sa.select(t.metrics.c.key)
                .where(t.metrics.c.run_id.in_(ids))
                .distinct()
                .order_by(t.metrics.c.key)
            ).scalars()
        )


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
    producers: dict[str, list[str]] = {}
    for edge in run_edges:
        if edge.direction == "out":
            producers.setdefault(edge.artifact_id, []).append(edge.step_run_id)
    links = [
        (source, edge.step_run_id, edge.artifact_id, edge.name)
        for edge in run_edges
        if edge.direction == "in"
        for source in producers.get(edge.artifact_id, ())
    ]
    steps = tuple(_step_summary(r) for r in rows)
    known = {step.id for step in steps}
    edges = tuple(
        dict.fromkeys(
            StepEdge(source=source, target=target, artifact_id=artifact, name=name)
            for source, target, artifact, name in links
            if source in known and target in known and source != target
        )
    )
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


# ---------------------------------------------------------------------------- compare
def _differing(values: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> tuple[str, ...]:
    missing = object()
    out = []
    for key in keys:
        seen = [repr(v.get(key, missing)) for v in values]
        if len(set(seen)) > 1:
            out.append(key)
    return tuple(out)


def compare_runs(db: MetadataStore, run_ids: Sequence[str]) -> RunComparison:
    """Params, metrics, code versions, data versions and cache keys of N runs side by side.

    Raises:
        QueryError: no run ids, or more than 50.
        NotFoundError: one of the runs does not exist.
    """
    ids = list(dict.fromkeys(run_ids))
    if not ids or len(ids) > MAX_COMPARE:
        raise QueryError(f"Compare needs 1..{MAX_COMPARE} run ids. Got {len(ids)}.")
    s = t.step_runs
    with reading(db) as c:
        rows = {r.id: r for r in c.execute(sa.select(*_RUN_COLUMNS).where(t.runs.c.id.in_(ids)))}
        if len(rows) < len(ids):
            ids = [_resolve_run_id(c, i) for i in ids]
            rows = {
                r.id: r for r in c.execute(sa.select(*_RUN_COLUMNS).where(t.runs.c.id.in_(ids)))
            }
        tag_map = _tags_of(c, ids)
        metric_map = latest_metrics(c, ids)
        steps = c.execute(
            sa.select(s.c.run_id, s.c.name, s.c.cache_key).where(s.c.run_id.in_(ids))
        ).all()
        readers = c.execute(
            sa.select(s.c.run_id, s.c.name, s.c.params).where(
                s.c.run_id.in_(ids),
                sa.or_(
                    s.c.params["dataset"].as_string().is_not(None),
                    s.c.params["data_sources"].as_string().is_not(None),
                ),
            )
        ).all()
    runs = tuple(_summary(rows[i], tag_map[i], metric_map[i]) for i in ids)
    param_keys = tuple(sorted({k for run in runs for k in run.params}))
    metric_names = tuple(sorted({k for run in runs for k in run.metrics}))
    cache: dict[str, dict[str, str | None]] = {}
    for step in steps:
        cache.setdefault(step.name, dict.fromkeys(ids))[step.run_id] = step.cache_key
    from conveyor.registry.registry import _data_read

    data: dict[str, list[dict[str, Any]]] = {}
    for reader in readers:
        data.setdefault(reader.run_id, [])
    for run_id in data:
        data[run_id] = _data_read([dict(r._mapping) for r in readers if r.run_id == run_id])
    return RunComparison(
        runs=runs,
        param_keys=param_keys,
        metric_keys=metric_names,
        differing_params=_differing([r.params for r in runs], param_keys),
        differing_metrics=_differing([r.metrics for r in runs], metric_names),
        data={i: tuple(data.get(i, ())) for i in ids},
        cache_keys=dict(sorted(cache.items())),
        differing_steps=tuple(
            sorted(name for name, keys in cache.items() if len(set(keys.values())) > 1)
        ),
    )
