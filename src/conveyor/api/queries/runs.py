"""Runs: the list (filters, leaderboard sorts), one run, and run comparison.

The step-run queries live in `conveyor.api.queries.steps` and are re-exported here, so a
run page needs one module.
"""

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
from conveyor.api.queries._rows import first_line as _first_line
from conveyor.api.queries._rows import resolve_run_id as _resolve_run_id
from conveyor.api.queries.steps import (
    MAX_STEPS_PAGE,
    MetricPoint,
    RunGraph,
    StepArtifact,
    StepEdge,
    StepLogs,
    StepRunDetail,
    StepRunSummary,
    find_step_run_id,
    get_step_run,
    list_step_runs,
    run_graph,
    run_metrics,
    step_logs,
)
from conveyor.stores.metadata import tables as t

if TYPE_CHECKING:
    from conveyor.stores.metadata import MetadataStore

# Sort keys of the runs list; "metric:<key>" sorts by the last value of a metric and
# "param:<key>" by a parameter's value.
RUN_SORTS = ("created_at", "duration")
# Stand-ins for a missing sort value so runs without it come last in either direction.
_LOW, _HIGH = -1e300, 1e300
MAX_COMPARE = 50

__all__ = [
    "MAX_COMPARE",
    "MAX_STEPS_PAGE",
    "RUN_SORTS",
    "MetricPoint",
    "RunComparison",
    "RunDetail",
    "RunGraph",
    "RunSummary",
    "StepArtifact",
    "StepEdge",
    "StepLogs",
    "StepRunDetail",
    "StepRunSummary",
    "compare_runs",
    "find_step_run_id",
    "get_run",
    "get_step_run",
    "latest_metrics",
    "list_runs",
    "list_step_runs",
    "metric_keys",
    "pipelines",
    "resolve_run_id",
    "run_graph",
    "run_metrics",
    "split_run_ids",
    "step_logs",
]


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
def _duration(started: float | None, ended: float | None) -> float | None:
    return None if started is None or ended is None else ended - started


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


def _param_segments(
    key: str, descending: bool, filters: Sequence[sa.ColumnElement[bool]], dialect: str
) -> list[Segment]:
    """Runs whose parameter `key` is a number (by value), then those where it is any other
    value (by its text), then runs without it or with null (newest first).

    The value is read from the runs' params JSON, so the query scans the filtered runs
    (no index covers an arbitrary key); the page still costs one query per segment.
    """
    if not key or any(ch in key for ch in '"\\') or any(ord(ch) < 32 for ch in key):
        raise QueryError(
            f"Cannot sort runs by the parameter {key!r}: a parameter name must be non-empty "
            "and free of quotes, backslashes and control characters."
        )
    r = t.runs
    text = r.c.params[key].as_string()
    is_number: sa.ColumnElement[bool]
    if dialect == "postgresql":
        is_number = sa.func.json_typeof(r.c.params[key]) == "number"
    else:
        is_number = sa.func.json_type(r.c.params, f'$."{key}"').in_(("integer", "real"))
    # CASE keeps the cast from seeing non-numbers wherever the database evaluates it.
    number = sa.case((is_number, r.c.params[key].as_float()), else_=None)
    numbers = sa.select(*_RUN_COLUMNS, number.label("sort_value")).where(is_number, *filters)
    others = sa.select(*_RUN_COLUMNS, text.label("sort_value")).where(
        text.is_not(None), sa.not_(is_number), *filters
    )
    absent = sa.select(*_RUN_COLUMNS, sa.null().label("sort_value")).where(text.is_(None), *filters)
    return [
        Segment(
            numbers,
            [(number, descending), (r.c.id, descending)],
            lambda row: (row.sort_value, row.id),
        ),
        Segment(
            others, [(text, descending), (r.c.id, descending)], lambda row: (row.sort_value, row.id)
        ),
        Segment(
            absent,
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
        sort: ``created_at``, ``duration``, ``metric:<key>`` (the run's last value of the
            metric) or ``param:<key>`` (a parameter's value: numbers by value, then other
            values by their text); a leading ``-`` sorts descending. Runs without the
            metric or parameter come last in either direction.
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
        elif sort_key.startswith("param:"):
            rows, next_cursor, prev_cursor = paginate_segments(
                c,
                _param_segments(sort_key[6:], descending, filters, c.dialect.name),
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
                    f"Cannot sort runs by {sort!r}. Use created_at, duration, metric:<key> or "
                    "param:<key>, "
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
    # A skip scan: each step seeks the next name in the (pipeline, ...) index, so the cost
    # grows with the number of pipelines, not of runs (DISTINCT reads every index entry).
    r = t.runs
    names = sa.select(sa.func.min(r.c.pipeline).label("name")).cte("names", recursive=True)
    following = (
        sa.select(sa.func.min(r.c.pipeline)).where(r.c.pipeline > names.c.name).scalar_subquery()
    )
    names = names.union_all(sa.select(following).where(names.c.name.is_not(None)))
    with reading(db) as c:
        return tuple(
            c.execute(
                sa.select(names.c.name).where(names.c.name.is_not(None)).order_by(names.c.name)
            ).scalars()
        )


def metric_keys(
    db: MetadataStore, *, pipeline: str | None = None, recent: int = 200
) -> tuple[str, ...]:
    """Metric keys logged by the `recent` newest runs (of `pipeline`), sorted."""
    newest = sa.select(t.runs.c.id).order_by(t.runs.c.created_at.desc()).limit(recent)
    if pipeline:
        newest = newest.where(t.runs.c.pipeline == pipeline)
    with reading(db) as c:
        # One query: the newest runs as a subquery (no 200 bound ids to send and expand).
        return tuple(
            c.execute(
                sa.select(t.metrics.c.key)
                .where(t.metrics.c.run_id.in_(newest.scalar_subquery()))
                .distinct()
                .order_by(t.metrics.c.key)
            ).scalars()
        )


# ---------------------------------------------------------------------------- compare
def _differing(values: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> tuple[str, ...]:
    missing = object()
    out = []
    for key in keys:
        seen = [repr(v.get(key, missing)) for v in values]
        if len(set(seen)) > 1:
            out.append(key)
    return tuple(out)


def split_run_ids(values: Sequence[str]) -> list[str]:
    """Run ids from query values: each value one id or several separated by commas, so
    ``?runs=A,B``, ``?runs=A&runs=B`` and ``?run=A&run=B`` name the same runs."""
    return [i.strip() for value in values for i in value.split(",") if i.strip()]


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
