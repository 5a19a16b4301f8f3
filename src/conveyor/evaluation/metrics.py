"""`evaluate`: metric sets for classification and regression, per slice, with a bootstrap
confidence interval for the primary metric, recorded in the running step when there is one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor._internal.values import to_python
from conveyor.exceptions import ModelError, did_you_mean

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BINARY = "binary"
MULTICLASS = "multiclass"
REGRESSION = "regression"

# Metrics where a smaller value is better; the gate reads this to compare correctly.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "rmse", "mae", "median_ae", "mse"})

Metric = Callable[[Any, Any, Any, Any], float]


def _binary(name: str) -> Metric:
    from sklearn import metrics as m

    table: dict[str, Metric] = {
        "roc_auc": lambda y, p, pr, c: m.roc_auc_score(y == c[1], pr[:, 1]),
        "pr_auc": lambda y, p, pr, c: m.average_precision_score(y == c[1], pr[:, 1]),
        # As a function of the positive class, so it does not depend on column order.
        "log_loss": lambda y, p, pr, c: m.log_loss(y == c[1], pr[:, 1], labels=[False, True]),
        "brier": lambda y, p, pr, c: m.brier_score_loss(y == c[1], pr[:, 1]),
        "accuracy": lambda y, p, pr, c: m.accuracy_score(y, p),
        "f1": lambda y, p, pr, c: m.f1_score(y, p, pos_label=c[1], zero_division=0),
        "precision": lambda y, p, pr, c: m.precision_score(y, p, pos_label=c[1], zero_division=0),
        "recall": lambda y, p, pr, c: m.recall_score(y, p, pos_label=c[1], zero_division=0),
    }
    return table[name]


def _multiclass(name: str) -> Metric:
    from sklearn import metrics as m

    table: dict[str, Metric] = {
        "accuracy": lambda y, p, pr, c: m.accuracy_score(y, p),
        "f1": lambda y, p, pr, c: m.f1_score(y, p, average="macro", zero_division=0),
        "f1_weighted": lambda y, p, pr, c: m.f1_score(y, p, average="weighted", zero_division=0),
        "precision": lambda y, p, pr, c: m.precision_score(y, p, average="macro", zero_division=0),
        "recall": lambda y, p, pr, c: m.recall_score(y, p, average="macro", zero_division=0),
        "log_loss": lambda y, p, pr, c: m.log_loss(y, pr, labels=c),
        "roc_auc": lambda y, p, pr, c: m.roc_auc_score(
            y, pr, multi_class="ovr", average="macro", labels=c
        ),
    }
    return table[name]


def _regression(name: str) -> Metric:
    import numpy as np
    from sklearn import metrics as m

    table: dict[str, Metric] = {
        "rmse": lambda y, p, pr, c: float(np.sqrt(m.mean_squared_error(y, p))),
        "mse": lambda y, p, pr, c: m.mean_squared_error(y, p),
        "mae": lambda y, p, pr, c: m.mean_absolute_error(y, p),
        "median_ae": lambda y, p, pr, c: m.median_absolute_error(y, p),
        "r2": lambda y, p, pr, c: m.r2_score(y, p),
    }
    return table[name]


METRIC_SETS: dict[str, tuple[str, ...]] = {
    BINARY: ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "f1", "precision", "recall"),
    MULTICLASS: ("accuracy", "f1", "f1_weighted", "precision", "recall", "log_loss", "roc_auc"),
    REGRESSION: ("rmse", "mse", "mae", "median_ae", "r2"),
}
DEFAULT_PRIMARY = {BINARY: "roc_auc", MULTICLASS: "f1", REGRESSION: "rmse"}
_NEEDS_PROBA = {"roc_auc", "pr_auc", "log_loss", "brier"}
_FACTORIES = {BINARY: _binary, MULTICLASS: _multiclass, REGRESSION: _regression}


@dataclass
class EvaluationReport:
    """Metrics of one model on one dataset, overall and per slice.

    Attributes:
        task: ``binary``, ``multiclass`` or ``regression``.
        primary: The metric gates compare first.
        metrics: Overall value of each metric.
        ci: Bootstrap confidence interval of the primary metric: ``{"low", "high",
            "level", "resamples"}``.
        slices: ``{column: {value: {"count": n, metric: value, ...}}}``.
        n_rows: Rows evaluated.
        target: The label column.
        pos_label: The positive class of a binary task (what roc_auc, f1, precision
            and recall score).
        data_hash: Fingerprint of the evaluated rows, so two reports can be shown to
            come from the same holdout.
        data: The evaluated frame itself, kept in memory (never stored) so that a gate
            can score the champion on the same rows.
    """

    task: str
    primary: str
    metrics: dict[str, float]
    ci: dict[str, float] = field(default_factory=dict)
    slices: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    n_rows: int = 0
    target: str | None = None
    pos_label: Any = None
    data_hash: str | None = None
    data: Any = field(default=None, repr=False, compare=False)

    __conveyor_artifact__ = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "primary": self.primary,
            "metrics": dict(self.metrics),
            "ci": dict(self.ci),
            "slices": {k: {v: dict(m) for v, m in s.items()} for k, s in self.slices.items()},
            "n_rows": self.n_rows,
            "target": self.target,
            "pos_label": self.pos_label,
            "data_hash": self.data_hash,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationReport:
        return cls(
            task=str(data["task"]),
            primary=str(data["primary"]),
            metrics={k: float(v) for k, v in data["metrics"].items()},
            ci=dict(data.get("ci", {})),
            slices={k: dict(v) for k, v in data.get("slices", {}).items()},
            n_rows=int(data.get("n_rows", 0)),
            target=data.get("target"),
            pos_label=data.get("pos_label"),
            data_hash=data.get("data_hash"),
        )

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> EvaluationReport:
        return cls.from_dict(json.loads(data))

    def artifact_summary(self) -> dict[str, Any]:
        return {"task": self.task, "primary": self.primary, "metrics": self.metrics}


def _infer_task(model: Any, y: Any) -> str:
    classes = getattr(model, "classes_", None)
    if classes is not None and callable(getattr(model, "predict_proba", None)):
        return BINARY if len(classes) == 2 else MULTICLASS
    return REGRESSION


def _compute(
    names: Sequence[str], task: str, y: Any, pred: Any, proba: Any, classes: Any
) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in names:
        try:
            value = float(_FACTORIES[task](name)(y, pred, proba, classes))
        except ValueError:
            # Undefined on this data (e.g. ROC AUC of a slice with one class).
            value = math.nan
        out[name] = value
    return out


def _bootstrap(
    metric: Metric,
    y: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None,
    classes: Any,
    *,
    resamples: int,
    level: float,
    seed: int,
) -> dict[str, float]:
    import numpy as np

    rng = np.random.default_rng(seed)
    n = len(y)
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        try:
            value = float(metric(y[idx], pred[idx], None if proba is None else proba[idx], classes))
        except ValueError:
            continue
        if not math.isnan(value):
            values.append(value)
    if not values:
        return {}
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(np.asarray(values), [tail, 1.0 - tail])
    return {"low": float(low), "high": float(high), "level": level, "resamples": len(values)}


def evaluate(
    model: Any,
    data: pd.DataFrame,
    *,
    target: str | None = None,
    metrics: Sequence[str] | None = None,
    slices: Sequence[str] = (),
    primary: str | None = None,
    task: str | None = None,
    bootstrap: int = 200,
    ci_level: float = 0.95,
    seed: int = 0,
    log: bool = True,
    pos_label: Any = None,
) -> EvaluationReport:
    """Score `model` on `data`: overall metrics, per-slice metrics, and a bootstrap CI.

    Args:
        model: A conveyor Model (or any object with predict / predict_proba / classes_).
        data: Features plus the label column.
        target: The label column; defaults to the Model's recorded target.
        metrics: Names from the task's metric set; the whole set by default.
        slices: Columns of `data` whose values split the rows (e.g. ``["region"]``).
        primary: The metric gates compare; defaults to the first of `metrics`, or the
            task's default (roc_auc, f1, rmse).
        task: ``binary``, ``multiclass`` or ``regression``; inferred from the model.
        bootstrap: Resamples for the primary metric's confidence interval (0 = none).
        ci_level: Confidence level of that interval.
        seed: Random seed of the resampling.
        log: Inside a running step, record overall metrics and the CI on the step run.
        pos_label: Binary tasks: the positive class (e.g. ``"bad"`` for credit risk);
            roc_auc, pr_auc, brier, f1, precision and recall score it. Defaults to the
            second of the model's ``classes_``.

    Raises:
        ModelError: an unknown metric, target, slice column or positive class (names the
            available ones).
    """
    import numpy as np

    target = target or getattr(model, "target", None)
    columns = [str(c) for c in data.columns]
    if target is None or target not in data.columns:
        raise ModelError(
            f"The label column {target!r} is not in the evaluation data."
            + (did_you_mean(target, columns) if target else "")
            + " Pass target='column', or register the target with "
            "Model.from_fitted(..., target=...)."
        )
    y = np.asarray(data[target])
    task = task or _infer_task(model, y)
    if task not in METRIC_SETS:
        raise ModelError(f"task must be one of {', '.join(METRIC_SETS)}. Got {task!r} instead.")
    available = METRIC_SETS[task]
    names = list(metrics or available)
    for name in names:
        if name not in available:
            raise ModelError(
                f"Unknown {task} metric {name!r}."
                + did_you_mean(name, list(available))
                + " Available: "
                + ", ".join(available)
                + "."
            )
    for column in slices:
        if column not in data.columns:
            raise ModelError(
                f"Slice column {column!r} is not in the evaluation data."
                + did_you_mean(column, columns)
            )
    primary = primary or (names[0] if metrics else DEFAULT_PRIMARY[task])
    if primary not in names:
        names.append(primary)
    features = data.drop(columns=[target])
    pred = np.asarray(model.predict(features))
    proba = None
    classes = None
    if task != REGRESSION:
        classes = np.asarray(model.classes_)
        if any(n in _NEEDS_PROBA for n in names) or (task == MULTICLASS and "roc_auc" in names):
            proba = np.asarray(model.predict_proba(features))
        classes, proba, pos_label = _positive_last(task, classes, proba, pos_label)
    elif pos_label is not None:
        raise ModelError("pos_label applies to binary classification; this task is regression.")
    overall = _compute(names, task, y, pred, proba, classes)
    ci: dict[str, float] = {}
    if bootstrap > 0:
        ci = _bootstrap(
            _FACTORIES[task](primary),
            y,
            pred,
            proba,
            classes,
            resamples=bootstrap,
            level=ci_level,
            seed=seed,
        )
    by_slice: dict[str, dict[str, dict[str, float]]] = {}
    for column in slices:
        groups: dict[str, dict[str, float]] = {}
        for value, mask in _slice_masks(data[column]):
            scores = _compute(
                names, task, y[mask], pred[mask], None if proba is None else proba[mask], classes
            )
            groups[value] = {"count": float(mask.sum()), **scores}
        by_slice[column] = groups
    report = EvaluationReport(
        task=task,
        primary=primary,
        metrics=overall,
        ci=ci,
        slices=by_slice,
        n_rows=len(y),
        target=str(target),
        pos_label=pos_label,
        data_hash=_frame_hash(data),
        data=data,
    )
    if log:
        _log(report)
    return report


def _positive_last(
    task: str, classes: np.ndarray, proba: np.ndarray | None, pos_label: Any
) -> tuple[np.ndarray, np.ndarray | None, Any]:
    """Classes (and probability columns) ordered so the positive class is last.

    The binary metrics score ``classes[1]``; putting `pos_label` there (and swapping the
    probability columns with it) makes every metric score the class asked for.
    """
    if task != BINARY:
        if pos_label is not None:
            raise ModelError(
                f"pos_label applies to binary classification; this task is {task} with "
                f"{len(classes)} classes. Leave pos_label out (metrics are macro-averaged)."
            )
        return classes, proba, None
    if pos_label is None:
        return classes, proba, to_python(classes[1])
    labels = [to_python(c) for c in classes]
    matches = [i for i, c in enumerate(labels) if c == pos_label]
    if not matches:  # "1" for the class 1, or the other way round
        matches = [i for i, c in enumerate(labels) if str(c) == str(pos_label)]
    if len(matches) != 1:
        names = [str(c) for c in labels]
        raise ModelError(
            f"pos_label {pos_label!r} is not a class of the model."
            + did_you_mean(str(pos_label), names)
            + f" Its classes: {', '.join(repr(c) for c in labels)}."
        )
    if matches[0] == 1:
        return classes, proba, labels[1]
    return classes[::-1].copy(), None if proba is None else proba[:, ::-1].copy(), labels[0]


def _frame_hash(data: Any) -> str | None:
    """sha256 of the rows' values (order-sensitive, index ignored); None if not hashable."""
    import hashlib

    import pandas as pd

    try:
        hashed = pd.util.hash_pandas_object(data, index=False).to_numpy()
    except TypeError:
        return None
    columns = ",".join(str(c) for c in data.columns)
    return hashlib.sha256(columns.encode() + hashed.tobytes()).hexdigest()


MISSING_SLICE = "(missing)"


def _slice_masks(column: pd.Series) -> list[tuple[str, np.ndarray]]:
    """(label, row mask) per value of `column`, sorted; missing values form their own slice.

    Values are labelled by their text; None, NaN, NaT and pd.NA all count as missing and
    go to the last slice, `MISSING_SLICE`.
    """
    import numpy as np
    import pandas as pd

    missing = np.asarray(pd.isna(column), dtype=bool)
    text = np.asarray(column.astype(object).where(~missing, "").astype(str), dtype=object)
    present = sorted(set(text[~missing]))
    out = [(str(value), (text == value) & ~missing) for value in present]
    if missing.any():
        label = MISSING_SLICE
        while label in present:  # a real value spelled like the label keeps its own slice
            label += "*"
        out.append((label, missing))
    return out


def _log(report: EvaluationReport) -> None:
    from conveyor.core.context import current_context, log_metrics

    if current_context() is None:
        return
    values = {f"eval.{k}": v for k, v in report.metrics.items() if not math.isnan(v)}
    if report.ci:
        values[f"eval.{report.primary}.ci_low"] = report.ci["low"]
        values[f"eval.{report.primary}.ci_high"] = report.ci["high"]
    for column, groups in report.slices.items():
        for value, scores in groups.items():
            score = scores.get(report.primary, math.nan)
            if not math.isnan(score):
                values[f"eval.{report.primary}.{column}={value}"[:250]] = score
    log_metrics(values)
