"""`conveyor task`: the entrypoint orchestrators call, one process per node of a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from conveyor.cli import common

task_app = typer.Typer(
    help="Run one node of a run (what exported Airflow / Argo / KFP workflows call).",
    no_args_is_help=True,
)

RunKey = Annotated[
    str,
    typer.Option(
        "--run-key", help="The orchestrator's id of this workflow run (e.g. Airflow's run_id)."
    ),
]
Target = Annotated[str, typer.Argument(help="FILE.py:PIPELINE or package.module:PIPELINE")]


def _pipeline(ctx: typer.Context, target: str) -> Any:
    from conveyor.execution.loader import load_pipeline

    with common.errors_to_exit():
        return load_pipeline(target, common.settings(ctx).root)


@task_app.command("start")
def start(
    ctx: typer.Context,
    target: Target,
    run_key: RunKey,
    orchestrator: Annotated[str, typer.Option(help="Who drives the run.")] = "airflow",
    params_json: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on 3.11
        typer.Option("--params-json", help="Pipeline parameters as one JSON object."),
    ] = None,
    tag: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--tag", help="key=value tag of the run (repeatable)."),
    ] = None,
    pairs: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(help="Pipeline parameters as key=value (after --params-json's)."),
    ] = None,
) -> None:
    """Create the run (the first task); a retried start finds the run it created."""
    from conveyor.execution.loader import parse_params
    from conveyor.execution.task import start_run

    pipeline = _pipeline(ctx, target)
    try:
        raw = json.loads(params_json) if params_json else {}
    except json.JSONDecodeError as exc:
        common.fail(f"--params-json is not JSON ({exc.msg}). Pass one object, e.g. '{{\"n\": 3}}'.")
    if not isinstance(raw, dict):
        common.fail("--params-json must be a JSON object, e.g. '{\"n\": 3}'.")
    tags = {}
    for item in tag or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            common.fail(f"--tag {item!r} must look like key=value.")
        tags[key] = value
    with common.errors_to_exit():
        given = [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in raw.items()]
        params = parse_params(pipeline, [*given, *(pairs or [])])
        run_id = start_run(
            pipeline,
            params,
            common.settings(ctx),
            run_key=run_key,
            orchestrator=orchestrator,
            tags=tags,
        )
    typer.echo(run_id)


@task_app.command("run")
def run(
    ctx: typer.Context,
    target: Target,
    run_key: RunKey,
    node: Annotated[str, typer.Option(help="The node (step invocation) to execute.")],
    index: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Child index of a dynamic map node (empty: none)."),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Re-run even on a hit.")] = False,
) -> None:
    """Execute one node with the same cache key, records and lineage as a local run."""
    from conveyor.execution.task import run_task

    position = None
    if index not in (None, ""):
        if not index.isdigit():
            common.fail(f"--index must be a non-negative integer. Got {index!r}.")
        position = int(index)
    pipeline = _pipeline(ctx, target)
    with common.errors_to_exit():
        outcome = run_task(
            pipeline,
            common.settings(ctx),
            run_key=run_key,
            node=node,
            index=position,
            cache=False if no_cache else None,
        )
    if outcome.status == "failed":
        common.fail(f"{outcome.node} of run {outcome.run_id} failed: {outcome.error}")
    typer.echo(f"{outcome.node} of run {outcome.run_id}: {outcome.status}")


@task_app.command("width")
def width(
    ctx: typer.Context,
    target: Target,
    run_key: RunKey,
    node: Annotated[str, typer.Option(help="The dynamic map node.")],
    output: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            help="Also write the indices to this file as a JSON list of strings (a KFP "
            "output parameter: each ParallelFor item is then the string --index takes)."
        ),
    ] = None,
) -> None:
    """Print the indices of a dynamic map's children as a JSON list (for fan-out)."""
    from conveyor.execution.task import map_width

    pipeline = _pipeline(ctx, target)
    with common.errors_to_exit():
        count = map_width(pipeline, common.settings(ctx), run_key=run_key, node=node)
    if output is not None:
        from conveyor._internal.files import write_atomic

        # KFP passes LIST items through protobuf Struct, where numbers become floats
        # ("0.0"); strings reach --index unchanged.
        output.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(output, json.dumps([str(i) for i in range(count)]).encode())
    typer.echo(json.dumps(list(range(count))))


@task_app.command("finish")
def finish(ctx: typer.Context, target: Target, run_key: RunKey) -> None:
    """Record the run's final status and outputs (the last task, whatever happened before)."""
    from conveyor.execution.task import finish_run

    pipeline = _pipeline(ctx, target)
    with common.errors_to_exit():
        status = finish_run(pipeline, common.settings(ctx), run_key=run_key)
    typer.echo(status)
    if status != "completed":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(task_app, name="task")
