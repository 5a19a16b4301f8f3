"""Drift between two Profiles: per-feature tests, false discovery control, dataset share.

Everything here reads sketches, never rows: the reference is the training Profile stored
with the model version and the current side is the Profile of a monitoring window, so a
drift report costs the same for a thousand rows as for a billion.

Choice of test (``method="auto"``):

=============  ======================  =========================================
column kind    window <= small_sample  larger window
=============  ======================  =========================================
numeric        Kolmogorov-Smirnov      Wasserstein distance / reference std
categorical    chi-square              Jensen-Shannon distance
=============  ======================  =========================================

Every feature also gets a p-value (KS for numeric, chi-square for categorical) and the
p-values of all tested features go through Benjamini-Hochberg, so the expected share of
false alarms among flagged features stays at ``alpha``. Small windows are flagged on the
adjusted p-value alone. Large windows must in addition show a distance above the threshold:
with a hundred thousand rows a test finds differences nobody would retrain for, so the
distance says whether the shift matters and the test says whether it is real.

Sketch error: the quantile sketch is exact up to 2,048 values and otherwise answers ranks
within ``quantile_error`` (99 %). We treat a sketch as a sample of at most
``(1.63 / error)^2`` values -- the size whose KS confidence band has the same width -- so
the KS p-value never claims more precision than the sketch holds. Category counts are
exact while a column has fewer than ~768 distinct values. Each feature states the bound
(``rank_error``, 0 when exact) and the sketches are deterministic, so the same two tables
give the same scores and verdicts in every process.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from conveyor.exceptions import ConfigError

if TYPE_CHECKING:
    from conveyor.data.profile import ColumnProfile, Profile

NumericMethod = Literal["auto", "ks", "wasserstein", "psi", "jensenshannon"]
CategoricalMethod = Literal["auto", "chi2", "jensenshannon", "psi"]

NUMERIC_METHODS = ("auto", "ks", "wasserstein", "psi", "jensenshannon")
CATEGORICAL_METHODS = ("auto", "chi2", "jensenshannon", "psi")
OTHER = "(other)"
_KS_BAND = 1.63  # 99 % two-sided Kolmogorov band: sqrt(-ln(0.005) / 2) * sqrt(2)
_HIST_BINS = 20
_EPS = 1e-4


@dataclass(frozen=True)
class DriftOptions:
    """How drift is decided.

    Attributes:
        alpha: False discovery rate across features (Benjamini-Hochberg).
        small_sample: Windows with at most this many values in a column use the
            statistical test alone (KS / chi-square); larger ones also need a distance
            above its threshold.
        numeric_method: ``auto``, ``ks``, ``wasserstein``, ``psi`` or ``jensenshannon``.
        categorical_method: ``auto``, ``chi2``, ``jensenshannon`` or ``psi``.
        wasserstein_threshold: Wasserstein-1 distance in reference standard deviations.
        jensenshannon_threshold: Jensen-Shannon distance (base 2, in [0, 1]).
        psi_threshold: Population stability index (0.1 moderate, 0.2 major shift).
        feature_thresholds: Per-feature distance thresholds overriding the defaults.
        drift_share: Share of drifted features at which the dataset counts as drifted.
        grid: Quantiles of each sketch used to compare distributions.
        min_rows: A window with fewer rows gets the verdict "insufficient data" instead of
            drift / no drift: no feature is tested and nothing counts as drifted.
    """

    alpha: float = 0.05
    small_sample: int = 1000
    numeric_method: NumericMethod = "auto"
    categorical_method: CategoricalMethod = "auto"
    wasserstein_threshold: float = 0.05
    jensenshannon_threshold: float = 0.05
    psi_threshold: float = 0.2
    feature_thresholds: Mapping[str, float] = field(default_factory=dict)
    drift_share: float = 0.5
    grid: int = 100
    min_rows: int = 100

    def __post_init__(self) -> None:
        if not isinstance(self.min_rows, int) or self.min_rows < 0:
            raise ConfigError(
                "The 'min_rows' parameter of DriftOptions must be an int >= 0. Got "
                f"{self.min_rows!r} instead."
            )
        if not 0 < self.alpha < 1:
            raise ConfigError(
                f"The 'alpha' parameter of DriftOptions must be in (0, 1). Got {self.alpha!r} "
                "instead."
            )
        if self.numeric_method not in NUMERIC_METHODS:
            raise ConfigError(
                "The 'numeric_method' parameter of DriftOptions must be one of "
                f"{', '.join(NUMERIC_METHODS)}. Got {self.numeric_method!r} instead."
            )
        if self.categorical_method not in CATEGORICAL_METHODS:
            raise ConfigError(
                "The 'categorical_method' parameter of DriftOptions must be one of "
                f"{', '.join(CATEGORICAL_METHODS)}. Got {self.categorical_method!r} instead."
            )
        if not 0 < self.drift_share <= 1:
            raise ConfigError(
                "The 'drift_share' parameter of DriftOptions must be in (0, 1]. Got "
                f"{self.drift_share!r} instead."
            )
        if self.small_sample < 0 or self.grid < 10:
            raise ConfigError(
                "DriftOptions needs small_sample >= 0 and grid >= 10. Got "
                f"{self.small_sample!r} and {self.grid!r} instead."
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "small_sample": self.small_sample,
            "numeric_method": self.numeric_method,
            "categorical_method": self.categorical_method,
            "wasserstein_threshold": self.wasserstein_threshold,
            "jensenshannon_threshold": self.jensenshannon_threshold,
            "psi_threshold": self.psi_threshold,
            "feature_thresholds": dict(self.feature_thresholds),
            "drift_share": self.drift_share,
            "grid": self.grid,
            "min_rows": self.min_rows,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftOptions:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class FeatureDrift:
    """Drift of one column.

    Attributes:
        name: Column name.
        kind: ``numeric`` or ``categorical``.
        method: The deciding test: ks, chi2, wasserstein, jensenshannon or psi.
        statistic: Value of the deciding statistic.
        threshold: Its threshold (None for a pure test, decided by ``q_value``).
        score: A distance comparable across windows (Wasserstein in reference stds for
            numeric columns, Jensen-Shannon for categorical ones); per-feature triggers
            compare it.
        p_value: p-value of the KS / chi-square test.
        q_value: Benjamini-Hochberg adjusted p-value.
        drifted: The decision.
        n_reference: Non-null values behind the reference.
        n_current: Non-null values in the window.
        stats: Every statistic computed (ks, wasserstein, psi, jensenshannon, chi2).
        chart: Shared bins with reference and current fractions, for the HTML page.
        rank_error: Bound (99 % confidence) on the sketch error behind the statistics:
            the larger normalized rank error of the two quantile sketches for numeric
            columns, the larger count error as a share of the values for categorical
            ones; 0 when both sides are exact.
    """

    name: str
    kind: str
    method: str
    statistic: float
    threshold: float | None
    score: float
    p_value: float
    q_value: float = 1.0
    drifted: bool = False
    n_reference: int = 0
    n_current: int = 0
    stats: dict[str, float] = field(default_factory=dict)
    chart: dict[str, Any] = field(default_factory=dict)
    rank_error: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "method": self.method,
            "statistic": _clean(self.statistic),
            "threshold": self.threshold,
            "score": _clean(self.score),
            "p_value": _clean(self.p_value),
            "q_value": _clean(self.q_value),
            "drifted": self.drifted,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "stats": {k: _clean(v) for k, v in self.stats.items()},
            "chart": self.chart,
            "rank_error": self.rank_error,
        }


@dataclass
class DriftResult:
    """Drift of every tested feature plus the dataset-level verdict."""

    features: list[FeatureDrift]
    drift_share: float
    dataset_drift: bool
    skipped: dict[str, str]
    options: DriftOptions
    insufficient: str | None = None  # why no verdict was given (too few rows), if so

    @property
    def verdict(self) -> str:
        """``insufficient data``, ``drift`` or ``no drift``."""
        if self.insufficient is not None:
            return "insufficient data"
        return "drift" if self.dataset_drift else "no drift"

    @property
    def drifted(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    @property
    def rank_error(self) -> float:
        """The largest sketch error bound behind any feature (0: every test was exact)."""
        return max((f.rank_error for f in self.features), default=0.0)

    def __getitem__(self, name: str) -> FeatureDrift:
        for feature in self.features:
            if feature.name == name:
                return feature
        from conveyor.exceptions import NotFoundError, did_you_mean

        raise NotFoundError(
            f"No drift result for column {name!r}."
            + did_you_mean(name, [f.name for f in self.features])
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "insufficient": self.insufficient,
            "drift_share": self.drift_share,
            "dataset_drift": self.dataset_drift,
            "drifted": self.drifted,
            "rank_error": self.rank_error,
            "features": [f.to_dict() for f in self.features],
            "skipped": dict(self.skipped),
            "options": self.options.to_dict(),
        }


def _clean(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


# ---------------------------------------------------------------------------- numeric
def _arr(values: Any) -> np.ndarray[Any, Any]:
    return np.asarray(values, dtype=np.float64)


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def _effective_size(column: ColumnProfile) -> float:
    n = column.finite_count
    error = column.quantile_error
    if error <= 0:
        return float(n)
    return float(min(n, (_KS_BAND / error) ** 2))


def _ks_pvalue(d: float, n_ref: float, n_cur: float) -> float:
    from scipy.stats import kstwo, kstwobign

    if n_ref <= 0 or n_cur <= 0:
        return 1.0
    m = n_ref * n_cur / (n_ref + n_cur)
    if m < 10_000:
        return float(kstwo.sf(d, max(1, round(m))))
    return float(kstwobign.sf(d * math.sqrt(m)))


def _js(p: np.ndarray, q: np.ndarray) -> float:
    p = p / p.sum() if p.sum() > 0 else p
    q = q / q.sum() if q.sum() > 0 else q
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(math.sqrt(max(0.0, 0.5 * (kl_p + kl_q))))


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p = np.maximum(p, _EPS)
    q = np.maximum(q, _EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def _support(column: ColumnProfile, grid: int) -> list[float]:
    """Every value of an exact column, else its quantiles at `grid` + 1 even ranks."""
    if column.quantile_error == 0:
        size = max(column.finite_count, 1)
        return column.quantiles(_floats((np.arange(size) + 0.5) / size))
    return column.quantiles(_floats(np.linspace(0.0, 1.0, grid + 1)))


def _numeric(
    name: str, ref: ColumnProfile, cur: ColumnProfile, options: DriftOptions
) -> FeatureDrift:
    # A side that holds every value (a small window) is compared on all of its values, the
    # other on its quantile grid; when both are exact, KS is the exact statistic.
    points = np.unique(_arr(_support(ref, options.grid) + _support(cur, options.grid)))
    grid = _floats(points)
    cdf_ref = _arr(ref.cdf(grid))[:-1]
    cdf_cur = _arr(cur.cdf(grid))[:-1]
    diff = np.abs(cdf_ref - cdf_cur)
    ks = float(diff.max()) if diff.size else 0.0
    # Wasserstein-1 = integral of |F_ref - F_cur|; F is piecewise constant between the
    # grid points, so a right-continuous step sum is exact up to the sketch error.
    right = _floats(np.nextafter(points, np.inf))
    cdf_ref_right = _arr(ref.cdf(right))[:-1]
    cdf_cur_right = _arr(cur.cdf(right))[:-1]
    widths = np.diff(points)
    wasserstein = float(np.sum(np.abs(cdf_ref_right - cdf_cur_right)[:-1] * widths))
    scale = ref.std or 0.0
    if scale <= 0:
        scale = max(abs(ref.mean or 0.0), 1.0)
    wasserstein_normed = wasserstein / scale
    deciles = _floats(np.unique(_arr(ref.quantiles(_floats(np.linspace(0.1, 0.9, 9))))))
    psi = _psi(_arr(ref.pmf(deciles)), _arr(cur.pmf(deciles))) if deciles else 0.0
    twenty = _floats(np.unique(_arr(ref.quantiles(_floats(np.linspace(0.05, 0.95, 19))))))
    js = _js(_arr(ref.pmf(twenty)), _arr(cur.pmf(twenty))) if twenty else 0.0
    n_ref, n_cur = _effective_size(ref), _effective_size(cur)
    p_value = _ks_pvalue(ks, n_ref, n_cur)

    method = options.numeric_method
    if method == "auto":
        method = "ks" if cur.finite_count <= options.small_sample else "wasserstein"
    values = {"ks": ks, "wasserstein": wasserstein_normed, "psi": psi, "jensenshannon": js}
    default = {
        "ks": None,
        "wasserstein": options.wasserstein_threshold,
        "psi": options.psi_threshold,
        "jensenshannon": options.jensenshannon_threshold,
    }[method]
    threshold = options.feature_thresholds.get(name, default) if default is not None else None
    return FeatureDrift(
        name=name,
        kind="numeric",
        method=method,
        statistic=values[method],
        threshold=threshold,
        score=wasserstein_normed,
        p_value=p_value,
        n_reference=ref.finite_count,
        n_current=cur.finite_count,
        stats=values,
        chart=_numeric_chart(ref, cur),
        rank_error=max(ref.quantile_error, cur.quantile_error),
    )


def _numeric_chart(ref: ColumnProfile, cur: ColumnProfile) -> dict[str, Any]:
    low = min(ref.quantile(0.005), cur.quantile(0.005))
    high = max(ref.quantile(0.995), cur.quantile(0.995))
    if not high > low:
        return {"type": "numeric", "edges": [low, high], "reference": [1.0], "current": [1.0]}
    edges = np.linspace(low, high, _HIST_BINS + 1)
    inner = _floats(edges[1:-1])
    ref_mass = _arr(ref.pmf(inner))
    cur_mass = _arr(cur.pmf(inner))
    return {
        "type": "numeric",
        "edges": [round(float(e), 6) for e in edges],
        "reference": [round(float(m), 5) for m in ref_mass],
        "current": [round(float(m), 5) for m in cur_mass],
    }


# ---------------------------------------------------------------------------- categorical
def _counts(column: ColumnProfile) -> dict[str, float]:
    counts: dict[str, float] = {k: float(v) for k, v in column.frequencies().items()}
    rest = column.valid_count - sum(counts.values())
    if rest > 0:
        counts[OTHER] = counts.get(OTHER, 0.0) + rest
    return counts


def _categorical(
    name: str, ref: ColumnProfile, cur: ColumnProfile, options: DriftOptions
) -> FeatureDrift:
    ref_counts, cur_counts = _counts(ref), _counts(cur)
    categories = sorted(set(ref_counts) | set(cur_counts))
    r = np.array([ref_counts.get(c, 0.0) for c in categories])
    c = np.array([cur_counts.get(k, 0.0) for k in categories])
    r_frac = r / r.sum() if r.sum() else r
    c_frac = c / c.sum() if c.sum() else c
    js = _js(r_frac, c_frac) if r.sum() and c.sum() else 0.0
    psi = _psi(r_frac, c_frac)
    chi2, p_value = _chi2(r, c)
    method = options.categorical_method
    if method == "auto":
        method = "chi2" if cur.valid_count <= options.small_sample else "jensenshannon"
    values = {"chi2": chi2, "jensenshannon": js, "psi": psi}
    default = {
        "chi2": None,
        "jensenshannon": options.jensenshannon_threshold,
        "psi": options.psi_threshold,
    }[method]
    threshold = options.feature_thresholds.get(name, default) if default is not None else None
    top = np.argsort(-(r_frac + c_frac))[:_HIST_BINS]
    return FeatureDrift(
        name=name,
        kind="categorical",
        method=method,
        statistic=values[method],
        threshold=threshold,
        score=js,
        p_value=p_value,
        n_reference=ref.valid_count,
        n_current=cur.valid_count,
        stats=values,
        rank_error=max(_count_error(ref), _count_error(cur)),
        chart={
            "type": "categorical",
            "categories": [categories[i] for i in top],
            "reference": [round(float(r_frac[i]), 5) for i in top],
            "current": [round(float(c_frac[i]), 5) for i in top],
        },
    )


def _count_error(column: ColumnProfile) -> float:
    return column.frequency_error / column.valid_count if column.valid_count else 0.0


def _chi2(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    from scipy.stats import chi2 as chi2_dist

    keep = (ref + cur) > 0
    ref, cur = ref[keep], cur[keep]
    if ref.size < 2 or ref.sum() == 0 or cur.sum() == 0:
        return 0.0, 1.0
    table = np.vstack([ref, cur])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return statistic, float(chi2_dist.sf(statistic, ref.size - 1))


# ---------------------------------------------------------------------------- driver
def column_kind(column: ColumnProfile) -> str | None:
    """numeric or categorical when a drift test applies, else None."""
    kind = column.kind
    if kind == "numeric":
        return "numeric" if column.finite_count else None
    if kind in ("categorical", "boolean"):
        return "categorical" if column.valid_count else None
    return None


def compare_profiles(
    reference: Profile,
    current: Profile,
    columns: Sequence[str] | None = None,
    options: DriftOptions | None = None,
) -> DriftResult:
    """Drift of `current` against `reference`, column by column.

    Args:
        reference: The training Profile (stored with the model version).
        current: The Profile of the monitoring window.
        columns: Columns to test (default: every column in both profiles).
        options: Tests, thresholds and the false discovery rate.
    """
    options = options or DriftOptions()
    names = list(columns) if columns is not None else [c for c in reference.columns]
    if current.row_count < options.min_rows:
        # Too few rows for any verdict: a handful of rows "drifts" on noise alone.
        why = f"{current.row_count} rows in the window, fewer than min_rows={options.min_rows}"
        return DriftResult(
            features=[],
            drift_share=0.0,
            dataset_drift=False,
            skipped={name: f"insufficient data: {why}" for name in names},
            options=options,
            insufficient=why,
        )
    features: list[FeatureDrift] = []
    skipped: dict[str, str] = {}
    for name in names:
        if name not in reference.columns:
            skipped[name] = "not in the training profile"
            continue
        if name not in current.columns:
            skipped[name] = "not in the window"
            continue
        ref, cur = reference.columns[name], current.columns[name]
        kind = column_kind(ref)
        if kind is None:
            skipped[name] = f"{ref.kind} column: no drift test applies"
            continue
        if column_kind(cur) != kind:
            if not cur.valid_count:
                skipped[name] = "no values in the window"
            else:
                skipped[name] = f"kind changed from {kind} to {cur.kind}"
            continue
        if kind == "numeric":
            features.append(_numeric(name, ref, cur, options))
        else:
            features.append(_categorical(name, ref, cur, options))
    _decide(features, options)
    share = sum(f.drifted for f in features) / len(features) if features else 0.0
    return DriftResult(
        features=features,
        drift_share=share,
        dataset_drift=bool(features) and share >= options.drift_share,
        skipped=skipped,
        options=options,
    )


def _decide(features: list[FeatureDrift], options: DriftOptions) -> None:
    if not features:
        return
    from scipy.stats import false_discovery_control

    p_values = np.clip(np.array([f.p_value for f in features], dtype=float), 0.0, 1.0)
    q_values = false_discovery_control(p_values, method="bh")
    for feature, q in zip(features, q_values, strict=True):
        feature.q_value = float(q)
        significant = feature.q_value <= options.alpha
        if feature.threshold is None:
            feature.drifted = significant
        else:
            feature.drifted = significant and feature.statistic >= feature.threshold


__all__ = ["DriftOptions", "DriftResult", "FeatureDrift", "compare_profiles"]
