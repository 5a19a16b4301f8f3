"""`MonitorReport`: drift, data quality, prediction drift and performance of one window.

A report is built from two Profiles (training and window) plus, when labels arrived, the
labeled predictions; it serializes to JSON (stored in the ``monitor_reports`` row) and
renders to a self-contained HTML page with one chart per feature (inline SVG, no scripts).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from conveyor.monitoring.drift import DriftOptions, DriftResult, FeatureDrift, compare_profiles

if TYPE_CHECKING:
    from conveyor.data.profile import ColumnProfile, Profile

PREDICTION = "_prediction"
SCORE = "_score"
NULL_INCREASE = 0.05
OUT_OF_RANGE_SHARE = 0.01


@dataclass
class MonitorReport:
    """What a monitor found in one window, for one model version.

    Attributes:
        monitor: Monitor name.
        model_name: Registered model name.
        model_version: The version that answered the window's requests.
        window_start: Epoch seconds (inclusive).
        window_end: Epoch seconds (exclusive).
        rows: Predictions in the window.
        drift: Per-feature drift against the training Profile.
        quality: Data-quality issues: ``{"column", "check", "severity", "message", ...}``.
        prediction: Drift of the predictions against the training labels, when known.
        performance: Metrics on the labeled rows (empty before labels arrive).
        reference_metrics: The decay baseline: the metrics of the evaluation report the
            version was registered with, then those recorded with the Model. Empty when
            the version has neither (stated by `baseline_note`; decay cannot be judged).
        baseline_source: Where `reference_metrics` come from (``evaluation report``,
            ``model metrics`` or both), None without a baseline.
        labeled_rows: Rows with a label.
        id: Id of the stored row (set when saved).
        profile_hash: Artifact-store hash of the window Profile (set when saved).
    """

    monitor: str
    model_name: str
    model_version: int
    window_start: float
    window_end: float
    rows: int
    drift: DriftResult
    quality: list[dict[str, Any]] = field(default_factory=list)
    prediction: FeatureDrift | None = None
    performance: dict[str, float] = field(default_factory=dict)
    reference_metrics: dict[str, float] = field(default_factory=dict)
    baseline_source: str | None = None
    labeled_rows: int = 0
    id: str | None = None
    profile_hash: str | None = None
    html_path: str | None = None
    created_at: float = 0.0

    @property
    def drift_share(self) -> float:
        return self.drift.drift_share

    @property
    def dataset_drift(self) -> bool:
        return self.drift.dataset_drift

    @property
    def baseline_note(self) -> str | None:
        """Why performance decay cannot be judged for this version, or None when it can."""
        if self.reference_metrics:
            return None
        return (
            f"no decay baseline: {self.model_name}/{self.model_version} was registered "
            "without metrics, so on_decay cannot fire for it; register versions with "
            "register_model(..., report=evaluate(...)) or Model.from_fitted(..., metrics=...)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "monitor": self.monitor,
            "model": {
                "name": self.model_name,
                "version": self.model_version,
                "ref": f"{self.model_name}/{self.model_version}",
            },
            "window": {"start": self.window_start, "end": self.window_end},
            "rows": self.rows,
            "labeled_rows": self.labeled_rows,
            "drift": self.drift.to_dict(),
            "quality": list(self.quality),
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "performance": dict(self.performance),
            "reference_metrics": dict(self.reference_metrics),
            "baseline_source": self.baseline_source,
            "baseline_note": self.baseline_note,
            "profile_hash": self.profile_hash,
            "html_path": self.html_path,
            "created_at": self.created_at,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, default=_json_default)

    def summary(self) -> str:
        """One line: window, version, rows, drift share and metrics."""
        drifted = ", ".join(self.drift.drifted) or "none"
        text = (
            f"{_stamp(self.window_start)} .. {_stamp(self.window_end)} "
            f"{self.model_name}/{self.model_version}: {self.rows} rows, "
            + (
                f"insufficient data ({self.drift.insufficient})"
                if self.drift.insufficient
                else f"drift share {self.drift_share:.0%} ({drifted})"
            )
        )
        if self.performance:
            text += "; " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(self.performance.items()))
        if not self.reference_metrics:
            text += "; no decay baseline"
        return text

    def to_html(self) -> str:
        from conveyor.monitoring.html import render_report

        return render_report(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitorReport:
        """Rebuild a report from `to_dict` output (as stored in the report row)."""
        drift_data = data["drift"]
        options = DriftOptions.from_dict(drift_data.get("options", {}))
        drift = DriftResult(
            features=[_feature(f) for f in drift_data["features"]],
            drift_share=drift_data["drift_share"],
            dataset_drift=drift_data["dataset_drift"],
            skipped=dict(drift_data.get("skipped", {})),
            options=options,
            insufficient=drift_data.get("insufficient"),
        )
        prediction = data.get("prediction")
        return cls(
            monitor=data["monitor"],
            model_name=data["model"]["name"],
            model_version=data["model"]["version"],
            window_start=data["window"]["start"],
            window_end=data["window"]["end"],
            rows=data["rows"],
            drift=drift,
            quality=list(data.get("quality", [])),
            prediction=None if prediction is None else _feature(prediction),
            performance=dict(data.get("performance", {})),
            reference_metrics=dict(data.get("reference_metrics", {})),
            baseline_source=data.get("baseline_source"),
            labeled_rows=data.get("labeled_rows", 0),
            id=data.get("id"),
            profile_hash=data.get("profile_hash"),
            html_path=data.get("html_path"),
            created_at=data.get("created_at", 0.0),
        )


def _feature(data: Mapping[str, Any]) -> FeatureDrift:
    def num(value: Any) -> float:
        return float("nan") if value is None else float(value)

    return FeatureDrift(
        name=data["name"],
        kind=data["kind"],
        method=data["method"],
        statistic=num(data["statistic"]),
        threshold=data.get("threshold"),
        score=num(data["score"]),
        p_value=num(data["p_value"]),
        q_value=num(data["q_value"]),
        drifted=bool(data["drifted"]),
        n_reference=data.get("n_reference", 0),
        n_current=data.get("n_current", 0),
        stats={k: num(v) for k, v in data.get("stats", {}).items()},
        chart=dict(data.get("chart", {})),
        rank_error=float(data.get("rank_error", 0.0)),
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _stamp(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------------------- quality
def data_quality(
    reference: Profile, current: Profile, columns: Sequence[str]
) -> list[dict[str, Any]]:
    """Missing columns, more nulls, values outside the training range, unseen categories."""
    issues: list[dict[str, Any]] = []
    for name in columns:
        if name not in current.columns or current.columns[name].valid_count == 0:
            if name in current.columns or current.row_count:
                issues.append(
                    {
                        "column": name,
                        "check": "missing_column",
                        "severity": "error",
                        "message": f"{name!r} has no values in the window.",
                    }
                )
            continue
        if name not in reference.columns:
            continue
        ref, cur = reference.columns[name], current.columns[name]
        if cur.null_fraction > ref.null_fraction + NULL_INCREASE:
            issues.append(
                {
                    "column": name,
                    "check": "null_fraction",
                    "severity": "warning",
                    "value": cur.null_fraction,
                    "reference": ref.null_fraction,
                    "message": f"nulls rose from {ref.null_fraction:.1%} to "
                    f"{cur.null_fraction:.1%}.",
                }
            )
        issues.extend(_range(name, ref, cur))
        issues.extend(_unseen(name, ref, cur))
    return issues


def _range(name: str, ref: ColumnProfile, cur: ColumnProfile) -> list[dict[str, Any]]:
    if ref.kind != "numeric" or cur.kind != "numeric" or ref.min is None or ref.max is None:
        return []
    if cur.min is None or cur.max is None or (cur.min >= ref.min and cur.max <= ref.max):
        return []
    below = cur.cdf([ref.min])[0] if cur.min < ref.min else 0.0
    above = 1.0 - cur.cdf([float(np.nextafter(ref.max, math.inf))])[0] if cur.max > ref.max else 0
    share = below + above
    if share < OUT_OF_RANGE_SHARE:
        return []
    return [
        {
            "column": name,
            "check": "out_of_range",
            "severity": "warning",
            "value": share,
            "range": [ref.min, ref.max],
            "message": f"{share:.1%} of values outside the training range "
            f"[{ref.min:.4g}, {ref.max:.4g}] (window {cur.min:.4g} .. {cur.max:.4g}).",
        }
    ]


def _unseen(name: str, ref: ColumnProfile, cur: ColumnProfile) -> list[dict[str, Any]]:
    if ref.kind not in ("categorical", "boolean") or not ref.distinct_exact:
        return []
    known = set(ref.frequencies())
    fresh = {k: v for k, v in cur.frequencies().items() if k not in known}
    if not fresh:
        return []
    share = sum(fresh.values()) / max(cur.valid_count, 1)
    shown = sorted(fresh, key=lambda k: -fresh[k])[:10]
    return [
        {
            "column": name,
            "check": "unseen_categories",
            "severity": "warning",
            "value": share,
            "categories": shown,
            "message": f"{len(fresh)} value(s) never seen in training ({', '.join(shown)}) in "
            f"{share:.1%} of rows.",
        }
    ]


# ---------------------------------------------------------------------------- performance
def performance(
    labels: np.ndarray,
    predictions: np.ndarray,
    scores: np.ndarray | None,
    classes: Sequence[Any] | None,
) -> dict[str, float]:
    """Metrics of the labeled rows: classification when `classes` is given, else regression."""
    from sklearn import metrics as m

    out: dict[str, float] = {}
    if not len(labels):
        return out
    if classes is not None:
        y = np.asarray([str(v) for v in labels], dtype=object)
        p = np.asarray([str(v) for v in predictions], dtype=object)
        out["accuracy"] = float(m.accuracy_score(y, p))
        names = [str(c) for c in classes]
        if len(names) == 2:
            positive = names[1]
            out["f1"] = float(m.f1_score(y, p, pos_label=positive, zero_division=0))
            out["precision"] = float(m.precision_score(y, p, pos_label=positive, zero_division=0))
            out["recall"] = float(m.recall_score(y, p, pos_label=positive, zero_division=0))
            if scores is not None and len(set(y)) == 2:
                out["roc_auc"] = float(m.roc_auc_score(y == positive, scores))
                out["brier"] = float(m.brier_score_loss(y == positive, scores))
        else:
            out["f1"] = float(m.f1_score(y, p, average="macro", zero_division=0))
        return out
    y_true = np.asarray(labels, dtype=float)
    y_pred = np.asarray(predictions, dtype=float)
    out["rmse"] = float(math.sqrt(m.mean_squared_error(y_true, y_pred)))
    out["mae"] = float(m.mean_absolute_error(y_true, y_pred))
    return out


# ---------------------------------------------------------------------------- baseline
def decay_baseline(
    recorded: Mapping[str, Any] | None, evaluation: Mapping[str, Any] | None
) -> tuple[dict[str, float], str | None]:
    """The metrics a window's performance is compared with, and where they come from.

    Args:
        recorded: Metrics recorded with the Model (``Model.from_fitted(..., metrics=)``).
        evaluation: The report the version was registered with
            (``register_model(..., report=)``), e.g. `EvaluationReport.to_dict()`.

    Returns:
        ``(metrics, source)``. The evaluation report measured the version on held-out
        rows, as monitored traffic is, so its metrics win; recorded metrics fill in the
        rest. ``({}, None)`` when there is neither.
    """
    found = dict(_finite((evaluation or {}).get("metrics")))
    recorded_only = {k: v for k, v in _finite(recorded).items() if k not in found}
    sources = [
        name
        for name, part in (("evaluation report", found), ("model metrics", recorded_only))
        if part
    ]
    found.update(recorded_only)
    return found, (" + ".join(sources) or None)


def _finite(metrics: Any) -> dict[str, float]:
    if not isinstance(metrics, Mapping):
        return {}
    out = {}
    for name, value in metrics.items():
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if numeric and math.isfinite(value):
            out[str(name)] = float(value)
    return out


# ---------------------------------------------------------------------------- building
def build_report(
    *,
    monitor: str,
    model_name: str,
    model_version: int,
    window_start: float,
    window_end: float,
    reference: Profile,
    current: Profile,
    features: Sequence[str],
    target: str | None = None,
    options: DriftOptions | None = None,
    reference_metrics: Mapping[str, float] | None = None,
    baseline_source: str | None = None,
    performance_metrics: Mapping[str, float] | None = None,
    labeled_rows: int = 0,
) -> MonitorReport:
    """Compare a window Profile with the training Profile (no rows are read here)."""
    from conveyor.data.profile import Profile

    drift = compare_profiles(reference, current, features, options)
    prediction = None
    if target is not None and target in reference.columns and PREDICTION in current.columns:
        renamed = Profile({target: current.columns[PREDICTION]}, current.row_count)
        result = compare_profiles(reference, renamed, [target], options)
        if result.features:
            prediction = result.features[0]
            prediction.name = PREDICTION
    return MonitorReport(
        monitor=monitor,
        model_name=model_name,
        model_version=model_version,
        window_start=window_start,
        window_end=window_end,
        rows=current.row_count,
        drift=drift,
        quality=data_quality(reference, current, features),
        prediction=prediction,
        performance=dict(performance_metrics or {}),
        reference_metrics={k: float(v) for k, v in (reference_metrics or {}).items()},
        baseline_source=baseline_source if reference_metrics else None,
        labeled_rows=labeled_rows,
    )


__all__ = ["MonitorReport", "build_report", "data_quality", "decay_baseline", "performance"]
