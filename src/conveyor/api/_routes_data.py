"""Routes of datasets, monitors and reports, tuning studies, triggers and events."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import HTMLResponse

from conveyor.api.app import json_response, returns, stores
from conveyor.api.auth import require_viewer
from conveyor.api.queries import Page
from conveyor.api.queries import datasets as dq
from conveyor.api.queries import events as eq
from conveyor.api.queries import monitors as mq
from conveyor.api.queries import triggers as trq
from conveyor.api.queries import tuning as tq

router = APIRouter(dependencies=[Depends(require_viewer)])

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Before = Annotated[str | None, Query(description="Cursor: the next_cursor of the previous page.")]
After = Annotated[str | None, Query(description="Cursor: the prev_cursor of the following page.")]


# ---------------------------------------------------------------------------- datasets
@router.get("/datasets", tags=["datasets"])
@returns(Page[dq.DatasetSummary])
def list_datasets(
    request: Request, before: Before = None, after: After = None, limit: Limit = 50
) -> Any:
    """Datasets by name with their newest version."""
    page = dq.list_datasets(stores(request).metadata, before=before, after=after, limit=limit)
    return json_response(page)


@router.get("/datasets/{name}/versions", tags=["datasets"])
@returns(Page[dq.DatasetVersionSummary])
def list_versions(
    request: Request, name: str, before: Before = None, after: After = None, limit: Limit = 50
) -> Any:
    """Versions of a dataset, newest first."""
    page = dq.list_dataset_versions(
        stores(request).metadata, name, before=before, after=after, limit=limit
    )
    return json_response(page)


@router.get(
    "/datasets/{name}/versions/{version}",
    tags=["datasets"],
)
@returns(dq.DatasetVersionDetail)
def get_version(request: Request, name: str, version: int) -> Any:
    """A version with the runs that read it and its validation reports."""
    return json_response(dq.get_dataset_version(stores(request).metadata, name, version))


@router.get("/datasets/{name}/versions/{version}/profile", tags=["datasets"])
def profile(request: Request, name: str, version: int) -> Any:
    """The version's Profile: per-column statistics, histogram and top values."""
    found = stores(request)
    return json_response(dq.dataset_profile(found.metadata, found.artifacts, name, version))


@router.get("/datasets/{name}/versions/{version}/schema", tags=["datasets"])
def schema(request: Request, name: str, version: int) -> Any:
    """The schema inferred from the version's Profile."""
    found = stores(request)
    return json_response(dq.dataset_schema(found.metadata, found.artifacts, name, version))


@router.get("/validation-reports/{artifact_id}", tags=["datasets"])
def validation_report(request: Request, artifact_id: str) -> Any:
    """A stored validation report: anomalies and drift per column."""
    found = stores(request)
    return json_response(dq.validation_report(found.metadata, found.artifacts, artifact_id))


# ---------------------------------------------------------------------------- monitors
@router.get("/monitors", tags=["monitoring"])
@returns(Page[mq.MonitorSummary])
def list_monitors(
    request: Request, before: Before = None, after: After = None, limit: Limit = 50
) -> Any:
    """Monitors with their newest report."""
    page = mq.list_monitors(stores(request).metadata, before=before, after=after, limit=limit)
    return json_response(page)


@router.get("/monitors/{name}", tags=["monitoring"])
@returns(mq.MonitorSummary)
def get_monitor(request: Request, name: str) -> Any:
    """One monitor with its newest report."""
    return json_response(mq.get_monitor(stores(request).metadata, name))


@router.get("/monitors/{name}/reports", tags=["monitoring"])
@returns(Page[mq.ReportSummary])
def list_reports(
    request: Request,
    name: str,
    model_version: int | None = None,
    drift_only: bool = False,
    before: Before = None,
    after: After = None,
    limit: Limit = 50,
) -> Any:
    """Window reports of a monitor, newest first."""
    page = mq.list_reports(
        stores(request).metadata,
        name,
        model_version=model_version,
        drift_only=drift_only,
        before=before,
        after=after,
        limit=limit,
    )
    return json_response(page)


@router.get("/monitors/{name}/series", tags=["monitoring"])
@returns(mq.MonitorSeries)
def series(
    request: Request,
    name: str,
    since: float | None = None,
    limit: Annotated[int, Query(ge=1, le=mq.MAX_SERIES)] = 500,
) -> Any:
    """Drift per feature, performance and quality per window, oldest first."""
    return json_response(
        mq.monitor_series(stores(request).metadata, name, since=since, limit=limit)
    )


@router.get("/reports/{report_id}", tags=["monitoring"])
@returns(mq.ReportDetail)
def get_report(request: Request, report_id: str) -> Any:
    """A window report with its full document."""
    return json_response(mq.get_report(stores(request).metadata, report_id))


@router.get("/reports/{report_id}/html", response_class=HTMLResponse, tags=["monitoring"])
def report_html(request: Request, report_id: str) -> HTMLResponse:
    """The stored HTML page of a window report."""
    found = stores(request)
    return HTMLResponse(
        mq.report_html(found.metadata, found.artifacts, report_id),
        headers={
            "Content-Security-Policy": "script-src 'none'",
            "X-Content-Type-Options": "nosniff",
        },
    )


# ---------------------------------------------------------------------------- tuning
@router.get("/tuning/studies", tags=["tuning"])
@returns(Page[tq.StudySummary])
def list_studies(
    request: Request, before: Before = None, after: After = None, limit: Limit = 50
) -> Any:
    """Tuning studies, newest first, with trial counts and best value."""
    page = tq.list_studies(stores(request).metadata, before=before, after=after, limit=limit)
    return json_response(page)


@router.get("/tuning/studies/{name}", tags=["tuning"])
@returns(tq.StudySummary)
def get_study(request: Request, name: str) -> Any:
    """One study."""
    return json_response(tq.get_study(stores(request).metadata, name))


@router.get("/tuning/studies/{name}/trials", tags=["tuning"])
@returns(Page[tq.Trial])
def list_trials(
    request: Request,
    name: str,
    state: str | None = None,
    before: Before = None,
    after: After = None,
    limit: Limit = 100,
) -> Any:
    """Trials of a study by number."""
    page = tq.list_trials(
        stores(request).metadata, name, state=state, before=before, after=after, limit=limit
    )
    return json_response(page)


@router.get("/tuning/studies/{name}/history", tags=["tuning"])
@returns(tq.StudyHistory)
def history(request: Request, name: str) -> Any:
    """Optimization history and parameter importances."""
    return json_response(tq.study_history(stores(request).metadata, name))


# ---------------------------------------------------------------------------- triggers
@router.get("/triggers", tags=["triggers"])
@returns(Page[trq.TriggerState])
def list_triggers(
    request: Request,
    pipeline: str | None = None,
    before: Before = None,
    after: After = None,
    limit: Limit = 50,
) -> Any:
    """Triggers the scheduler evaluated, with when they last fired."""
    page = trq.list_triggers(
        stores(request).metadata, pipeline=pipeline, before=before, after=after, limit=limit
    )
    return json_response(page)


@router.get("/trigger-events", tags=["triggers"])
@returns(Page[trq.TriggerEvent])
def list_trigger_events(
    request: Request,
    pipeline: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    trigger_key: str | None = None,
    report_id: str | None = None,
    run_id: str | None = None,
    before: Before = None,
    after: After = None,
    limit: Limit = 50,
) -> Any:
    """Trigger decisions, newest first, with the status of the runs they started."""
    page = trq.list_trigger_events(
        stores(request).metadata,
        pipeline=pipeline,
        kind=kind,
        status=status,
        trigger_key=trigger_key,
        report_id=report_id,
        run_id=run_id,
        before=before,
        after=after,
        limit=limit,
    )
    return json_response(page)


@router.get("/events", tags=["events"])
@returns(Page[eq.Event])
def list_events(
    request: Request,
    kind: str | None = None,
    subject: str | None = None,
    before: Before = None,
    after: After = None,
    limit: Limit = 50,
) -> Any:
    """The event log, newest first."""
    page = eq.list_events(
        stores(request).metadata,
        kind=kind,
        subject=subject,
        before=before,
        after=after,
        limit=limit,
    )
    return json_response(page)
