"""Monitoring: monitors, drift/performance/quality over time, window reports, triggers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from conveyor.api.queries import monitors as mq
from conveyor.api.queries import triggers as tq
from conveyor.ui import queries as uq
from conveyor.ui.svg import line_chart
from conveyor.ui.views._base import UI, markup, page_guard

if TYPE_CHECKING:
    from fastapi import APIRouter

# Windows shown in the per-feature drift table (the charts show up to SERIES_WINDOWS).
HEAT_WINDOWS = 24
SERIES_WINDOWS = 500
MAX_FEATURE_LINES = 8
EVENTS = 50


def list_page(ui: UI, request: Request) -> Response:
    page = mq.list_monitors(
        ui.store,
        before=request.query_params.get("before") or None,
        after=request.query_params.get("after") or None,
    )
    return ui.render(request, "monitors.html", title="Monitoring", section="monitors", page_=page)


def _points(windows: tuple[float, ...], values: tuple[Any, ...]) -> list[tuple[float, float]]:
    return [(w, float(v)) for w, v in zip(windows, values, strict=True) if v is not None]


def monitor_page(ui: UI, request: Request, name: str) -> Response:
    monitor = mq.get_monitor(ui.store, name)
    series = mq.monitor_series(ui.store, name, limit=SERIES_WINDOWS)
    w = series.windows
    threshold = monitor.options.get("drift_share") if monitor.options else None
    drift_share = line_chart(
        {"drift share": _points(w, series.drift_share)},
        label="drift share per window",
        x_time=True,
        threshold=float(threshold) if isinstance(threshold, (int, float)) else None,
    )
    # The features that drifted most often (then highest score) get a line.
    ranked = sorted(
        series.drift,
        key=lambda f: (-sum(series.drifted[f]), -max((s or 0.0) for s in series.drift[f])),
    )
    feature_chart = line_chart(
        {f: _points(w, series.drift[f]) for f in ranked[:MAX_FEATURE_LINES]},
        label="drift score per feature",
        x_time=True,
        height=240,
    )
    performance = line_chart(
        {k: _points(w, v) for k, v in series.metrics.items()},
        label="performance per window",
        x_time=True,
    )
    quality = line_chart(
        {
            "quality issues": _points(w, series.quality),
        },
        label="data quality issues per window",
        x_time=True,
    )
    recent = slice(max(len(w) - HEAT_WINDOWS, 0), len(w))
    heat = {
        "windows": list(
            zip(w[recent], series.report_ids[recent], series.model_versions[recent], strict=True)
        ),
        "features": [
            (f, list(zip(series.drift[f][recent], series.drifted[f][recent], strict=True)))
            for f in ranked
        ],
    }
    reports = mq.list_reports(
        ui.store,
        name,
        before=request.query_params.get("before") or None,
        after=request.query_params.get("after") or None,
        limit=20,
    )
    # The events the listed window reports caused, and the runs they started.
    events = uq.events_for_reports(ui.store, [r.id for r in reports.items])
    return ui.render(
        request,
        "monitor.html",
        title=f"Monitor {name}",
        section="monitors",
        m=monitor,
        drift_share=markup(drift_share),
        feature_chart=markup(feature_chart),
        performance=markup(performance),
        quality=markup(quality),
        heat=heat,
        reports=reports,
        events=events,
        model_name=monitor.model_ref.split("@")[0].split("/")[0],
    )


def report_page(ui: UI, request: Request, name: str, report_id: str) -> Response:
    detail = mq.get_report(ui.store, report_id)
    if detail.summary.monitor != name:
        return ui.error(
            request,
            404,
            f"Report {report_id} belongs to monitor {detail.summary.monitor!r}, "
            f"not {name!r}. Open /monitors/{detail.summary.monitor}/reports/{report_id}.",
        )
    events = tq.list_trigger_events(ui.store, report_id=report_id, limit=EVENTS).items
    features = sorted(
        (detail.report.get("drift") or {}).get("features") or [],
        key=lambda f: (not f.get("drifted"), -(f.get("score") or 0.0)),
    )
    return ui.render(
        request,
        "report.html",
        title=f"Report {report_id[:10]}",
        section="monitors",
        s=detail.summary,
        r=detail.report,
        features=features,
        events=events,
    )


def report_html(ui: UI, request: Request, name: str, report_id: str) -> Response:
    """The window report as one self-contained page (stored HTML, else rendered now)."""
    detail = mq.get_report(ui.store, report_id)
    if detail.summary.monitor != name:
        return ui.error(request, 404, f"Report {report_id} does not belong to {name!r}.")
    if detail.summary.has_html:
        return HTMLResponse(mq.report_html(ui.store, ui.artifacts, report_id))
    from conveyor.monitoring.html import render_report

    return HTMLResponse(render_report(detail.report))


def triggers_page(ui: UI, request: Request) -> Response:
    params = request.query_params
    events = tq.list_trigger_events(
        ui.store,
        pipeline=params.get("pipeline") or None,
        kind=params.get("kind") or None,
        status=params.get("status") or None,
        before=params.get("before") or None,
        after=params.get("after") or None,
    )
    states = tq.list_triggers(ui.store, limit=100)
    return ui.render(
        request,
        "triggers.html",
        title="Triggers",
        section="monitors",
        events=events.items,
        events_page=events,
        states=states,
        filters={k: params.get(k, "") for k in ("pipeline", "kind", "status")},
    )


def add_routes(ui: UI, router: APIRouter) -> None:
    def monitors(request: Request) -> Response:
        return list_page(ui, request)

    def monitor(request: Request, name: str) -> Response:
        return monitor_page(ui, request, name)

    def report(request: Request, name: str, report_id: str) -> Response:
        return report_page(ui, request, name, report_id)

    def html(request: Request, name: str, report_id: str) -> Response:
        return report_html(ui, request, name, report_id)

    def triggers(request: Request) -> Response:
        return triggers_page(ui, request)

    router.add_api_route("/monitors", page_guard(ui, monitors), methods=["GET"])
    router.add_api_route("/monitors/{name}", page_guard(ui, monitor), methods=["GET"])
    router.add_api_route(
        "/monitors/{name}/reports/{report_id}", page_guard(ui, report), methods=["GET"]
    )
    router.add_api_route(
        "/monitors/{name}/reports/{report_id}/page", page_guard(ui, html), methods=["GET"]
    )
    router.add_api_route("/triggers", page_guard(ui, triggers), methods=["GET"])
