"""What runs recorded, side by side: parameters and metrics with cache hits resolved.

A step that was a cache hit did not run, so it logged nothing; what it stands for are the
parameters and metrics of the step run it reused. Every view here reads those through
`cache_source`, so a fully cached run compares equal to the run that computed it, and a
leaderboard ranks it with the metrics it reused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.exceptions import ConfigError, did_you_mean
from conveyor.stores.metadata import tables as t

if TYPE_CHECKING:
    from conveyor.stores.metadata import MetadataStore

_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


@dataclass(frozen=True)
class RunSummary:
    """A run's parameters and metrics, counting what its cache hits reused.

    Attributes:
        run: The run's row.
        params: Run parameters by name, and every step's parameters as ``step.param``;
            a cache hit contributes the parameters of the step run it reused.
        metrics: The last value of each metric the run's steps logged, or reused.
        reused: Metric keys whose value comes from a reused step run.
    """

    run: dict[str, Any]
    params: dict[str, Any]
    metrics: dict[str, float]
    reused: frozenset[str]


def summarize(store: MetadataStore, run_rows: Sequence[Mapping[str, Any]]) -> list[RunSummary]:
    """One `RunSummary` per run row, in the same order (a few queries for all of them)."""
    ids = [str(r["id"]) for r in run_rows]
    steps: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    with store.engine.connect() as c:
        for chunk in _chunks(ids):
            for row in c.execute(
                sa.select(t.step_runs)
                .where(t.step_runs.c.run_id.in_(chunk))
                .order_by(t.step_runs.c.started_at, t.step_runs.c.id)
            ).mappings():
                steps[row["run_id"]].append(dict(row))
        sources = sorted(
            {s["cache_source"] for rows in steps.values() for s in rows if s["cache_hit"]} - {None}
        )
        source_rows: dict[str, dict[str, Any]] = {}
        source_metrics: dict[str, list[Any]] = {}
        for chunk in _chunks(sources):
            for row in c.execute(
                sa.select(t.step_runs.c.id, t.step_runs.c.params).where(t.step_runs.c.id.in_(chunk))
            ).mappings():
                source_rows[row["id"]] = dict(row)
            for metric in c.execute(
                sa.select(t.metrics)
                .where(t.metrics.c.step_run_id.in_(chunk))
                .order_by(t.metrics.c.key, t.metrics.c.step, t.metrics.c.id)
            ).mappings():
                source_metrics.setdefault(metric["step_run_id"], []).append(metric)
        own: dict[str, list[Any]] = {i: [] for i in ids}
        for chunk in _chunks(ids):
            for mine in c.execute(
                sa.select(t.metrics)
                .where(t.metrics.c.run_id.in_(chunk))
                .order_by(t.metrics.c.key, t.metrics.c.step, t.metrics.c.id)
            ).mappings():
                own[mine["run_id"]].append(mine)
    out = []
    for run_row in run_rows:
        run_id = str(run_row["id"])
        params: dict[str, Any] = dict(run_row.get("params") or {})
        metrics: dict[str, float] = {}
        reused: set[str] = set()
        for step in steps[run_id]:
            step_params = step["params"] or {}
            if step["cache_hit"] and step["cache_source"] in source_rows:
                step_params = source_rows[step["cache_source"]]["params"] or step_params
                for metric in source_metrics.get(step["cache_source"], []):
                    metrics[metric["key"]] = metric["value"]
                    reused.add(metric["key"])
            for key, value in step_params.items():
                params[f"{step['name']}.{key}"] = value
        for metric in own[run_id]:
            metrics[metric["key"]] = metric["value"]
            reused.discard(metric["key"])
        out.append(RunSummary(dict(run_row), params, metrics, frozenset(reused)))
    return out


def summarize_run(store: MetadataStore, run_id: str) -> RunSummary:
    """The `RunSummary` of one run (id or unique prefix).

    Raises:
        NotFoundError: no such run.
    """
    return summarize(store, [store.get_run(run_id)])[0]


def compare(
    store: MetadataStore, run_ids: Sequence[str], *, all_rows: bool = False
) -> dict[str, Any]:
    """Parameters and metrics of several runs side by side.

    Returns ``{"runs": [ids], "params": [{"key", "values"}], "metrics": [{"key", "values",
    "deltas"}]}``; `values` line up with `runs`, `deltas` are each value minus the first
    run's. Rows where every run agrees are left out unless `all_rows`. With two runs each
    row also carries ``a`` and ``b`` (and ``delta`` for metrics).

    Raises:
        ConfigError: fewer than two runs.
        NotFoundError: a run id matches nothing.
    """
    if len(run_ids) < 2:
        raise ConfigError(f"Compare needs at least two runs. Got {len(run_ids)} instead.")
    summaries = summarize(store, [store.get_run(r) for r in run_ids])
    params = _rows([s.params for s in summaries], all_rows)
    metrics = _rows([s.metrics for s in summaries], all_rows)
    for row in metrics:
        first = row["values"][0]
        row["deltas"] = [_delta(first, v) for v in row["values"]]
    if len(summaries) == 2:
        for row in [*params, *metrics]:
            row["a"], row["b"] = row["values"]
        for row in metrics:
            row["delta"] = row["deltas"][1]
    return {
        "runs": [s.run["id"] for s in summaries],
        "params": params,
        "metrics": metrics,
        "reused": [sorted(s.reused) for s in summaries],
    }


def _delta(a: Any, b: Any) -> float | None:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return None
    return float(b) - float(a)


def _rows(values: Sequence[Mapping[str, Any]], all_rows: bool) -> list[dict[str, Any]]:
    keys = sorted(set().union(*values))
    rows = []
    for key in keys:
        row = [v.get(key) for v in values]
        if all_rows or any(x != row[0] for x in row[1:]):
            rows.append({"key": key, "values": row})
    return rows


def leaderboard(
    store: MetadataStore,
    *,
    metrics: Sequence[str] = (),
    params: Sequence[str] = (),
    sort: str | None = None,
    limit: int = 20,
    pipeline: str | None = None,
    status: str | None = None,
    scan: int = 10_000,
) -> list[RunSummary]:
    """Runs ranked by a metric or parameter, each with the chosen columns.

    Args:
        metrics: Metric keys to show (``eval.roc_auc``); a run lacking one shows None.
        params: Parameter keys to show: run parameters (``C``) or step ones (``train.C``).
        sort: A metric or parameter key; ``-key`` sorts descending. Runs without a value
            come last. Default: newest first.
        limit: Rows returned.
        scan: Most recent runs considered.

    Raises:
        ConfigError: a column or the sort key names nothing any run recorded (with the
            closest known key).
    """
    rows = store.list_runs(limit=scan, pipeline=pipeline, status=status)
    summaries = summarize(store, rows)
    known_metrics = sorted(set().union(*(s.metrics for s in summaries))) if summaries else []
    known_params = sorted(set().union(*(s.params for s in summaries))) if summaries else []
    for key in metrics:
        _require(key, known_metrics, "metric")
    for key in params:
        _require(key, known_params, "parameter")
    if sort is None:
        return summaries[:limit]
    descending = sort.startswith("-")
    key = sort.lstrip("-+")
    if key not in known_metrics and key not in known_params:
        raise _unknown(key, known_metrics + known_params, "sort key")
    source = "metrics" if key in known_metrics else "params"

    def pick(summary: RunSummary) -> Any:
        return getattr(summary, source).get(key)

    present = [s for s in summaries if _sortable(pick(s))]
    missing = [s for s in summaries if not _sortable(pick(s))]
    try:
        present.sort(key=pick, reverse=descending)
    except TypeError:  # mixed types: order by their text
        present.sort(key=lambda s: str(pick(s)), reverse=descending)
    return (present + missing)[:limit]


def _sortable(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _require(key: str, known: list[str], what: str) -> None:
    if key not in known:
        raise _unknown(key, known, what)


def _unknown(key: str, known: list[str], what: str) -> ConfigError:
    return ConfigError(
        f"No run recorded a {what} {key!r}."
        + did_you_mean(key, known)
        + (f" Known: {', '.join(known[:15])}." if known else " No run recorded any.")
    )


def logged_artifacts(store: MetadataStore, run_id: str) -> list[dict[str, Any]]:
    """Artifacts the run's steps stored with ``log_artifact`` (for a cache hit: those of
    the step run it reused), each row with ``step`` (the step name) added."""
    steps = store.step_runs(run_id)
    owner = {s["cache_source"] if s["cache_hit"] else s["id"]: s["name"] for s in steps}
    owner.pop(None, None)  # type: ignore[call-overload]
    edges = [e for e in store.step_edges(owner) if e["direction"] == "log"]
    out = []
    for edge in edges:
        row = store.get_artifact(edge["artifact_id"])
        out.append({**row, "step": owner[edge["step_run_id"]]})
    return out


__all__ = [
    "RunSummary",
    "compare",
    "leaderboard",
    "logged_artifacts",
    "summarize",
    "summarize_run",
]
