"""Datasets: the list, a dataset's versions, a version's profile, schema and validation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from conveyor.api.queries import datasets as dq
from conveyor.ui.svg import bar_chart, histogram, line_chart
from conveyor.ui.views._base import UI, BadRequest, markup, page_guard

if TYPE_CHECKING:
    from fastapi import APIRouter

MAX_PROFILE_CHARTS = 60


def _version_number(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(
            f"A dataset version is a number, like /datasets/customers/3. Got {raw!r}."
        ) from None


def list_page(ui: UI, request: Request) -> Response:
    page = dq.list_datasets(
        ui.store,
        before=request.query_params.get("before") or None,
        after=request.query_params.get("after") or None,
    )
    return ui.render(request, "datasets.html", title="Datasets", section="datasets", page_=page)


def dataset_page(ui: UI, request: Request, name: str) -> Response:
    versions = dq.list_dataset_versions(
        ui.store,
        name,
        before=request.query_params.get("before") or None,
        after=request.query_params.get("after") or None,
    )
    rows = (
        markup(
            line_chart(
                {"rows": [(float(v.version), float(v.row_count)) for v in versions.items]},
                label=f"row count per version of {name}",
            )
        )
        if len(versions.items) > 1
        else ""
    )
    return ui.render(
        request,
        "dataset.html",
        title=f"Dataset {name}",
        section="datasets",
        name=name,
        versions=versions,
        rows_chart=rows,
    )


def _charts(profile: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, column in list((profile.get("columns") or {}).items())[:MAX_PROFILE_CHARTS]:
        svg = ""
        hist = column.get("histogram")
        if hist:
            svg = histogram(hist.get("edges", []), hist.get("counts", []), label=f"{name}")
        elif column.get("top_k"):
            svg = bar_chart(
                [(str(k), float(v)) for k, v in column["top_k"][:12]],
                width=300,
                bar_height=14,
                label=f"top values of {name}",
            )
        out.append({"name": name, "column": column, "svg": markup(svg)})
    return out


def version_page(ui: UI, request: Request, name: str, version: str) -> Response:
    number = _version_number(version)
    detail = dq.get_dataset_version(ui.store, name, number)
    profile = dq.dataset_profile(ui.store, ui.artifacts, name, number)
    schema = dq.dataset_schema(ui.store, ui.artifacts, name, number)
    return ui.render(
        request,
        "dataset_version.html",
        title=f"Dataset {detail.version.ref}",
        section="datasets",
        d=detail,
        v=detail.version,
        profile=profile,
        charts=_charts(profile),
        schema=schema,
    )


def validation_page(ui: UI, request: Request, artifact_id: str) -> Response:
    report = dq.validation_report(ui.store, ui.artifacts, artifact_id)
    return ui.render(
        request,
        "validation.html",
        title="Validation report",
        section="datasets",
        report=report,
        artifact_id=artifact_id,
    )


def add_routes(ui: UI, router: APIRouter) -> None:
    def datasets(request: Request) -> Response:
        return list_page(ui, request)

    def dataset(request: Request, name: str) -> Response:
        return dataset_page(ui, request, name)

    def version(request: Request, name: str, version: str) -> Response:
        return version_page(ui, request, name, version)

    def validation(request: Request, artifact_id: str) -> Response:
        return validation_page(ui, request, artifact_id)

    router.add_api_route("/datasets", page_guard(ui, datasets), methods=["GET"])
    router.add_api_route("/datasets/{name}", page_guard(ui, dataset), methods=["GET"])
    router.add_api_route("/datasets/{name}/{version}", page_guard(ui, version), methods=["GET"])
    router.add_api_route("/validation/{artifact_id}", page_guard(ui, validation), methods=["GET"])
