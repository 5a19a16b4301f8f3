"""Monitors and their window reports: drift per feature and performance over time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.api.queries._page import DEFAULT_LIMIT, Page, check_limit, paginate, reading
from conveyor.exceptions import NotFoundError, did_you_mean
from conveyor.stores.metadata import tables_monitoring as tm

if TYPE_CHECKING:
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore

MAX_SERIES = 2000


@dataclass(frozen=True)
class ReportSummary:
    """One window report of a monitor (without the full report document)."""

    id: str
    monitor: str
    window_start: float
    window_end: float
    model_name: str
    model_version: int
    rows: int
    labeled_rows: int
    drift_share: float
    dataset_drift: bool
    drifted: tuple[str, ...]
    metrics: Mapping[str, float]
    has_html: bool
    created_at: float


@dataclass(frozen=True)
class MonitorSummary:
    """A monitor with its newest report."""

    id: str
    name: str
    model_ref: str
    window_seconds: float
    options: Mapping[str, Any]
    created_at: float
    updated_at: float
    reports: int
    latest: ReportSummary | None


@dataclass(frozen=True)
class ReportDetail:
    """A window report with its full document (drift per feature, quality, performance)."""

    summary: ReportSummary
    report: Mapping[str, Any]


@dataclass(frozen=True)
class MonitorSeries:
    """What the monitoring charts plot, oldest window first.

    Attributes:
        windows: Window end times.
        report_ids: The report of each window.
        model_versions: The model version of each window.
        drift_share: Share of drifted features per window.
        drift: Per feature, its drift score per window (None when not tested).
        drifted: Per feature, whether it drifted per window.
        metrics: Per metric, its value per window (None before labels arrived).
        rows: Predictions per window.
        quality: Data-quality issue count per window.
    """

    monitor: str
    windows: tuple[float, ...]
    report_ids: tuple[str, ...]
    model_versions: tuple[int, ...]
    drift_share: tuple[float, ...]
    drift: Mapping[str, tuple[float | None, ...]]
    drifted: Mapping[str, tuple[bool, ...]]
    metrics: Mapping[str, tuple[float | None, ...]]
    rows: tuple[int, ...]
    quality: tuple[int, ...]


_REPORT_COLUMNS = [
    tm.monitor_reports.c.id,
    tm.monitor_reports.c.monitor_id,
    tm.monitor_reports.c.window_start,
    tm.monitor_reports.c.window_end,
    tm.monitor_reports.c.model_name,
    tm.monitor_reports.c.model_version,
    tm.monitor_reports.c.rows,
    tm.monitor_reports.c.labeled_rows,
    tm.monitor_reports.c.drift_share,
    tm.monitor_reports.c.dataset_drift,
    tm.monitor_reports.c.drifted,
    tm.monitor_reports.c.metrics,
    tm.monitor_reports.c.html_path,
    tm.monitor_reports.c.created_at,
]


def _report_summary(row: Any, monitor: str) -> ReportSummary:
    return ReportSummary(
        id=row.id,
        monitor=monitor,
        window_start=row.window_start,
        window_end=row.window_end,
        model_name=row.model_name,
        model_version=row.model_version,
        rows=row.rows,
        labeled_rows=row.labeled_rows,
        drift_share=row.drift_share,
        dataset_drift=bool(row.dataset_drift),
        drifted=tuple(row.drifted or ()),
        metrics=row.metrics or {},
        has_html=bool(row.html_path),
        created_at=row.created_at,
    )


def _monitor_row(c: sa.Connection, name: str) -> Any:
    row = c.execute(sa.select(tm.monitors).where(tm.monitors.c.name == name)).first()
    if row is None:
        names = list(c.execute(sa.select(tm.monitors.c.name).limit(1000)).scalars())
        raise NotFoundError(
            f"No monitor named {name!r}."
            + did_you_mean(name, names)
            + " Monitors are created by `conveyor monitor run`."
        )
    return row


def list_monitors(
    db: MetadataStore,
    *,
    before: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[MonitorSummary]:
    """Monitors by name, each with its report count and newest report (three queries).

    Raises:
        QueryError: a bad cursor or limit.
    """
    check_limit(limit)
    m, rep = tm.monitors, tm.monitor_reports
    with reading(db) as c:
        rows, next_cursor, prev_cursor = paginate(
            c,
            sa.select(m),
            order=[(m.c.name, False)],
            key=lambda row: (row.name,),
            before=before,
            after=after,
            limit=limit,
        )
        ids = [row.id for row in rows]
        counts: dict[str, int] = {}
        latest: dict[str, Any] = {}
        if ids:
            stats = c.execute(
                sa.select(rep.c.monitor_id, sa.func.count(), sa.func.max(rep.c.window_end))
                .where(rep.c.monitor_id.in_(ids))
                .group_by(rep.c.monitor_id)
            ).all()
            counts = {s[0]: int(s[1]) for s in stats}
            ends = [sa.and_(rep.c.monitor_id == s[0], rep.c.window_end == s[2]) for s in stats]
            if ends:
                for row in c.execute(
                    sa.select(*_REPORT_COLUMNS).where(sa.or_(*ends)).order_by(rep.c.created_at)
                ):
                    latest[row.monitor_id] = row
    items = tuple(
        MonitorSummary(
            id=row.id,
            name=row.name,
            model_ref=row.model_ref,
            window_seconds=row.window_seconds,
            options=row.options or {},
            created_at=row.created_at,
            updated_at=row.updated_at,
            reports=counts.get(row.id, 0),
            latest=_report_summary(latest[row.id], row.name) if row.id in latest else None,
        )
        for row in rows
    )
    return Page(items, next_cursor, prev_cursor, limit)


def get_monitor(db: MetadataStore, name: str) -> MonitorSummary:
    """One monitor with its report count and newest report.

    Raises:
        NotFoundError: no such monitor.
    """
    rep = tm.monitor_reports
    with reading(db) as c:
        row = _monitor_row(c, name)
        count = c.execute(sa.select(sa.func.count()).where(rep.c.monitor_id == row.id)).scalar_one()
        newest = c.execute(
            sa.select(*_REPORT_COLUMNS)
            .where(rep.c.monitor_id == row.id)
            .order_by(rep.c.window_end.desc(), rep.c.id.desc())
            .limit(1)
        ).first()
    return MonitorSummary(
        id=row.id,
        name=row.name,
        model_ref=row.model_ref,
        window_seconds=row.window_seconds,
        options=row.options or {},
        created_at=row.created_at,
        updated_at=row.updated_at,
        reports=int(count),
        latest=None if newest is None else _report_summary(newest, row.name),
    )


def list_reports(
    db: MetadataStore,
    name: str,
    *,
    model_version: int | None = None,
    drift_only: bool = False,
    before: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[ReportSummary]:
    """Window reports of a monitor, newest window first.

    Raises:
        NotFoundError: no such monitor.
        QueryError: a bad cursor or limit.
    """
    check_limit(limit)
    rep = tm.monitor_reports
    with reading(db) as c:
        monitor = _monitor_row(c, name)
        query = sa.select(*_REPORT_COLUMNS).where(rep.c.monitor_id == monitor.id)
        if model_version is not None:
            query = query.where(rep.c.model_version == model_version)
        if drift_only:
            query = query.where(rep.c.dataset_drift == sa.true())
        rows, next_cursor, prev_cursor = paginate(
            c,
            query,
            order=[(rep.c.window_end, True), (rep.c.id, True)],
            key=lambda row: (row.window_end, row.id),
            before=before,
            after=after,
            limit=limit,
        )
    return Page(tuple(_report_summary(row, name) for row in rows), next_cursor, prev_cursor, limit)


def get_report(db: MetadataStore, report_id: str) -> ReportDetail:
    """A window report with its full document.

    Raises:
        NotFoundError: no such report.
    """
    rep, m = tm.monitor_reports, tm.monitors
    with reading(db) as c:
        row = c.execute(
            sa.select(*_REPORT_COLUMNS, rep.c.report, m.c.name.label("monitor_name"))
            .join(m, m.c.id == rep.c.monitor_id)
            .where(rep.c.id == report_id)
        ).first()
    if row is None:
        raise NotFoundError(f"No monitor report with id {report_id!r}.")
    return ReportDetail(summary=_report_summary(row, row.monitor_name), report=row.report or {})


def report_html(db: MetadataStore, artifacts: ArtifactStore, report_id: str) -> str:
    """The stored HTML page of a window report.

    Raises:
        NotFoundError: no such report, or it has no HTML page.
    """
    rep = tm.monitor_reports
    with reading(db) as c:
        path = c.execute(sa.select(rep.c.html_path).where(rep.c.id == report_id)).first()
    if path is None:
        raise NotFoundError(f"No monitor report with id {report_id!r}.")
    if not path.html_path:
        raise NotFoundError(f"Monitor report {report_id} has no HTML page.")
    return artifacts.read_file(path.html_path).decode()


def monitor_series(
    db: MetadataStore,
    name: str,
    *,
    since: float | None = None,
    limit: int = 500,
) -> MonitorSeries:
    """Drift per feature, performance and quality per window, for the newest `limit`
    windows (since `since`), oldest first. One query for the monitor, one for the reports.

    Raises:
        NotFoundError: no such monitor.
        QueryError: `limit` outside 1..2000.
    """
    check_limit(limit, MAX_SERIES)
    rep = tm.monitor_reports
    with reading(db) as c:
        monitor = _monitor_row(c, name)
        query = (
            sa.select(
                rep.c.id,
                rep.c.window_end,
                rep.c.model_version,
                rep.c.drift_share,
                rep.c.metrics,
                rep.c.rows,
                rep.c.report,
            )
            .where(rep.c.monitor_id == monitor.id)
            .order_by(rep.c.window_end.desc(), rep.c.id.desc())
            .limit(limit)
        )
        if since is not None:
            query = query.where(rep.c.window_end >= since)
        rows = list(reversed(c.execute(query).all()))
    features: list[str] = []
    metric_names: list[str] = []
    per_window: list[tuple[dict[str, tuple[float | None, bool]], Mapping[str, float], int]] = []
    for row in rows:
        document = row.report or {}
        drift: dict[str, tuple[float | None, bool]] = {}
        for feature in (document.get("drift") or {}).get("features") or []:
            drift[feature["name"]] = (feature.get("score"), bool(feature.get("drifted")))
            if feature["name"] not in features:
                features.append(feature["name"])
        metrics = row.metrics or {}
        for key in metrics:
            if key not in metric_names:
                metric_names.append(key)
        per_window.append((drift, metrics, len(document.get("quality") or [])))
    return MonitorSeries(
        monitor=name,
        windows=tuple(row.window_end for row in rows),
        report_ids=tuple(row.id for row in rows),
        model_versions=tuple(row.model_version for row in rows),
        drift_share=tuple(row.drift_share for row in rows),
        drift={f: tuple(w[0].get(f, (None, False))[0] for w in per_window) for f in features},
        drifted={f: tuple(w[0].get(f, (None, False))[1] for w in per_window) for f in features},
        metrics={k: tuple(w[1].get(k) for w in per_window) for k in metric_names},
        rows=tuple(row.rows for row in rows),
        quality=tuple(w[2] for w in per_window),
    )
