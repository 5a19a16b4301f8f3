"""Runs list (filters, search, leaderboard columns, live status), run, step and compare pages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from conveyor.api.queries import artifacts as aq
from conveyor.api.queries import runs as q
from conveyor.ui import queries as uq
from conveyor.ui.svg import GraphEdge, GraphNode, TimelineBar, layered_graph, line_chart, timeline
from conveyor.ui.views._base import UI, BadRequest, markup, page_guard, query_date, query_int

if TYPE_CHECKING:
    from fastapi import APIRouter

STATUSES = ("running", "completed", "failed", "interrupted")
# Above this many steps a run's graph would be unreadable; the page shows a timeline.
MAX_DAG_STEPS = 500
MAX_METRIC_COLUMNS = 8
MAX_PARAM_COLUMNS = 8
MAX_CURVES = 12
STEPS_PER_PAGE = 200
MAX_OUTPUTS = 100


def _tag_filter(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    key, sep, value = raw.partition("=")
    if not sep or not key.strip():
        raise BadRequest(f"The 'tag' filter must look like key=value. Got {raw!r}.")
    return {key.strip(): value.strip()}


def runs_page(ui: UI, request: Request) -> Response:
    params = request.query_params
    pipeline = params.get("pipeline") or None
    sort = params.get("sort") or "-created_at"
    metric_keys = list(q.metric_keys(ui.store, pipeline=pipeline))[:MAX_METRIC_COLUMNS]
    page = q.list_runs(
        ui.store,
        pipeline=pipeline,
        status=params.get("status") or None,
        trigger=params.get("trigger") or None,
        tags=_tag_filter(params.get("tag")),
        created_after=query_date(request, "since"),
        created_before=query_date(request, "until", end_of_day=True),
        search=(params.get("q") or "").strip() or None,
        sort=sort,
        metrics=metric_keys,
        before=params.get("before") or None,
        after=params.get("after") or None,
        limit=query_int(request, "limit", 50, 1, 500),
    )
    param_keys = sorted({k for run in page.items for k in run.params})[:MAX_PARAM_COLUMNS]
    sorted_param = sort.lstrip("-").removeprefix("param:") if "param:" in sort else None
    if sorted_param and sorted_param not in param_keys:
        param_keys = [sorted_param, *param_keys[: MAX_PARAM_COLUMNS - 1]]
    return ui.render(
        request,
        "runs.html",
        title="Runs",
        section="runs",
        page_=page,
        pipelines=q.pipelines(ui.store),
        statuses=STATUSES,
        param_keys=param_keys,
        metric_keys=metric_keys,
        sort=sort,
        filters={
            k: params.get(k, "")
            for k in ("pipeline", "status", "trigger", "since", "until", "tag", "q")
        },
    )


def run_statuses(ui: UI, request: Request) -> Response:
    ids = (request.query_params.get("ids") or "").split(",")
    return JSONResponse({"statuses": uq.run_statuses(ui.store, ids)})


def _bars(
    steps: Sequence[q.StepRunSummary], origin: float | None, run_id: str
) -> list[TimelineBar]:
    starts = [s.started_at for s in steps if s.started_at is not None]
    base = origin if origin is not None else (min(starts) if starts else 0.0)
    bars = []
    for s in steps:
        if s.started_at is None:
            continue
        end = s.ended_at if s.ended_at is not None else s.started_at + (s.duration or 0.0)
        bars.append(
            TimelineBar(
                label=s.name,
                start=max(s.started_at - base, 0.0),
                end=max(end - base, 0.0),
                status=s.status,
                cached=s.cache_hit,
                href=f"/runs/{run_id}/steps/{s.id}",
            )
        )
    return bars


def run_page(ui: UI, request: Request, run_id: str) -> Response:
    detail = q.get_run(ui.store, run_id)
    run = detail.run
    total = sum(detail.step_counts.values())
    many = total > MAX_DAG_STEPS
    if many:
        # A timeline needs no edges: one query for the steps, none for the artifact links.
        steps = q.list_step_runs(ui.store, run.id, limit=q.MAX_STEPS_PAGE).items
        bars = _bars(steps, run.started_at, run.id)
        drawing = timeline(bars, lane_height=10, label=f"timeline of run {run.id}")
    else:
        graph = q.run_graph(ui.store, run.id)
        bars = _bars(graph.steps, run.started_at, run.id)
        drawing = layered_graph(
            [
                GraphNode(
                    id=s.id,
                    label=s.name,
                    status=s.status,
                    cached=s.cache_hit,
                    href=f"/runs/{run.id}/steps/{s.id}",
                    title=f"{s.name}: {s.status}{' (cache hit)' if s.cache_hit else ''}",
                )
                for s in graph.steps
            ],
            [GraphEdge(e.source, e.target) for e in graph.edges],
            label=f"DAG of run {run.id}",
        )
    strip = "" if many else timeline(bars, lane_height=7, label="timing strip", links=False)
    curves = {
        key: points for key, points in q.run_metrics(ui.store, run.id).items() if len(points) > 1
    }
    charts = []
    for key, points in list(curves.items())[:MAX_CURVES]:
        xy = [(float(p.step if p.step is not None else i), p.value) for i, p in enumerate(points)]
        charts.append((key, markup(line_chart({key: xy}, label=f"metric {key}"))))
    page = q.list_step_runs(
        ui.store,
        run.id,
        before=request.query_params.get("before") or None,
        after=request.query_params.get("after") or None,
        limit=STEPS_PER_PAGE,
    )
    outputs = aq.list_artifacts(ui.store, run_id=run.id, limit=MAX_OUTPUTS).items
    return ui.render(
        request,
        "run.html",
        title=f"Run {run.id[:10]}",
        section="runs",
        d=detail,
        run=run,
        drawing=markup(drawing),
        many=many,
        strip=markup(strip),
        charts=charts,
        steps=page,
        step_count=total,
        outputs=outputs,
        max_outputs=MAX_OUTPUTS,
        reload_when_done=run.status == "running",
    )


def step_page(ui: UI, request: Request, run_id: str, step_run_id: str) -> Response:
    detail = q.get_step_run(ui.store, step_run_id)
    if detail.step.run_id != run_id:
        raise BadRequest(
            f"Step run {step_run_id} belongs to run {detail.step.run_id}, not {run_id}. "
            f"Open /runs/{detail.step.run_id}/steps/{step_run_id}."
        )
    logs = q.step_logs(ui.store, step_run_id)
    return ui.render(
        request,
        "step.html",
        title=f"Step {detail.step.name}",
        section="runs",
        s=detail,
        logs=logs.text,
        explain=uq.cache_explanation(ui.store, step_run_id),
    )


def compare_page(ui: UI, request: Request) -> Response:
    params = request.query_params
    ids = q.split_run_ids([*params.getlist("runs"), *params.getlist("run")])
    if len(ids) < 2:
        raise BadRequest(
            "Compare needs at least two runs: tick them on the runs page, or open "
            "/compare?runs=ID1,ID2."
        )
    comparison = q.compare_runs(ui.store, ids)
    return ui.render(
        request,
        "compare.html",
        title=f"Compare {len(comparison.runs)} runs",
        section="runs",
        c=comparison,
    )


def add_routes(ui: UI, router: APIRouter) -> None:
    def runs(request: Request) -> Response:
        return runs_page(ui, request)

    def statuses(request: Request) -> Response:
        return run_statuses(ui, request)

    def run(request: Request, run_id: str) -> Response:
        return run_page(ui, request, run_id)

    def step(request: Request, run_id: str, step_run_id: str) -> Response:
        return step_page(ui, request, run_id, step_run_id)

    def compare(request: Request) -> Response:
        return compare_page(ui, request)

    router.add_api_route("/runs", page_guard(ui, runs), methods=["GET"])
    router.add_api_route("/runs/status.json", statuses, methods=["GET"])
    router.add_api_route("/runs/{run_id}", page_guard(ui, run), methods=["GET"])
    router.add_api_route(
        "/runs/{run_id}/steps/{step_run_id}", page_guard(ui, step), methods=["GET"]
    )
    router.add_api_route("/compare", page_guard(ui, compare), methods=["GET"])
