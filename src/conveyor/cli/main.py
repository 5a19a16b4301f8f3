"""The root `conveyor` command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from conveyor.cli import (
    artifacts,
    cards,
    common,
    data,
    models,
    monitoring,
    predictions,
    serving,
    streaming,
)
from conveyor.cli import cache as cache_cli
from conveyor.cli import events as events_cli
from conveyor.cli import export as export_cli
from conveyor.cli import release as release_cli
from conveyor.cli import runs as runs_cli
from conveyor.cli import task as task_cli
from conveyor.cli import triggers as triggers_cli
from conveyor.cli import tune as tune_cli
from conveyor.cli import ui as ui_cli

app = typer.Typer(
    name="conveyor",
    help="Typed Python functions to versioned, cached, validated, monitored ML pipelines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from conveyor._version import __version__

        typer.echo(f"conveyor {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db_url: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on 3.11
        typer.Option("--db-url", help="Metadata store URL (overrides CONVEYOR_DB_URL)."),
    ] = None,
    artifact_url: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--artifact-url", help="Artifact store path or fsspec URL."),
    ] = None,
    server: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--server",
            help="A conveyor server URL (`conveyor ui`): runs list/show and models list go "
            "through its API, with the token in CONVEYOR_TOKEN or --server-token-file.",
        ),
    ] = None,
    server_token_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--server-token-file", help="File holding the token for --server."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """conveyor: pipelines that run, cache, resume and remember."""
    ctx.meta["conveyor.options"] = {"db_url": db_url, "artifact_url": artifact_url}
    ctx.meta["conveyor.server"] = (server, server_token_file)


runs_cli.register(app)
data.register(app)
models.register(app)
cards.register(models.models_app)
serving.register(app)
streaming.register(app)
monitoring.register(app)
release_cli.register(monitoring.monitor_app)
artifacts.register(app)
predictions.register(app)
triggers_cli.register(app)
tune_cli.register(app)
events_cli.register(app)
cache_cli.register(app)
export_cli.register(app)
task_cli.register(app)
ui_cli.register(app)


@app.command("init")
def init(
    path: Annotated[Path, typer.Argument(help="Folder to create the project in.")],
    force: Annotated[bool, typer.Option(help="Write into a non-empty folder.")] = False,
) -> None:
    """Scaffold a project: conveyor.toml, pipelines/, steps/, tests/ with a working example."""
    from conveyor.cli.scaffold import scaffold

    try:
        written = scaffold(path, force=force)
    except FileExistsError as exc:
        common.fail(str(exc))
    common.console().print(f"Created {len(written)} files in [bold]{path}[/]. Next:")
    common.console().print(
        f"  cd {path} && conveyor run pipelines/training.py:training -p test_size=0.25"
    )


@app.command("demo")
def demo(
    path: Annotated[
        Path, typer.Option(help="Folder for the demo's stores and reports (created if missing).")
    ] = Path("demo-project"),
    seed: Annotated[int, typer.Option(help="Seed of the generated customers.")] = 0,
) -> None:
    """The closed loop end to end: train, serve, drift, detect, retrain, gate, promote, reload."""
    from conveyor.cli.demo import run_demo

    raise typer.Exit(run_demo(path, seed))


def main() -> None:
    try:
        app()
    except Exception as exc:  # a command let an error through: still one line, no traceback
        raise SystemExit(common.report_uncaught(exc)) from None


if __name__ == "__main__":
    main()
