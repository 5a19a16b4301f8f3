"""Trigger specs: when a pipeline should run, and the occurrences that say so.

A trigger is a frozen value attached to a pipeline (``@pipeline(triggers=[...])``). The
scheduler asks it, with the trigger's stored cursor, which occurrences happened since; each
occurrence has a de-duplication key (a cron tick, a report id, a dataset version) so that
it is decided exactly once, by one scheduler, however many run and however often they
restart. Triggers read the metadata store only; they never import the monitoring code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import sqlalchemy as sa

from conveyor.exceptions import ConfigError
from conveyor.stores.metadata import tables_data as td
from conveyor.stores.metadata import tables_monitoring as tm

CatchUp = Literal["latest", "all", "skip"]
CATCH_UP = ("latest", "all", "skip")


@dataclass(frozen=True)
class Occurrence:
    """Something that happened and may start a run.

    Attributes:
        dedup_key: Identifies the occurrence; the same key is never decided twice.
        reason: One sentence for people (``drift share 43% >= 30% in report 01J...``).
        details: JSON-able facts recorded with the event and the run's trigger.
        report_id: The monitor report behind it, for lineage.
        suppress: Why it cannot start a run (e.g. no decay baseline): it is recorded as
            suppressed with this reason instead of being skipped silently.
    """

    dedup_key: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    report_id: str | None = None
    suppress: str | None = None


@dataclass(frozen=True)
class Evaluation:
    """What a trigger found: occurrences to decide and where to resume next time."""

    occurrences: list[Occurrence]
    cursor: Any


class Trigger:
    """Base of every trigger: a kind, a cooldown and a JSON spec."""

    kind: ClassVar[str] = ""
    cooldown: float = 0.0
    params: Mapping[str, Any] = {}

    def spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def key(self, pipeline: str) -> str:
        """Stable identity of this trigger on `pipeline` (its state row's key)."""
        text = json.dumps(self.spec(), sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        return f"{pipeline}:{self.kind}:{digest}"

    def initial_cursor(self, connection: sa.Connection, now: float) -> Any:
        """Where evaluation starts the first time a scheduler sees this trigger."""
        return None

    def evaluate(self, connection: sa.Connection, cursor: Any, now: float) -> Evaluation:
        raise NotImplementedError


def _check_cooldown(owner: str, cooldown: float) -> None:
    if cooldown < 0:
        raise ConfigError(
            f"The 'cooldown' parameter of {owner} must be >= 0 seconds. Got {cooldown!r} instead."
        )


# ---------------------------------------------------------------------------- schedule
@dataclass(frozen=True)
class Schedule(Trigger):
    """A cron schedule (croniter syntax, UTC).

    Attributes:
        cron: Cron expression, e.g. ``0 3 * * *``.
        catch_up: Ticks missed while no scheduler ran: ``latest`` fires once for the most
            recent, ``all`` fires each (at most `max_catch_up`), ``skip`` fires none.
        max_catch_up: Upper bound on missed ticks fired with ``all``.
        grace: A tick is on time (not missed) when seen within this many seconds.
        cooldown: Minimum seconds between two runs started by this trigger.
    """

    cron: str
    catch_up: CatchUp = "latest"
    max_catch_up: int = 10
    grace: float = 120.0
    cooldown: float = 0.0
    params: Mapping[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "schedule"

    def __post_init__(self) -> None:
        croniter = _croniter()
        if not croniter.is_valid(self.cron):
            raise ConfigError(
                f"{self.cron!r} is not a cron expression. Use five fields: minute hour "
                "day-of-month month day-of-week, e.g. '0 3 * * *' for 03:00 every day."
            )
        if self.catch_up not in CATCH_UP:
            raise ConfigError(
                f"The 'catch_up' parameter of on_schedule must be one of {', '.join(CATCH_UP)}."
                f" Got {self.catch_up!r} instead."
            )
        _check_cooldown("on_schedule", self.cooldown)

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "cron": self.cron, "catch_up": self.catch_up}

    def initial_cursor(self, connection: sa.Connection, now: float) -> Any:
        return {"tick": now}

    def ticks(self, after: float, until: float) -> list[float]:
        """Cron ticks in (after, until]."""
        croniter = _croniter()
        base = dt.datetime.fromtimestamp(after, dt.UTC)
        iterator = croniter(self.cron, base)
        out: list[float] = []
        while True:
            tick = float(iterator.get_next(float))
            if tick > until:
                return out
            out.append(tick)
            if len(out) > 10_000:  # a year of minutes behind: keep the newest
                out = out[-self.max_catch_up :]

    def evaluate(self, connection: sa.Connection, cursor: Any, now: float) -> Evaluation:
        last = float((cursor or {}).get("tick", now))
        ticks = self.ticks(last, now)
        if not ticks:
            return Evaluation([], cursor)
        on_time = [t for t in ticks if now - t <= self.grace]
        missed = [t for t in ticks if now - t > self.grace]
        chosen: list[tuple[float, bool]] = [(t, False) for t in on_time]
        if missed and self.catch_up == "latest" and not on_time:
            chosen = [(missed[-1], True)]
        elif missed and self.catch_up == "all":
            chosen = [(t, True) for t in missed[-self.max_catch_up :]] + chosen
        occurrences = []
        for tick, late in chosen:
            stamp = dt.datetime.fromtimestamp(tick, dt.UTC).isoformat()
            reason = f"schedule {self.cron!r} tick {stamp}"
            if late:
                reason += f" (missed while no scheduler ran; catch-up policy {self.catch_up})"
            occurrences.append(
                Occurrence(
                    dedup_key=f"tick:{stamp}",
                    reason=reason,
                    details={"cron": self.cron, "tick": tick, "late": late, "missed": len(missed)},
                )
            )
        return Evaluation(occurrences, {"tick": ticks[-1]})


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "Cron schedules need croniter: pip install 'conveyor[schedule]'."
        ) from exc
    return croniter


# ---------------------------------------------------------------------------- new data
@dataclass(frozen=True)
class OnNewData(Trigger):
    """New versions of a registered dataset.

    Attributes:
        dataset: Dataset name.
        min_rows: Fire once the versions registered since the last run hold at least
            this many rows together (0: every new version).
        cooldown: Minimum seconds between two runs started by this trigger.
    """

    dataset: str
    min_rows: int = 0
    cooldown: float = 0.0
    params: Mapping[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "new_data"

    def __post_init__(self) -> None:
        if self.min_rows < 0:
            raise ConfigError(
                f"The 'min_rows' parameter of on_new_data must be an int >= 0. Got "
                f"{self.min_rows!r} instead."
            )
        _check_cooldown("on_new_data", self.cooldown)

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "dataset": self.dataset, "min_rows": self.min_rows}

    def _versions(self, connection: sa.Connection, after: int) -> list[Any]:
        query = (
            sa.select(td.dataset_versions.c.version, td.dataset_versions.c.row_count)
            .join(td.datasets, td.datasets.c.id == td.dataset_versions.c.dataset_id)
            .where(td.datasets.c.name == self.dataset, td.dataset_versions.c.version > after)
            .order_by(td.dataset_versions.c.version)
        )
        return list(connection.execute(query).all())

    def initial_cursor(self, connection: sa.Connection, now: float) -> Any:
        versions = self._versions(connection, 0)
        return {"version": versions[-1].version if versions else 0}

    def evaluate(self, connection: sa.Connection, cursor: Any, now: float) -> Evaluation:
        after = int((cursor or {}).get("version", 0))
        versions = self._versions(connection, after)
        if not versions:
            return Evaluation([], cursor)
        rows = sum(int(v.row_count) for v in versions)
        if rows < self.min_rows:
            return Evaluation([], cursor)  # keep accumulating from the same cursor
        latest = versions[-1].version
        numbers = [int(v.version) for v in versions]
        return Evaluation(
            [
                Occurrence(
                    dedup_key=f"version:{latest}",
                    reason=f"dataset {self.dataset!r}: {len(numbers)} new version(s) up to "
                    f"v{latest} with {rows} rows"
                    + (f" (>= {self.min_rows})" if self.min_rows else ""),
                    details={"dataset": self.dataset, "versions": numbers, "rows": rows},
                )
            ],
            {"version": latest},
        )


# ---------------------------------------------------------------------------- reports
def _monitor_id(connection: sa.Connection, monitor: str) -> str | None:
    row = connection.execute(
        sa.select(tm.monitors.c.id).where(tm.monitors.c.name == monitor)
    ).first()
    return None if row is None else str(row.id)


def _new_reports(connection: sa.Connection, monitor: str, cursor: Any) -> list[Any]:
    """Reports (re)computed since the cursor, oldest first; only the newest when no cursor."""
    monitor_id = _monitor_id(connection, monitor)
    if monitor_id is None:
        return []
    r = tm.monitor_reports
    query = sa.select(r).where(r.c.monitor_id == monitor_id)
    seen = (cursor or {}).get("created_at")
    if seen is None:
        return list(
            connection.execute(
                query.order_by(r.c.window_end.desc(), r.c.model_version.desc()).limit(1)
            ).all()
        )
    return list(
        connection.execute(query.where(r.c.created_at > seen).order_by(r.c.created_at)).all()
    )


def _report_cursor(reports: Sequence[Any], cursor: Any) -> Any:
    if not reports:
        return cursor
    return {"created_at": max(float(r.created_at) for r in reports)}


@dataclass(frozen=True)
class OnDrift(Trigger):
    """Drift in a monitor's reports.

    Attributes:
        monitor: Monitor name.
        share: Fire when at least this share of features drifted (None: the monitor's
            own dataset-drift verdict, unless `features` is given).
        features: Per-feature thresholds on the drift score (Wasserstein distance in
            reference standard deviations for numeric columns, Jensen-Shannon distance
            for categorical ones); any one above fires.
        cooldown: Minimum seconds between two runs started by this trigger (one
            incident, one retraining).
    """

    monitor: str
    share: float | None = None
    features: Mapping[str, float] = field(default_factory=dict)
    cooldown: float = 3600.0
    params: Mapping[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "drift"

    def __post_init__(self) -> None:
        if self.share is not None and not 0 < self.share <= 1:
            raise ConfigError(
                f"The 'share' parameter of on_drift must be in (0, 1]. Got {self.share!r} instead."
            )
        _check_cooldown("on_drift", self.cooldown)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "monitor": self.monitor,
            "share": self.share,
            "features": dict(sorted(self.features.items())),
        }

    def _why(self, report: Any) -> str | None:
        reasons = []
        if self.share is not None and report.drift_share >= self.share:
            reasons.append(f"drift share {report.drift_share:.0%} >= {self.share:.0%}")
        if self.features:
            by_name = {f["name"]: f for f in report.report["drift"]["features"]}
            for name, limit in self.features.items():
                score = (by_name.get(name) or {}).get("score")
                if score is not None and score >= limit:
                    reasons.append(f"{name} drift score {score:.3f} >= {limit}")
        if self.share is None and not self.features and report.dataset_drift:
            reasons.append(f"dataset drift (share {report.drift_share:.0%})")
        return "; ".join(reasons) or None

    def evaluate(self, connection: sa.Connection, cursor: Any, now: float) -> Evaluation:
        reports = _new_reports(connection, self.monitor, cursor)
        occurrences = []
        for report in reports:
            why = self._why(report)
            if why is None:
                continue
            occurrences.append(
                Occurrence(
                    dedup_key=f"report:{report.id}",
                    reason=f"monitor {self.monitor!r}, {report.model_name}/"
                    f"{report.model_version}: {why} (drifted: "
                    f"{', '.join(report.drifted) or 'none'})",
                    details={
                        "monitor": self.monitor,
                        "report_id": report.id,
                        "model": f"{report.model_name}/{report.model_version}",
                        "window_start": report.window_start,
                        "window_end": report.window_end,
                        "drift_share": report.drift_share,
                        "drifted": list(report.drifted),
                    },
                    report_id=str(report.id),
                )
            )
        # One incident spanning many windows is one occurrence per window; the newest one
        # decides (cooldown and the active-run check keep it to one retraining).
        return Evaluation(occurrences[-1:], _report_cursor(reports, cursor))


@dataclass(frozen=True)
class OnDecay(Trigger):
    """A performance metric fell (labels joined into a monitor's reports).

    Attributes:
        monitor: Monitor name.
        metric: Metric name as the monitor reports it (roc_auc, accuracy, f1, rmse, ...).
        drop: Fire when the metric is worse than the baseline by at least this much
            (absolute; direction-aware for lower-is-better metrics such as rmse).
        baseline: A fixed baseline; by default the report's decay baseline: the metric
            of the evaluation report the serving version was registered with
            (``register_model(..., report=)``), else the one recorded with the Model. A
            labeled report with no baseline for `metric` is recorded as a suppressed
            event saying so (never skipped silently).
        min_rows: Labeled rows a report needs before its metric counts.
        cooldown: Minimum seconds between two runs started by this trigger.
    """

    monitor: str
    metric: str
    drop: float
    baseline: float | None = None
    min_rows: int = 100
    cooldown: float = 3600.0
    params: Mapping[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "decay"

    def __post_init__(self) -> None:
        if self.drop <= 0:
            raise ConfigError(
                f"The 'drop' parameter of on_decay must be > 0. Got {self.drop!r} instead."
            )
        _check_cooldown("on_decay", self.cooldown)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "monitor": self.monitor,
            "metric": self.metric,
            "drop": self.drop,
            "baseline": self.baseline,
        }

    def evaluate(self, connection: sa.Connection, cursor: Any, now: float) -> Evaluation:
        from conveyor.evaluation.metrics import LOWER_IS_BETTER

        reports = _new_reports(connection, self.monitor, cursor)
        occurrences = []
        unjudged = []
        for report in reports:
            value = (report.metrics or {}).get(self.metric)
            if report.labeled_rows < self.min_rows:
                continue
            baseline = self.baseline
            if baseline is None:
                baseline = (report.report.get("reference_metrics") or {}).get(self.metric)
            if value is None or baseline is None:
                unjudged.append(self._unjudged(report, value))
                continue
            worse = value - baseline if self.metric in LOWER_IS_BETTER else baseline - value
            if worse < self.drop:
                continue
            occurrences.append(
                Occurrence(
                    dedup_key=f"report:{report.id}",
                    reason=f"monitor {self.monitor!r}, {report.model_name}/"
                    f"{report.model_version}: {self.metric} {value:.4f} is {worse:.4f} worse "
                    f"than {baseline:.4f} (drop >= {self.drop}) on {report.labeled_rows} "
                    "labeled rows",
                    details={
                        "monitor": self.monitor,
                        "report_id": report.id,
                        "metric": self.metric,
                        "value": value,
                        "baseline": baseline,
                        "labeled_rows": report.labeled_rows,
                    },
                    report_id=str(report.id),
                )
            )
        return Evaluation(occurrences[-1:] or unjudged[-1:], _report_cursor(reports, cursor))

    def _unjudged(self, report: Any, value: float | None) -> Occurrence:
        model = f"{report.model_name}/{report.model_version}"
        if value is None:
            shown = ", ".join(sorted(report.metrics or {})) or "none"
            why = f"the report has no {self.metric} (it has: {shown})"
        else:
            known = sorted(report.report.get("reference_metrics") or {})
            why = (
                f"no decay baseline for {self.metric}: {model} was registered with "
                + (f"only {', '.join(known)}" if known else "no metrics")
                + "; register with register_model(..., report=evaluate(...)) or pass "
                "on_decay(..., baseline=)"
            )
        return Occurrence(
            dedup_key=f"report:{report.id}:unjudged",
            reason=f"monitor {self.monitor!r}, {model}: {self.metric} decay cannot be judged",
            details={"monitor": self.monitor, "report_id": report.id, "metric": self.metric},
            report_id=str(report.id),
            suppress=why,
        )


# ---------------------------------------------------------------------------- factories
def on_schedule(
    cron: str,
    *,
    catch_up: CatchUp = "latest",
    max_catch_up: int = 10,
    cooldown: float = 0.0,
    params: Mapping[str, Any] | None = None,
) -> Schedule:
    """Run on a cron schedule (UTC); `catch_up` says what to do with missed ticks."""
    return Schedule(
        cron,
        catch_up=catch_up,
        max_catch_up=max_catch_up,
        cooldown=cooldown,
        params=dict(params or {}),
    )


def on_new_data(
    dataset: str,
    *,
    min_rows: int = 0,
    cooldown: float = 0.0,
    params: Mapping[str, Any] | None = None,
) -> OnNewData:
    """Run when new versions of `dataset` bring at least `min_rows` rows."""
    return OnNewData(dataset, min_rows=min_rows, cooldown=cooldown, params=dict(params or {}))


def on_drift(
    monitor: str,
    *,
    share: float | None = None,
    features: Mapping[str, float] | None = None,
    cooldown: float = 3600.0,
    params: Mapping[str, Any] | None = None,
) -> OnDrift:
    """Run when a report of `monitor` shows drift above `share` or a per-feature threshold."""
    return OnDrift(
        monitor,
        share=share,
        features=dict(features or {}),
        cooldown=cooldown,
        params=dict(params or {}),
    )


def on_decay(
    monitor: str,
    metric: str,
    drop: float,
    *,
    baseline: float | None = None,
    min_rows: int = 100,
    cooldown: float = 3600.0,
    params: Mapping[str, Any] | None = None,
) -> OnDecay:
    """Run when `metric` in `monitor`'s labeled reports is `drop` worse than its baseline."""
    return OnDecay(
        monitor,
        metric,
        drop,
        baseline=baseline,
        min_rows=min_rows,
        cooldown=cooldown,
        params=dict(params or {}),
    )


def triggers_of(pipeline: Any) -> list[Trigger]:
    """The triggers of a pipeline: its ``schedule=`` cron plus its ``triggers=`` list.

    Raises:
        ConfigError: an element of ``triggers=`` is not a trigger.
    """
    out: list[Trigger] = []
    schedule = getattr(pipeline, "schedule", None)
    if schedule:
        out.append(schedule if isinstance(schedule, Trigger) else Schedule(str(schedule)))
    for item in getattr(pipeline, "triggers", ()):
        trigger = Schedule(item) if isinstance(item, str) else item
        if not isinstance(trigger, Trigger):
            raise ConfigError(
                f"Pipeline {pipeline.name!r} has a trigger of type {type(trigger).__name__}. "
                "Use on_schedule, on_new_data, on_drift or on_decay."
            )
        out.append(trigger)
    return out


__all__ = [
    "Evaluation",
    "Occurrence",
    "OnDecay",
    "OnDrift",
    "OnNewData",
    "Schedule",
    "Trigger",
    "on_decay",
    "on_drift",
    "on_new_data",
    "on_schedule",
    "triggers_of",
]
