"""`conveyor tune list` and `conveyor tune show STUDY`: stored tuning studies, their trials,
the best trial and the best-so-far history."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from conveyor.cli import common

tune_app = typer.Typer(help="Stored tuning studies: trials, best, history.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripting.")]


def _value(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}"


def _params(params: dict[str, Any], limit: int = 80) -> str:
    text = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


@tune_app.command("list")
def tune_list(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Every stored study with its trial counts and best value, newest first."""
    from conveyor.training.studies import list_studies

    with common.errors_to_exit():
        studies = list_studies(common.metadata_store(ctx))
    if json_out:
        common.print_json(studies)
        return
    if not studies:
        common.console().print("No tuning studies yet; tune(..., study_name=...) stores one.")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("study", "direction", "trials", "completed", "best", "run", "created"):
        table.add_column(column)
    for row in studies:
        table.add_row(
            row["name"],
            row["direction"],
            str(row["trials"]),
            str(row["completed"]),
            _value(row["best_value"]),
            row["run_id"] or "-",
            common.format_time(row["created_at"]),
        )
    common.console().print(table)


@tune_app.command("show")
def tune_show(
    ctx: typer.Context,
    study: Annotated[str, typer.Argument(help="Study name (or id).")],
    limit: Annotated[int, typer.Option(help="Trials listed (the best ones first).")] = 20,
    json_out: JsonFlag = False,
) -> None:
    """One study: its space, the best trial, the best-so-far history and the trials."""
    from conveyor.training.studies import get_study

    with common.errors_to_exit():
        view = get_study(common.metadata_store(ctx), study)
    if json_out:
        common.print_json(view.to_dict())
        return
    from rich.table import Table

    console = common.console()
    row = view.study
    console.print(
        f"[bold]study {row['name']}[/] ({row['id']}): {row['direction']}, sampler "
        f"{row['sampler'] or '-'}, pruner {row['pruner'] or '-'}, run {row['run_id'] or '-'}",
        highlight=False,
    )
    console.print("space: " + json.dumps(row["space"], sort_keys=True), highlight=False)
    console.print(
        "trials: " + ", ".join(f"{n} {state.lower()}" for state, n in sorted(view.states.items()))
        if view.states
        else "trials: none",
        highlight=False,
    )
    if view.best is None:
        console.print("best: no completed trial")
    else:
        console.print(
            f"best: trial {view.best['number']} value {_value(view.best['value'])} "
            f"({_params(view.best['params'], 200)})",
            highlight=False,
        )
    improvements = [
        h for i, h in enumerate(view.history) if i == 0 or h["best"] != view.history[i - 1]["best"]
    ]
    if improvements:
        console.print(
            "history (best so far): "
            + " -> ".join(f"#{h['number']} {_value(h['best'])}" for h in improvements),
            highlight=False,
        )
    minimize = row["direction"] == "minimize"
    ranked = sorted(
        view.trials,
        key=lambda t: (
            t["value"] is None,
            (t["value"] if minimize else -t["value"]) if t["value"] is not None else 0.0,
            t["number"],
        ),
    )
    table = Table(box=None, header_style="bold")
    for column in ("trial", "state", "value", "duration", "params"):
        table.add_column(column)
    for trial in ranked[:limit]:
        table.add_row(
            str(trial["number"]),
            trial["state"].lower(),
            _value(trial["value"]),
            common.format_duration(trial["duration"]),
            _params(trial["params"]) + (f"  [red]{trial['error']}[/]" if trial["error"] else ""),
        )
    console.print(table)
    if len(ranked) > limit:
        console.print(f"[dim]{len(ranked) - limit} more trials: --limit {len(ranked)} or --json[/]")


def register(app: typer.Typer) -> None:
    """Add `conveyor tune ...` to the root app."""
    app.add_typer(tune_app, name="tune")
