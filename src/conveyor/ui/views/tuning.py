"""Tuning: studies, a study's trials table, optimization history, parameter importances."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from conveyor.api.queries import tuning as tq
from conveyor.ui.svg import bar_chart, line_chart
from conveyor.ui.views._base import UI, markup, page_guard, query_int

if TYPE_CHECKING:
    from fastapi import APIRouter

MAX_PARAM_COLUMNS = 12


def list_page(ui: UI, request: Request) -> Response:
    page = tq.list_studies(
        ui.store,
        before=request.query_params.get("before") or None,
        after=request.query_params.get("after") or None,
    )
    return ui.render(request, "studies.html", title="Tuning", section="tuning", page_=page)


def study_page(ui: UI, request: Request, name: str) -> Response:
    study = tq.get_study(ui.store, name)
    history = tq.study_history(ui.store, name)
    trials = tq.list_trials(
        ui.store,
        name,
        state=request.query_params.get("state") or None,
        before=request.query_params.get("before") or None,
        after=request.query_params.get("after") or None,
        limit=query_int(request, "limit", 100, 1, 1000),
    )
    numbers = [float(n) for n in history.numbers]
    chart = line_chart(
        {
            "objective": list(zip(numbers, history.values, strict=True)),
            "best so far": list(zip(numbers, history.best, strict=True)),
        },
        label=f"optimization history of {name}",
        width=560,
        height=240,
    )
    importances = bar_chart(
        list(history.importances.items()), label="parameter importances", percent=True
    )
    params = (
        sorted(study.space)[:MAX_PARAM_COLUMNS]
        or sorted({k for t in trials.items for k in t.params})[:MAX_PARAM_COLUMNS]
    )
    return ui.render(
        request,
        "study.html",
        title=f"Study {name}",
        section="tuning",
        s=study,
        history=markup(chart),
        importances=markup(importances),
        trials=trials,
        params=params,
        state=request.query_params.get("state") or "",
    )


def add_routes(ui: UI, router: APIRouter) -> None:
    def studies(request: Request) -> Response:
        return list_page(ui, request)

    def study(request: Request, name: str) -> Response:
        return study_page(ui, request, name)

    router.add_api_route("/tuning", page_guard(ui, studies), methods=["GET"])
    router.add_api_route("/tuning/{name}", page_guard(ui, study), methods=["GET"])
