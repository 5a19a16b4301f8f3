"""`conveyor cache explain`: what went into a step's cache key and why it re-ran."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from conveyor.cli import common

cache_app = typer.Typer(help="Inspect cache keys.", no_args_is_help=True)


def explain(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    step: Annotated[str, typer.Argument(help="Step invocation name, as in `runs show`.")],
    against: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on 3.11
        typer.Option(
            "--against",
            help="Another run to compare the step with (default: the step run a cache hit "
            "reused, or the previous run of the step).",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripting.")] = False,
) -> None:
    """The components of a step's cache key (code, values, parameters, inputs, packages,
    env vars) with short hashes, and which of them differ from another run's step."""
    from conveyor.execution.cache_explain import explain_step

    with common.errors_to_exit():
        result = explain_step(common.metadata_store(ctx), run_id, step, against=against)
    if json_out:
        common.print_json(result)
        return
    _print(result)


def _print(result: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = common.console()
    state = "cache hit" if result["cache_hit"] else result["status"]
    console.print(
        f"[bold]{escape(result['step'])}[/] of run {result['run']}: {state}, key "
        f"{result['cache_key'][:16]}",
        highlight=False,
    )
    table = Table(box=None, header_style="bold")
    for column in ("kind", "name", "where", "hash", "note"):
        table.add_column(column, overflow="fold")
    for component in result["components"]:
        table.add_row(
            component["kind"],
            escape(component["name"]),
            escape(component.get("where", "")),
            escape(component.get("value") or component["hash"][:12]),
            escape(component.get("note", "")),
        )
    console.print(table)
    console.print(escape(result["summary"]), highlight=False, soft_wrap=True)
    for difference in result["differences"]:
        console.print(f"  - {escape(difference['message'])}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    cache_app.command("explain")(explain)
    app.add_typer(cache_app, name="cache")
