"""Routes of runs, step runs, logs, metrics, comparison, artifacts and lineage."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from conveyor.api.app import json_response, returns, stores
from conveyor.api.auth import Principal, csrf_token, current_principal, require_viewer
from conveyor.api.queries import Page, QueryError
from conveyor.api.queries import artifacts as aq
from conveyor.api.queries import lineage as lq
from conveyor.api.queries import runs as rq

router = APIRouter(dependencies=[Depends(require_viewer)])

Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Before = Annotated[str | None, Query(description="Cursor: the next_cursor of the previous page.")]
After = Annotated[str | None, Query(description="Cursor: the prev_cursor of the following page.")]


def _tags(values: list[str] | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for value in values or []:
        key, sep, wanted = value.partition(":")
        if not sep or not key:
            raise QueryError(f"The 'tag' filter must be KEY:VALUE. Got {value!r}.")
        tags[key] = wanted
    return tags


@router.get("/whoami", tags=["auth"])
def whoami(principal: Annotated[Principal, Depends(current_principal)]) -> Any:
    """The principal of this request (token name and role)."""
    return json_response(principal)


@router.get("/csrf", tags=["auth"])
def csrf(request: Request) -> Any:
    """The CSRF token to send as X-CSRF-Token with POSTs not authenticated by a header."""
    return json_response({"csrf_token": csrf_token(request)})


@router.get("/runs", tags=["runs"])
@returns(Page[rq.RunSummary])
def list_runs(
    request: Request,
    pipeline: str | None = None,
    status: str | None = None,
    trigger: Annotated[
        str | None, Query(description="Trigger kind (schedule, new_data, drift, ...) or none.")
    ] = None,
    tag: Annotated[list[str] | None, Query(description="KEY:VALUE, repeatable.")] = None,
    created_after: float | None = None,
    created_before: float | None = None,
    q: Annotated[str | None, Query(description="Run id prefix or pipeline substring.")] = None,
    sort: Annotated[
        str,
        Query(
            description="created_at, duration, metric:KEY (last value) or param:KEY (numbers "
            "by value, then other values by text); '-' for descending. Runs without the "
            "metric or param come last."
        ),
    ] = "-created_at",
    metric: Annotated[
        list[str] | None, Query(description="Metric keys to include per run, repeatable.")
    ] = None,
    before: Before = None,
    after: After = None,
    limit: Limit = 50,
) -> Any:
    """Runs matching the filters, newest first by default."""
    page = rq.list_runs(
        stores(request).metadata,
        pipeline=pipeline,
        status=status,
        trigger=trigger,
        tags=_tags(tag),
        created_after=created_after,
        created_before=created_before,
        search=q,
        sort=sort,
        metrics=metric or (),
        before=before,
        after=after,
        limit=limit,
    )
    return json_response(page)


@router.get("/pipelines", tags=["runs"])
@returns(list[str])
def pipelines(request: Request) -> Any:
    """Names of the pipelines that have runs."""
    return json_response(rq.pipelines(stores(request).metadata))


@router.get("/metric-keys", tags=["runs"])
@returns(list[str])
def metric_keys(request: Request, pipeline: str | None = None) -> Any:
    """Metric keys logged by recent runs (of a pipeline)."""
    return json_response(rq.metric_keys(stores(request).metadata, pipeline=pipeline))


@router.get("/compare", tags=["runs"])
@returns(rq.RunComparison)
def compare(
    request: Request,
    runs: Annotated[
        list[str] | None,
        Query(description="Run ids separated by commas (1..50): ?runs=ID1,ID2. Repeatable."),
    ] = None,
    run: Annotated[
        list[str] | None, Query(description="One run id, repeatable (the older form).")
    ] = None,
) -> Any:
    """Params, metrics, code and data versions and cache keys of several runs."""
    ids = rq.split_run_ids([*(runs or ()), *(run or ())])
    return json_response(rq.compare_runs(stores(request).metadata, ids))


@router.get("/runs/{run_id}", tags=["runs"])
@returns(rq.RunDetail)
def get_run(request: Request, run_id: str) -> Any:
    """One run (a unique id prefix works)."""
    return json_response(rq.get_run(stores(request).metadata, run_id))


@router.get("/runs/{run_id}/steps", tags=["runs"])
@returns(Page[rq.StepRunSummary])
def list_steps(
    request: Request,
    run_id: str,
    status: str | None = None,
    before: Before = None,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=rq.MAX_STEPS_PAGE)] = 500,
) -> Any:
    """The step runs of a run, in planning order."""
    page = rq.list_step_runs(
        stores(request).metadata, run_id, status=status, before=before, after=after, limit=limit
    )
    return json_response(page)


@router.get("/runs/{run_id}/graph", tags=["runs"])
@returns(rq.RunGraph)
def run_graph(request: Request, run_id: str) -> Any:
    """Every step run of a run and the artifact edges between them."""
    return json_response(rq.run_graph(stores(request).metadata, run_id))


@router.get("/runs/{run_id}/metrics", tags=["runs"])
@returns(dict[str, list[rq.MetricPoint]])
def run_metrics(
    request: Request,
    run_id: str,
    key: Annotated[list[str] | None, Query(description="Only these keys, repeatable.")] = None,
) -> Any:
    """Every logged value of each metric of a run."""
    return json_response(rq.run_metrics(stores(request).metadata, run_id, keys=key))


@router.get("/runs/{run_id}/artifacts", tags=["artifacts"])
@returns(Page[aq.ArtifactSummary])
def run_artifacts(
    request: Request, run_id: str, before: Before = None, after: After = None, limit: Limit = 200
) -> Any:
    """Artifacts the run's steps wrote or reused from the cache."""
    metadata = stores(request).metadata
    resolved = rq.resolve_run_id(metadata, run_id)
    page = aq.list_artifacts(metadata, run_id=resolved, before=before, after=after, limit=limit)
    return json_response(page)


@router.get("/runs/{run_id}/steps/{name}", tags=["runs"])
@returns(rq.StepRunDetail)
def step_by_name(request: Request, run_id: str, name: str) -> Any:
    """A step run of a run, by its invocation name."""
    metadata = stores(request).metadata
    return json_response(rq.get_step_run(metadata, rq.find_step_run_id(metadata, run_id, name)))


@router.get("/step-runs/{step_run_id}", tags=["runs"])
@returns(rq.StepRunDetail)
def get_step_run(request: Request, step_run_id: str) -> Any:
    """A step run with inputs, outputs and why it ran or hit the cache."""
    return json_response(rq.get_step_run(stores(request).metadata, step_run_id))


@router.get("/step-runs/{step_run_id}/logs", tags=["runs"])
@returns(rq.StepLogs)
def step_logs(request: Request, step_run_id: str, plain: bool = False) -> Any:
    """The captured output of a step run (``plain=true`` for text/plain)."""
    logs = rq.step_logs(stores(request).metadata, step_run_id)
    if plain:
        return Response(logs.text, media_type="text/plain; charset=utf-8")
    return json_response(logs)


@router.get("/artifacts", tags=["artifacts"])
@returns(Page[aq.ArtifactSummary])
def list_artifacts(
    request: Request,
    run_id: str | None = None,
    name: str | None = None,
    before: Before = None,
    after: After = None,
    limit: Limit = 50,
) -> Any:
    """Artifacts, newest first."""
    page = aq.list_artifacts(
        stores(request).metadata, run_id=run_id, name=name, before=before, after=after, limit=limit
    )
    return json_response(page)


@router.get("/artifacts/{artifact_id}", tags=["artifacts"])
@returns(aq.ArtifactDetail)
def get_artifact(request: Request, artifact_id: str) -> Any:
    """An artifact with the step runs that produced and consumed it."""
    return json_response(aq.get_artifact(stores(request).metadata, artifact_id))


@router.get("/artifacts/{artifact_id}/preview", tags=["artifacts"])
@returns(aq.ArtifactPreview)
def preview_artifact(
    request: Request,
    artifact_id: str,
    rows: Annotated[int, Query(ge=1, le=aq.MAX_PREVIEW_ROWS)] = aq.PREVIEW_ROWS,
) -> Any:
    """Head and schema of a table, head of an array, a JSON value, or the summary."""
    found = stores(request)
    return json_response(
        aq.preview_artifact(found.metadata, found.artifacts, artifact_id, rows=rows)
    )


@router.get("/artifacts/{artifact_id}/download", tags=["artifacts"])
def download_artifact(request: Request, artifact_id: str) -> Response:
    """The stored bytes of an artifact, verified against its content hash."""
    found = stores(request)
    blob = aq.artifact_bytes(found.metadata, found.artifacts, artifact_id)
    return Response(
        blob.data,
        media_type=blob.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{blob.filename}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/lineage", tags=["lineage"])
@returns(lq.LineageGraph)
def lineage(
    request: Request,
    node: Annotated[
        str,
        Query(
            description="artifact:ID, step:ID, run:ID, model:NAME:VERSION, model:NAME@ALIAS, "
            "dataset:NAME:VERSION or request:ID."
        ),
    ],
    direction: Annotated[str, Query(description="up, down or both.")] = "both",
    depth: Annotated[int, Query(ge=1, le=lq.MAX_DEPTH)] = 10,
    max_nodes: Annotated[int, Query(ge=1, le=lq.MAX_NODES)] = 500,
) -> Any:
    """The lineage graph around a node, up (where it came from) and/or down."""
    found = stores(request)
    graph = lq.lineage_graph(
        found.metadata,
        node,
        direction=direction,
        depth=depth,
        max_nodes=max_nodes,
        artifacts=found.artifacts,
    )
    return json_response(graph)
