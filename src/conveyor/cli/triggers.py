"""`conveyor triggers list`, `triggers events` and `triggers retry EVENT`."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from conveyor.cli import common

triggers_app = typer.Typer(
    help="Schedules and triggers: their state, their events, retries.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripting.")]
_STYLE = {"completed": "green", "failed": "red", "fired": "yellow", "suppressed": "dim"}


@triggers_app.command("list")
def triggers_list(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Every trigger a scheduler has registered: spec, fires, last fire and run."""
    from conveyor.triggers.retry import list_triggers

    with common.errors_to_exit():
        rows = list_triggers(common.metadata_store(ctx).engine)
    if json_out:
        common.print_json(rows)
        return
    if not rows:
        common.console().print(
            "No triggers yet; `conveyor scheduler` registers those of the pipelines it runs."
        )
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("trigger", "pipeline", "kind", "spec", "fired", "last fired", "last run"):
        table.add_column(column)
    for row in rows:
        spec = {k: v for k, v in (row["spec"] or {}).items() if k != "kind"}
        table.add_row(
            row["key"],
            row["pipeline"],
            row["kind"],
            json.dumps(spec, sort_keys=True, default=str),
            str(row["fire_count"]),
            common.format_time(row["last_fired_at"]),
            row["last_run_id"] or "-",
        )
    common.console().print(table)


@triggers_app.command("events")
def triggers_events(
    ctx: typer.Context,
    pipeline: Annotated[Optional[str], typer.Option(help="Only this pipeline.")] = None,  # noqa: UP045
    status: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Only this status: fired, completed, failed or suppressed."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Events shown.")] = 50,
    json_out: JsonFlag = False,
) -> None:
    """Trigger events, newest first: why each fired or was suppressed, and its run."""
    from conveyor.triggers.state import list_events

    statuses = ("fired", "completed", "failed", "suppressed")
    if status is not None and status not in statuses:
        common.fail(f"--status must be one of {', '.join(statuses)}. Got {status!r} instead.")
    with common.errors_to_exit():
        engine = common.metadata_store(ctx).engine
        scan = limit if status is None else max(limit * 20, 1000)
        events = list_events(engine, limit=scan, pipeline=pipeline)
    if status is not None:
        events = [e for e in events if e["status"] == status]
    events = events[:limit]
    if json_out:
        common.print_json(events)
        return
    if not events:
        common.console().print("No trigger events.")
        return
    console = common.console()
    for event in events:
        style = _STYLE.get(event["status"], "white")
        retries = len((event["details"] or {}).get("retries", []))
        console.print(
            f"{event['id']}  {common.format_time(event['created_at'])}  {event['pipeline']}  "
            f"{event['kind']}  [{style}]{event['status']}[/]"
            + (f" (retried {retries}x)" if retries else "")
            + f"  run {event['run_id'] or '-'}",
            highlight=False,
            soft_wrap=True,
        )
        console.print(f"    {event['reason']}", highlight=False)


@triggers_app.command("retry")
def triggers_retry(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(help="Trigger event id (or a unique prefix).")],
    pipelines: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--pipeline",
            "-p",
            help="file.py:name holding the trigger (default: [scheduler] pipelines).",
        ),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Run the pipeline of a failed (or suppressed) trigger event again, on the same event."""
    from conveyor.execution.loader import load_pipeline
    from conveyor.triggers.retry import retry_event

    settings = common.settings(ctx)
    targets = list(pipelines or settings.extra.get("scheduler", {}).get("pipelines", []))
    if not targets:
        common.fail(
            "Which pipeline? Pass --pipeline file.py:name or set [scheduler] pipelines in "
            "conveyor.toml."
        )
    with common.errors_to_exit():
        loaded = [load_pipeline(target, settings.root) for target in targets]
        event = retry_event(event_id, loaded, settings=settings)
    if json_out:
        common.print_json(event)
    else:
        style = _STYLE.get(event["status"], "white")
        common.console().print(
            f"event {event['id']}: [{style}]{event['status']}[/] run {event['run_id'] or '-'} "
            f"({event['pipeline']}, {event['kind']}: {event['reason']})",
            highlight=False,
        )
    if event["status"] != "completed":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `conveyor triggers ...` to the root app."""
    app.add_typer(triggers_app, name="triggers")
