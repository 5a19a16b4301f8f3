"""Tuning studies and their trials: trials table, optimization history, importances."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.api.queries._page import DEFAULT_LIMIT, Page, check_limit, paginate, reading
from conveyor.exceptions import NotFoundError, did_you_mean
from conveyor.stores.metadata import tables_registry as r

if TYPE_CHECKING:
    from conveyor.stores.metadata import MetadataStore

MAX_TRIALS = 10_000


@dataclass(frozen=True)
class StudySummary:
    """A tuning study with its trial count and best value."""

    id: str
    name: str
    direction: str
    space: Mapping[str, Any]
    sampler: str | None
    pruner: str | None
    run_id: str | None
    created_at: float
    trials: int
    complete: int
    best_value: float | None


@dataclass(frozen=True)
class Trial:
    """One trial of a study."""

    study: str
    number: int
    params: Mapping[str, Any]
    value: float | None
    state: str
    intermediate: Mapping[str, Any] | None
    error: str | None
    started_at: float
    duration: float
    run_id: str | None
    step_run_id: str | None


@dataclass(frozen=True)
class StudyHistory:
    """The optimization history and parameter importances of a study.

    Attributes:
        numbers: Trial numbers of the completed trials, in order.
        values: Their objective values.
        best: The best value so far after each of them.
        importances: Per parameter, the share of the objective's variance explained by it
            (between-group variance of values binned by the parameter), summing to 1.
    """

    study: str
    direction: str
    numbers: tuple[int, ...]
    values: tuple[float, ...]
    best: tuple[float, ...]
    importances: Mapping[str, float]


def _study_row(c: sa.Connection, name: str) -> Any:
    row = c.execute(sa.select(r.tuning_studies).where(r.tuning_studies.c.name == name)).first()
    if row is None:
        names = list(c.execute(sa.select(r.tuning_studies.c.name).limit(1000)).scalars())
        raise NotFoundError(f"No tuning study named {name!r}." + did_you_mean(name, names))
    return row


def _stats(
    c: sa.Connection, ids: list[str]
) -> dict[str, tuple[int, int, float | None, float | None]]:
    tr = r.tuning_trials
    if not ids:
        return {}
    complete = sa.case((tr.c.state == "complete", 1), else_=0)
    rows = c.execute(
        sa.select(
            tr.c.study_id,
            sa.func.count(),
            sa.func.sum(complete),
            sa.func.min(sa.case((tr.c.state == "complete", tr.c.value))),
            sa.func.max(sa.case((tr.c.state == "complete", tr.c.value))),
        )
        .where(tr.c.study_id.in_(ids))
        .group_by(tr.c.study_id)
    ).all()
    return {row[0]: (int(row[1]), int(row[2] or 0), row[3], row[4]) for row in rows}


def _summary(row: Any, stats: tuple[int, int, float | None, float | None] | None) -> StudySummary:
    count, complete, low, high = stats or (0, 0, None, None)
    return StudySummary(
        id=row.id,
        name=row.name,
        direction=row.direction,
        space=row.space or {},
        sampler=row.sampler,
        pruner=row.pruner,
        run_id=row.run_id,
        created_at=row.created_at,
        trials=count,
        complete=complete,
        best_value=low if row.direction == "minimize" else high,
    )


def list_studies(
    db: MetadataStore,
    *,
    before: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[StudySummary]:
    """Studies, newest first, each with trial counts and best value (two queries).

    Raises:
        QueryError: a bad cursor or limit.
    """
    check_limit(limit)
    s = r.tuning_studies
    with reading(db) as c:
        rows, next_cursor, prev_cursor = paginate(
            c,
            sa.select(s),
            order=[(s.c.created_at, True), (s.c.id, True)],
            key=lambda row: (row.created_at, row.id),
            before=before,
            after=after,
            limit=limit,
        )
        stats = _stats(c, [row.id for row in rows])
    return Page(
        tuple(_summary(row, stats.get(row.id)) for row in rows), next_cursor, prev_cursor, limit
    )


def get_study(db: MetadataStore, name: str) -> StudySummary:
    """One study with its trial counts and best value.

    Raises:
        NotFoundError: no such study.
    """
    with reading(db) as c:
        row = _study_row(c, name)
        stats = _stats(c, [row.id])
    return _summary(row, stats.get(row.id))


def _trial(name: str, row: Any) -> Trial:
    return Trial(
        study=name,
        number=row.number,
        params=row.params or {},
        value=row.value,
        state=row.state,
        intermediate=row.intermediate,
        error=row.error,
        started_at=row.started_at,
        duration=row.duration,
        run_id=row.run_id,
        step_run_id=row.step_run_id,
    )


def list_trials(
    db: MetadataStore,
    name: str,
    *,
    state: str | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[Trial]:
    """Trials of a study by number.

    Raises:
        NotFoundError: no such study.
        QueryError: a bad cursor or limit.
    """
    check_limit(limit)
    tr = r.tuning_trials
    with reading(db) as c:
        study = _study_row(c, name)
        query = sa.select(tr).where(tr.c.study_id == study.id)
        if state is not None:
            query = query.where(tr.c.state == state)
        rows, next_cursor, prev_cursor = paginate(
            c,
            query,
            order=[(tr.c.number, False)],
            key=lambda row: (row.number,),
            before=before,
            after=after,
            limit=limit,
        )
    return Page(tuple(_trial(name, row) for row in rows), next_cursor, prev_cursor, limit)


def _importances(params: list[Mapping[str, Any]], values: list[float]) -> dict[str, float]:
    """Share of variance explained per parameter (binned numeric, grouped categorical)."""
    if len(values) < 2:
        return {}
    mean = sum(values) / len(values)
    total = sum((v - mean) ** 2 for v in values)
    if total == 0:
        return {}
    names = sorted({k for p in params for k in p})
    raw: dict[str, float] = {}
    for name in names:
        keys: list[Any] = []
        column = [p.get(name) for p in params]
        numeric = [x for x in column if isinstance(x, (int, float)) and not isinstance(x, bool)]
        if len(numeric) == len(column) and len(set(numeric)) > 5:
            ordered = sorted(numeric)
            edges = [ordered[int(len(ordered) * q / 5)] for q in range(1, 5)]
            keys = [sum(x > e for e in edges) for x in numeric]
        else:
            keys = [repr(x) for x in column]
        groups: dict[Any, list[float]] = {}
        for key, value in zip(keys, values, strict=True):
            groups.setdefault(key, []).append(value)
        between = sum(len(g) * (sum(g) / len(g) - mean) ** 2 for g in groups.values())
        raw[name] = between / total
    norm = sum(raw.values())
    if norm == 0 or not math.isfinite(norm):
        return dict.fromkeys(raw, 0.0)
    return dict(sorted(((k, v / norm) for k, v in raw.items()), key=lambda kv: -kv[1]))


def study_history(db: MetadataStore, name: str) -> StudyHistory:
    """Optimization history (value and best so far per completed trial) and importances.

    Reads at most 10,000 trials.

    Raises:
        NotFoundError: no such study.
    """
    tr = r.tuning_trials
    with reading(db) as c:
        study = _study_row(c, name)
        rows = c.execute(
            sa.select(tr.c.number, tr.c.value, tr.c.params)
            .where(tr.c.study_id == study.id, tr.c.state == "complete", tr.c.value.is_not(None))
            .order_by(tr.c.number)
            .limit(MAX_TRIALS)
        ).all()
    better = min if study.direction == "minimize" else max
    best: list[float] = []
    for row in rows:
        best.append(row.value if not best else better(best[-1], row.value))
    return StudyHistory(
        study=name,
        direction=study.direction,
        numbers=tuple(row.number for row in rows),
        values=tuple(row.value for row in rows),
        best=tuple(best),
        importances=_importances([row.params or {} for row in rows], [row.value for row in rows]),
    )
