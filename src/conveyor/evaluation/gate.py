"""`Gate`: decide whether a candidate may take an alias, from thresholds and the champion.

A decision never raises for a weak model: it comes back with ``passed=False`` and the
reasons, is recorded, and `register_model(..., decision=...)` then registers the version
without promoting it, so the run ends cleanly as "not promoted".

Fair by default: the champion is scored again on the candidate's holdout (the rows its
report was computed on, with the same metrics, slices and positive class), and the
decision records both sets of numbers. Comparing with the champion's stored report
instead would compare two models on different rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.evaluation.metrics import LOWER_IS_BETTER, EvaluationReport
from conveyor.exceptions import ModelError, NotFoundError, did_you_mean

if TYPE_CHECKING:
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore


@dataclass(frozen=True)
class GateDecision:
    """The outcome of `Gate.check`.

    Attributes:
        passed: Whether every check passed.
        reasons: One sentence per failed check (empty when passed).
        checks: Every check with its values: ``{"check", "metric", "value", "limit",
            "passed", ...}``.
        primary: The primary metric.
        champion: The reference compared against (e.g. ``churn@production``), or None.
        champion_version: The version that held it, or None when nobody did.
        id: Id of the recorded decision, when recorded.
        champion_basis: How the champion's numbers were obtained: ``"holdout"`` (scored
            on the candidate's rows), ``"stored"`` (its registered report), or None.
        candidate_metrics: The candidate's overall metrics.
        champion_metrics: The champion's overall metrics on that basis.
        rows: Rows both were scored on (with ``"holdout"``).
        notes: Why the basis is not ``"holdout"`` when it could have been.
    """

    passed: bool
    reasons: list[str]
    checks: list[dict[str, Any]]
    primary: str
    champion: str | None = None
    champion_version: int | None = None
    model_name: str | None = None
    id: str | None = None
    champion_basis: str | None = None
    candidate_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    rows: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "checks": [dict(c) for c in self.checks],
            "primary": self.primary,
            "champion": self.champion,
            "champion_version": self.champion_version,
            "model_name": self.model_name,
            "id": self.id,
            "champion_basis": self.champion_basis,
            "candidate_metrics": dict(self.candidate_metrics),
            "champion_metrics": dict(self.champion_metrics),
            "rows": self.rows,
            "notes": list(self.notes),
        }


def _better(metric: str, a: float, b: float) -> float:
    """How much better `a` is than `b` (negative = worse), whatever the metric's direction."""
    return b - a if metric in LOWER_IS_BETTER else a - b


@dataclass(frozen=True)
class Gate:
    """Promotion rules.

    Attributes:
        primary: The metric compared with the champion.
        min_value: The primary metric must reach this (at most this for lower-is-better
            metrics such as rmse or log_loss).
        max_regression: The primary metric may be at most this much worse than the
            champion's.
        thresholds: Extra per-metric limits, same direction rule as `min_value`.
        slice_max_regression: Per slice value, the primary metric may be at most this much
            worse than the champion's on the same slice.
        min_slice_size: Slices with fewer rows are not compared (too noisy).
        champion_on: ``"holdout"`` (default) scores the champion on the candidate's
            holdout; ``"stored"`` compares with the champion's registered report.
    """

    primary: str
    min_value: float | None = None
    max_regression: float | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)
    slice_max_regression: float | None = None
    min_slice_size: int = 30
    champion_on: str = "holdout"

    def __post_init__(self) -> None:
        if self.champion_on not in ("holdout", "stored"):
            raise ModelError(
                "The 'champion_on' parameter of Gate must be 'holdout' or 'stored'. Got "
                f"{self.champion_on!r} instead."
            )

    def check(
        self,
        report: EvaluationReport | Mapping[str, Any],
        champion: str | None = None,
        *,
        data: Any = None,
        record: bool = True,
        metadata_store: MetadataStore | None = None,
        artifact_store: ArtifactStore | None = None,
    ) -> GateDecision:
        """Check a candidate's report against the thresholds and the champion.

        Args:
            report: The candidate's EvaluationReport.
            champion: A registry reference such as ``churn@production``. When no version
                holds it yet, only the thresholds apply.
            data: The candidate's holdout (features and label). Defaults to the frame the
                report was computed on, which `evaluate` keeps in memory; a report read
                back from a store has none, so pass it then.
            record: Store the decision in the metadata store (and on the running step).

        Raises:
            ModelError: a metric the gate needs is not in the report (lists the ones
                that are).
        """
        if not isinstance(report, EvaluationReport):
            report = EvaluationReport.from_dict(report)
        self._require(report, [self.primary, *self.thresholds])
        checks: list[dict[str, Any]] = []
        value = report.metrics[self.primary]
        if self.min_value is not None:
            checks.append(self._limit(self.primary, value, self.min_value))
        for metric, limit in self.thresholds.items():
            checks.append(self._limit(metric, report.metrics[metric], limit))

        registry = None
        champion_version = None
        model_name = None
        theirs: Mapping[str, Any] | None = None
        basis: str | None = None
        notes: list[str] = []
        if champion is not None:
            from conveyor.registry.refs import ModelRef
            from conveyor.registry.registry import get_registry

            model_name = ModelRef.parse(champion).name
            registry = get_registry(metadata_store, artifact_store)
            try:
                holder = registry.resolve(champion)
            except NotFoundError:
                holder = None
            if holder is not None:
                champion_version = holder.version
                theirs, basis, notes = self._champion_report(report, data, registry, holder)
                checks.extend(self._compare(report, theirs, holder.metrics, champion))
        passed = all(c["passed"] for c in checks)
        reasons = [c["message"] for c in checks if not c["passed"]]
        decision = GateDecision(
            passed=passed,
            reasons=reasons,
            checks=checks,
            primary=self.primary,
            champion=champion,
            champion_version=champion_version,
            model_name=model_name,
            champion_basis=basis,
            candidate_metrics=dict(report.metrics),
            champion_metrics={
                k: float(v) for k, v in dict((theirs or {}).get("metrics", {})).items()
            },
            rows=report.n_rows if basis == "holdout" else None,
            notes=notes,
        )
        if record:
            decision = self._record(decision, registry, metadata_store, artifact_store)
        return decision

    def _champion_report(
        self, report: EvaluationReport, data: Any, registry: Any, holder: Any
    ) -> tuple[Mapping[str, Any] | None, str, list[str]]:
        """The champion's report to compare with, its basis, and notes on the choice."""
        stored = holder.report or {"metrics": dict(holder.metrics)}
        if self.champion_on == "stored":
            return stored, "stored", []
        frame = data if data is not None else report.data
        if frame is None:
            return (
                stored,
                "stored",
                [
                    "The candidate's holdout was not available (a report read back from a "
                    "store keeps no rows), so the champion's stored report was used; pass "
                    "data=holdout to Gate.check to score both on the same rows."
                ],
            )
        from conveyor.evaluation.metrics import evaluate

        champion_model = registry.load(holder)
        try:
            scored = evaluate(
                champion_model,
                frame,
                target=report.target,
                metrics=list(report.metrics),
                slices=list(report.slices),
                primary=report.primary,
                task=report.task,
                pos_label=report.pos_label,
                bootstrap=0,
                log=False,
            )
        except Exception as exc:  # user models fail in their own ways
            raise ModelError(
                f"The champion {holder.name}/{holder.version} could not be scored on the "
                f"candidate's holdout: {type(exc).__name__}: {exc}. Gate with "
                "champion_on='stored' to compare with its registered report instead."
            ) from exc
        return scored.to_dict(), "holdout", []

    # ------------------------------------------------------------------ checks
    def _require(self, report: EvaluationReport, metrics: list[str]) -> None:
        available = sorted(report.metrics)
        for metric in metrics:
            if metric not in report.metrics:
                raise ModelError(
                    f"The gate needs metric {metric!r} but the report has none."
                    + did_you_mean(metric, available)
                    + " Available metrics: "
                    + ", ".join(available)
                    + ". Add it to evaluate(..., metrics=[...]) or gate on another one."
                )

    @staticmethod
    def _limit(metric: str, value: float, limit: float) -> dict[str, Any]:
        lower = metric in LOWER_IS_BETTER
        ok = not math.isnan(value) and (value <= limit if lower else value >= limit)
        word = "at most" if lower else "at least"
        return {
            "check": "threshold",
            "metric": metric,
            "value": value,
            "limit": limit,
            "passed": ok,
            "message": f"{metric} = {value:.4f}, must be {word} {limit:.4f}.",
        }

    def _compare(
        self,
        report: EvaluationReport,
        champion_report: Mapping[str, Any] | None,
        champion_metrics: Mapping[str, float],
        champion: str,
    ) -> list[dict[str, Any]]:
        checks: list[dict[str, Any]] = []
        theirs_all = dict((champion_report or {}).get("metrics", {})) or dict(champion_metrics)
        ours = report.metrics[self.primary]
        theirs = theirs_all.get(self.primary)
        if self.max_regression is not None and theirs is not None:
            gain = _better(self.primary, ours, float(theirs))
            checks.append(
                {
                    "check": "champion",
                    "metric": self.primary,
                    "value": ours,
                    "champion_value": theirs,
                    "limit": self.max_regression,
                    "passed": gain >= -self.max_regression,
                    "message": (
                        f"{self.primary} = {ours:.4f} vs champion {champion} {theirs:.4f}: "
                        f"{-gain:.4f} worse, more than the allowed {self.max_regression:.4f}."
                    ),
                }
            )
        if self.slice_max_regression is None or not champion_report:
            return checks
        their_slices = champion_report.get("slices", {})
        for column, groups in report.slices.items():
            for value, scores in groups.items():
                other = their_slices.get(column, {}).get(value)
                if other is None or min(scores.get("count", 0), other.get("count", 0)) < (
                    self.min_slice_size
                ):
                    continue
                a, b = scores.get(self.primary), other.get(self.primary)
                if a is None or b is None or math.isnan(a) or math.isnan(b):
                    continue
                gain = _better(self.primary, a, b)
                checks.append(
                    {
                        "check": "slice",
                        "metric": self.primary,
                        "slice": f"{column}={value}",
                        "value": a,
                        "champion_value": b,
                        "limit": self.slice_max_regression,
                        "passed": gain >= -self.slice_max_regression,
                        "message": (
                            f"{self.primary} on {column}={value} = {a:.4f} vs champion "
                            f"{b:.4f}: {-gain:.4f} worse, more than the allowed "
                            f"{self.slice_max_regression:.4f}."
                        ),
                    }
                )
        return checks

    def _record(
        self,
        decision: GateDecision,
        registry: Any,
        metadata_store: MetadataStore | None,
        artifact_store: ArtifactStore | None,
    ) -> GateDecision:
        from dataclasses import replace

        from conveyor.core.context import current_context, log_metrics, set_tags

        if registry is None:
            from conveyor.registry.registry import get_registry

            registry = get_registry(metadata_store, artifact_store)
        decision_id = registry.record_gate(decision.to_dict())
        if current_context() is not None:
            log_metrics({"gate.passed": 1.0 if decision.passed else 0.0})
            set_tags(gate="passed" if decision.passed else "not promoted")
        return replace(decision, id=decision_id)
