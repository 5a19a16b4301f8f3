"""`conveyor export`: the same pipeline as an Airflow DAG, an Argo or KFP workflow, or
Kubernetes serving manifests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from conveyor.cli import common

if TYPE_CHECKING:
    from conveyor.export.plan import ExportPlan

export_app = typer.Typer(
    help="Run where teams already run: Airflow, Argo, Kubeflow Pipelines, Kubernetes.",
    no_args_is_help=True,
)

Target = Annotated[str, typer.Argument(help="FILE.py:PIPELINE or package.module:PIPELINE")]
Output = Annotated[Path, typer.Option("--output", "-o", help="The file to write.")]
Params = Annotated[
    Optional[list[str]],  # noqa: UP045 - typer needs Optional on 3.11
    typer.Option("--param", "-p", help="Parameter the plan is built with (key=value)."),
]
AllowLocal = Annotated[
    bool,
    typer.Option(
        "--allow-local", help="Allow a SQLite file and a local folder (single-machine only)."
    ),
]
Image = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(help="Container image holding the project and conveyor."),
]


def _write(path: Path, text: str) -> None:
    from conveyor._internal.files import write_atomic

    if not path.parent.resolve().is_dir():
        common.fail(f"The folder of {path} does not exist. Create it first.")
    write_atomic(path, text.encode())


def _plan(
    ctx: typer.Context, target: str, param: list[str] | None, allow_local: bool
) -> ExportPlan:
    from conveyor.exceptions import ConveyorError
    from conveyor.execution.loader import load_pipeline, parse_params
    from conveyor.export.plan import check_shared_stores, export_plan

    settings = common.settings(ctx)
    try:
        check_shared_stores(settings, allow_local=allow_local)
        pipeline = load_pipeline(target, settings.root)
        params = parse_params(pipeline, param or [])
        return export_plan(pipeline, target, params, project_dir=settings.root)
    except ConveyorError as exc:
        common.fail(str(exc), code=2)


@export_app.command("airflow")
def airflow(
    ctx: typer.Context,
    target: Target,
    output: Output,
    param: Params = None,
    image: Image = None,
    operator: Annotated[
        str, typer.Option(help="python (the worker's environment) or kubernetes (a pod).")
    ] = "python",
    allow_local: AllowLocal = False,
) -> None:
    """An Airflow DAG file: one task per step, `conveyor task run` inside each."""
    from conveyor.export.airflow import render_airflow

    plan = _plan(ctx, target, param, allow_local)
    try:
        text = render_airflow(plan, operator=operator, image=image)
    except ValueError as exc:
        common.fail(str(exc), code=2)
    _write(output, text)
    common.console().print(
        f"Wrote DAG {plan.name!r} ({len(plan.tasks)} steps, {len(text):,} bytes) to {output}."
    )


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")


def _dump(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True)
