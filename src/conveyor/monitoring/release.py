"""Live comparison of a champion and a challenger over the traffic they scored.

Under a **shadow** release both versions scored the same requests: their rows pair up by
(request id, row), so the comparison reports how often they agree, and, on the labeled
pairs, the paired difference of a metric with a bootstrap confidence interval. Under a
**canary** release each request was scored by one version: the metric is computed on each
version's own labeled rows and the interval comes from resampling each side.

A comparison is stored (``release_comparisons``) and recorded as a ``monitor_report``
event; the `on_challenger_better` trigger reads stored comparisons, and
`promote_challenger` moves the champion alias when the challenger won (through a recorded
gate decision), which the servers pick up by hot reload.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from conveyor._internal.ids import new_id
from conveyor.exceptions import ConfigError, NotFoundError
from conveyor.stores.metadata import events as ev
from conveyor.stores.metadata import tables_events as te

if TYPE_CHECKING:
    from conveyor.monitoring.monitor import Monitor

LOWER_IS_BETTER = frozenset({"log_loss", "brier", "rmse", "mae"})
METRICS = ("accuracy", "roc_auc", "rmse", "mae")
CHALLENGER_BETTER = "challenger_better"
CHAMPION_BETTER = "champion_better"
NO_DIFFERENCE = "no_difference"
INSUFFICIENT = "insufficient_data"


@dataclass(frozen=True)
class ReleaseComparison:
    """Champion vs challenger over one window of logged traffic.

    Attributes:
        mode: ``paired`` (shadow: both scored the same rows) or ``unpaired`` (canary).
        rows: Rows each version scored (champion, challenger).
        paired_rows: Rows both scored.
        agreement: Share of paired rows with the same prediction (None when unpaired).
        labeled: Labeled rows the metric difference is computed on (per side if unpaired).
        champion_value, challenger_value: The metric of each on those rows.
        difference: challenger - champion (positive: the challenger scores higher).
        ci_low, ci_high: Bootstrap interval of the difference at `level`.
        verdict: challenger_better, champion_better, no_difference or insufficient_data.
    """

    model_name: str
    champion_version: int
    challenger_version: int
    window_start: float
    window_end: float
    metric: str
    mode: str
    rows: tuple[int, int]
    paired_rows: int
    agreement: float | None
    labeled: int
    champion_value: float | None
    challenger_value: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    level: float
    margin: float
    verdict: str
    id: str = field(default_factory=new_id)

    def summary(self) -> str:
        head = (
            f"{self.model_name} {self.challenger_version} vs {self.champion_version} "
            f"({self.mode}): "
        )
        parts = []
        if self.agreement is not None:
            parts.append(f"agreement {self.agreement:.1%} on {self.paired_rows} rows")
        if self.difference is not None:
            parts.append(
                f"{self.metric} {self.challenger_value:.4f} vs {self.champion_value:.4f}, "
                f"difference {self.difference:+.4f} "
                f"[{self.ci_low:+.4f}, {self.ci_high:+.4f}] on {self.labeled} labeled rows"
            )
        else:
            parts.append(f"{self.labeled} labeled rows")
        return head + "; ".join(parts) + f" -> {self.verdict}"


def _frames(monitor: Monitor, start: float, end: float) -> dict[int, Any]:
    """Per version: request id, row, prediction and positive-class score of logged rows."""
    import pandas as pd

    from conveyor.monitoring.monitor import _row_in_request, _split_versions
    from conveyor.registry.refs import ModelRef

    name = ModelRef.parse(monitor.model).name
    parts: dict[int, list[Any]] = {}
    for table in monitor._tables(name, start, end):
        for version, sub in _split_versions(table):
            ids = np.asarray(sub.column("_request_id").to_pylist(), dtype=object)
            frame = pd.DataFrame(
                {
                    "request_id": ids.astype(str),
                    "row": _row_in_request(ids),
                    "prediction": sub.column("_prediction").to_pylist(),
                }
            )
            if "_probabilities" in sub.column_names:
                proba = np.asarray(sub.column("_probabilities").to_pylist(), dtype=float)
                frame["score"] = proba[:, -1] if proba.ndim == 2 else proba
            parts.setdefault(version, []).append(frame)
    return {v: pd.concat(frames, ignore_index=True) for v, frames in parts.items()}


class _Side:
    """One version's labeled rows, prepared once so that each resample is cheap."""

    def __init__(self, metric: str, y: np.ndarray, pred: np.ndarray, score: Any) -> None:
        self.metric = metric
        if metric == "accuracy":
            self.values = (y.astype(str) == pred.astype(str)).astype(float)
        elif metric == "roc_auc":
            if score is None:
                raise ConfigError("roc_auc needs probabilities in the prediction log.")
            truth = y.astype(str)
            self.positive = truth == sorted(set(truth))[-1]
            self.values = np.asarray(score, dtype=float)
        elif metric == "rmse":
            self.values = (y.astype(float) - pred.astype(float)) ** 2
        else:
            self.values = np.abs(y.astype(float) - pred.astype(float))

    def __len__(self) -> int:
        return len(self.values)

    def value(self, index: np.ndarray | None = None) -> float | None:
        values = self.values if index is None else self.values[index]
        if self.metric == "roc_auc":
            from sklearn.metrics import roc_auc_score

            positive = self.positive if index is None else self.positive[index]
            if positive.all() or not positive.any():
                return None  # one class only in this resample
            return float(roc_auc_score(positive, values))
        if self.metric == "rmse":
            return float(np.sqrt(values.mean()))
        return float(values.mean())


def compare_release(
    monitor: Monitor,
    champion: int,
    challenger: int,
    start: float,
    end: float,
    *,
    metric: str = "accuracy",
    margin: float = 0.0,
    min_labeled: int = 100,
    level: float = 0.95,
    bootstrap: int = 400,
    seed: int = 0,
) -> ReleaseComparison:
    """Compare `challenger` with `champion` on the traffic they scored in [start, end).

    Raises:
        ConfigError: an unknown metric, or neither version scored anything in the window.
    """
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {', '.join(METRICS)}. Got {metric!r}.")
    from conveyor.registry.refs import ModelRef

    frames = _frames(monitor, start, end)
    a, b = frames.get(champion), frames.get(challenger)
    if a is None or b is None:
        found = ", ".join(str(v) for v in sorted(frames)) or "none"
        raise ConfigError(
            f"Versions {champion} and {challenger} did not both score traffic in this window "
            f"(versions seen: {found}). Serve the challenger with --shadow or --canary first."
        )
    paired = a.merge(b, on=["request_id", "row"], suffixes=("_a", "_b"))
    mode = "paired" if len(paired) else "unpaired"
    agreement = (
        float(np.mean(paired["prediction_a"].astype(str) == paired["prediction_b"].astype(str)))
        if len(paired)
        else None
    )
    labels = monitor.labels_for(set(a["request_id"]) | set(b["request_id"]))
    rng = np.random.default_rng(seed)
    lower = metric in LOWER_IS_BETTER

    def labeled(frame: Any) -> tuple[Any, np.ndarray]:
        keys = [(str(i), int(r)) for i, r in zip(frame["request_id"], frame["row"], strict=True)]
        hit = np.array([k in labels for k in keys], dtype=bool)
        y = np.array([labels[k] for k, h in zip(keys, hit, strict=True) if h], dtype=object)
        return frame[hit], y

    values: tuple[float | None, float | None] = (None, None)
    diffs: list[float] = []
    count = 0
    rounds = bootstrap if metric != "roc_auc" else min(bootstrap, 200)
    if mode == "paired":
        sub, y = labeled(paired)
        count = len(sub)
        if count >= 2:
            side_a = _Side(metric, y, sub["prediction_a"].to_numpy(), sub.get("score_a"))
            side_b = _Side(metric, y, sub["prediction_b"].to_numpy(), sub.get("score_b"))
            values = (side_a.value(), side_b.value())
            for _ in range(rounds):
                i = rng.integers(0, count, count)
                va, vb = side_a.value(i), side_b.value(i)
                if va is not None and vb is not None:
                    diffs.append(vb - va)
    else:
        sub_a, ya = labeled(a)
        sub_b, yb = labeled(b)
        count = min(len(sub_a), len(sub_b))
        if count >= 2:
            side_a = _Side(metric, ya, sub_a["prediction"].to_numpy(), sub_a.get("score"))
            side_b = _Side(metric, yb, sub_b["prediction"].to_numpy(), sub_b.get("score"))
            values = (side_a.value(), side_b.value())
            for _ in range(rounds):
                i = rng.integers(0, len(side_a), len(side_a))
                j = rng.integers(0, len(side_b), len(side_b))
                va, vb = side_a.value(i), side_b.value(j)
                if va is not None and vb is not None:
                    diffs.append(vb - va)
    difference = ci_low = ci_high = None
    verdict = INSUFFICIENT
    if values[0] is not None and values[1] is not None and diffs and count >= min_labeled:
        difference = values[1] - values[0]
        tail = (1 - level) / 2
        ci_low, ci_high = (float(q) for q in np.quantile(diffs, [tail, 1 - tail]))
        if lower:
            better, worse = ci_high < -margin, ci_low > margin
        else:
            better, worse = ci_low > margin, ci_high < -margin
        verdict = CHALLENGER_BETTER if better else CHAMPION_BETTER if worse else NO_DIFFERENCE
    return ReleaseComparison(
        model_name=ModelRef.parse(monitor.model).name,
        champion_version=int(champion),
        challenger_version=int(challenger),
        window_start=start,
        window_end=end,
        metric=metric,
        mode=mode,
        rows=(len(a), len(b)),
        paired_rows=len(paired),
        agreement=agreement,
        labeled=count,
        champion_value=values[0],
        challenger_value=values[1],
        difference=difference,
        ci_low=ci_low,
        ci_high=ci_high,
        level=level,
        margin=margin,
        verdict=verdict,
    )


def store_comparison(monitor: Monitor, comparison: ReleaseComparison) -> str:
    """Record `comparison` (and its event) in the metadata store; its id."""
    data = asdict(comparison)
    with monitor.metadata_store.engine.begin() as c:
        c.execute(
            te.release_comparisons.insert(),
            [
                {
                    "id": comparison.id,
                    "monitor": monitor.name,
                    "model_name": comparison.model_name,
                    "champion_version": comparison.champion_version,
                    "challenger_version": comparison.challenger_version,
                    "window_start": comparison.window_start,
                    "window_end": comparison.window_end,
                    "metric": comparison.metric,
                    "labeled": comparison.labeled,
                    "difference": comparison.difference,
                    "ci_low": comparison.ci_low,
                    "ci_high": comparison.ci_high,
                    "verdict": comparison.verdict,
                    "data": data,
                    "created_at": time.time(),
                }
            ],
        )
        ev.record_event(
            c,
            ev.MONITOR_REPORT,
            monitor.name,
            f"{monitor.name}: {comparison.summary()}",
            links={
                "release_comparison": comparison.id,
                "model_version": f"{comparison.model_name}/{comparison.challenger_version}",
            },
            data={"verdict": comparison.verdict, "difference": comparison.difference},
        )
    return comparison.id


def latest_comparison(engine: sa.Engine, monitor: str) -> dict[str, Any]:
    """The newest stored comparison of `monitor`.

    Raises:
        NotFoundError: none was stored.
    """
    rc = te.release_comparisons
    with engine.connect() as c:
        row = c.execute(
            sa.select(rc).where(rc.c.monitor == monitor).order_by(rc.c.created_at.desc()).limit(1)
        ).first()
    if row is None:
        raise NotFoundError(
            f"Monitor {monitor!r} has no release comparison yet. Run `conveyor monitor compare "
            f"{monitor} --challenger REF` once both versions have scored traffic."
        )
    return dict(row._mapping)


def promote_challenger(
    monitor: Monitor,
    *,
    champion_alias: str = "production",
    comparison_id: str | None = None,
    actor: str | None = None,
) -> str:
    """Move `champion_alias` to the challenger of a won comparison; the decision's id.

    The move goes through a recorded gate decision (primary metric, live difference and
    its interval), so the registry's audit log, the model card and the event log all say
    why the alias moved. Servers following the alias pick the version up by hot reload.

    Raises:
        ConfigError: the comparison did not find the challenger better.
    """
    engine = monitor.metadata_store.engine
    if comparison_id is None:
        row = latest_comparison(engine, monitor.name)
    else:
        rc = te.release_comparisons
        with engine.connect() as c:
            found = c.execute(sa.select(rc).where(rc.c.id == comparison_id)).first()
        if found is None:
            raise NotFoundError(f"No release comparison {comparison_id!r}.")
        row = dict(found._mapping)
    if row["verdict"] != CHALLENGER_BETTER:
        raise ConfigError(
            f"Comparison {row['id']} found {row['verdict']}, not challenger_better: "
            f"{row['data'].get('model_name')}/{row['challenger_version']} is not promoted."
        )
    registry = monitor.registry
    name = row["model_name"]
    reason = (
        f"live comparison {row['id']}: {row['metric']} difference {row['difference']:+.4f} "
        f"[{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] on {row['labeled']} labeled rows"
    )
    decision = registry.record_gate(
        {
            "passed": True,
            "primary": row["metric"],
            "model_name": name,
            "champion": f"{name}@{champion_alias}",
            "champion_version": row["champion_version"],
            "reasons": [reason],
            "basis": "live",
            "comparison": row["id"],
        }
    )
    registry.promote(
        name, int(row["challenger_version"]), champion_alias, reason=reason, actor=actor
    )
    return decision
