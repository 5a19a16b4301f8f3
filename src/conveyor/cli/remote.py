"""The CLI against a team server (`conveyor --server URL ...`), through `conveyor.client`.

Only the commands below work remotely; they print what their local versions print, from
the server's API, so a laptop needs no database credentials.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import typer

from conveyor.cli import common

if TYPE_CHECKING:
    from conveyor.client import Client

REMOTE_COMMANDS = ("runs list", "runs show", "models list")


def server_client(ctx: typer.Context) -> Client | None:
    """A client of the --server URL, or None when the command runs against local stores."""
    url, token_file = ctx.find_root().meta.get("conveyor.server", (None, None))
    if not url:
        return None
    from conveyor.client import Client
    from conveyor.exceptions import ConveyorError

    try:
        if token_file is not None:
            from conveyor.serving.auth import read_token

            token: str | None = read_token(token_file)
        else:
            token = os.environ.get("CONVEYOR_TOKEN") or None
        return Client(url, token=token)
    except ConveyorError as exc:
        common.fail(str(exc))


def refuse_local(ctx: typer.Context) -> None:
    """Fail when --server is given to a command that only works on local stores."""
    url, _ = ctx.find_root().meta.get("conveyor.server", (None, None))
    if url:
        common.fail(
            f"--server works with {', '.join(REMOTE_COMMANDS)}; this command needs the "
            "stores themselves (run it where the stores are, or without --server)."
        )


def _status(status: str) -> str:
    colour = {"completed": "green", "failed": "red", "running": "yellow"}.get(status, "white")
    return f"[{colour}]{status}[/]"


def runs_list(
    client: Client,
    *,
    limit: int,
    before: str | None,
    pipeline: str | None,
    status: str | None,
    metrics: Sequence[str],
    sort: str | None,
    json_out: bool,
) -> None:
    """`conveyor runs list` through the API."""
    from conveyor.exceptions import ConveyorError

    api_sort = "-created_at"
    if sort:
        descending = sort.startswith("-")
        key = sort.lstrip("-+")
        api_sort = ("-" if descending else "") + (
            key
            if key in ("created_at", "duration") or key.startswith(("metric:", "param:"))
            else f"metric:{key}"
        )
    try:
        page = client.runs(
            limit,
            pipeline=pipeline,
            status=status,
            metrics=metrics,
            sort=api_sort,
            before=before,
        )
    except ConveyorError as exc:
        common.fail(str(exc))
    if json_out:
        common.print_json({"items": page.items, "next_cursor": page.next_cursor})
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("run", "pipeline", "status", "started", "duration", *metrics, "params"):
        table.add_column(column)
    for run in page:
        params = ", ".join(f"{k}={v}" for k, v in (run.get("params") or {}).items())
        values = run.get("metrics") or {}
        table.add_row(
            run["id"],
            run["pipeline"],
            _status(run["status"]),
            common.format_time(run.get("started_at")),
            common.format_duration(run.get("duration")),
            *(_cell(values.get(k)) for k in metrics),
            params[:60],
        )
    common.console().print(table)
    if page.next_cursor:
        common.console().print(f"[dim]next page: --before {page.next_cursor}[/]")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def runs_show(client: Client, run_id: str, *, json_out: bool) -> None:
    """`conveyor runs show` through the API."""
    from conveyor.exceptions import ConveyorError

    try:
        detail = client.run(run_id)
        run = detail["run"]
        steps = client.steps(run["id"], limit=5000).items
    except ConveyorError as exc:
        common.fail(str(exc))
    if json_out:
        common.print_json({**detail, "steps": steps})
        return
    from rich.table import Table

    console = common.console()
    console.print(f"[bold]Run {run['id']}[/]  {run['pipeline']}  {_status(run['status'])}")
    console.print(
        f"started {common.format_time(run.get('started_at'))}, took "
        f"{common.format_duration(run.get('duration'))}, executor {run.get('executor')}, "
        f"code {run.get('code_sha') or '-'}{' (dirty)' if run.get('code_dirty') else ''}",
        highlight=False,
    )
    _pairs(console, "params", run.get("params"))
    _pairs(console, "outputs", detail.get("outputs"))
    if run.get("error"):
        console.print(f"[red]error:[/] {run['error']}", highlight=False, markup=False)
    table = Table(box=None, header_style="bold")
    for column in ("step", "status", "attempts", "duration", "cache"):
        table.add_column(column)
    for step in steps:
        table.add_row(
            step["name"],
            _status(step["status"]),
            str(step["attempts"]),
            common.format_duration(step.get("duration")),
            f"hit ({step['cache_source']})" if step.get("cache_hit") else "",
        )
    console.print(table)
    _pairs(console, "metrics", {k: _cell(v) for k, v in (run.get("metrics") or {}).items()})


def _pairs(console: Any, label: str, values: Mapping[str, Any] | None) -> None:
    if values:
        console.print(
            f"{label}: " + ", ".join(f"{k}={v}" for k, v in values.items()), highlight=False
        )


def models_list(client: Client, *, json_out: bool) -> None:
    """`conveyor models list` through the API (every page)."""
    from conveyor.exceptions import ConveyorError

    models: list[dict[str, Any]] = []
    cursor: str | None = None
    try:
        while True:
            page = client.models(200, before=cursor)
            models.extend(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    except ConveyorError as exc:
        common.fail(str(exc))
    if json_out:
        common.print_json(models)
        return
    if not models:
        common.console().print("No registered models yet.")
        return
    from rich.table import Table

    table = Table(title="Models", box=None, header_style="bold", title_justify="left")
    for column in ("name", "latest", "aliases", "updated", "description"):
        table.add_column(column)
    for m in models:
        table.add_row(
            m["name"],
            str(m["latest_version"]),
            ", ".join(f"{a}->{v}" for a, v in (m.get("aliases") or {}).items()) or "-",
            common.format_time(m.get("updated_at")),
            m.get("description") or "",
        )
    common.console().print(table)
