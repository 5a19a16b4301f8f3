"""`conveyor monitor compare` and `conveyor monitor promote-challenger`: live comparison."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Annotated, Optional

import typer

from conveyor.cli import common
from conveyor.cli.monitoring import _epoch, _monitor


def compare(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Monitor of the served model.")],
    challenger: Annotated[str, typer.Option(help="The challenger, e.g. churn@challenger.")],
    champion: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on 3.11
        typer.Option(help="The champion (default: the monitor's reference)."),
    ] = None,
    since: Annotated[Optional[str], typer.Option(help="ISO start (default: 24 h ago).")] = None,  # noqa: UP045
    until: Annotated[Optional[str], typer.Option(help="ISO end (default: now).")] = None,  # noqa: UP045
    metric: Annotated[str, typer.Option(help="accuracy, roc_auc, rmse or mae.")] = "accuracy",
    margin: Annotated[float, typer.Option(min=0.0, help="Difference to clear.")] = 0.0,
    min_labeled: Annotated[int, typer.Option(min=1, help="Labeled rows needed.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Agreement and metric difference (with its interval) of challenger vs champion."""
    from conveyor.monitoring.release import compare_release, store_comparison
    from conveyor.registry import resolve

    monitor = _monitor(ctx, name)
    end = _epoch(until) or time.time()
    start = _epoch(since) or end - 86_400
    with common.errors_to_exit():
        champion_version = resolve(champion or monitor.model).version
        challenger_version = resolve(challenger).version
        comparison = compare_release(
            monitor,
            champion_version,
            challenger_version,
            start,
            end,
            metric=metric,
            margin=margin,
            min_labeled=min_labeled,
        )
        store_comparison(monitor, comparison)
    if as_json:
        typer.echo(json.dumps(asdict(comparison), sort_keys=True, default=str))
        return
    style = {"challenger_better": "green", "champion_better": "red"}.get(comparison.verdict, "")
    text = comparison.summary()
    common.console().print(f"[{style}]{text}[/]" if style else text, highlight=False)


def promote_challenger(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Monitor whose latest comparison decides.")],
    alias: Annotated[str, typer.Option(help="The champion alias to move.")] = "production",
    comparison: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="A comparison id (default: the latest)."),
    ] = None,
) -> None:
    """Move the champion alias to the challenger of a won comparison (gate recorded)."""
    from conveyor.monitoring.release import promote_challenger as promote

    monitor = _monitor(ctx, name)
    with common.errors_to_exit():
        decision = promote(monitor, champion_alias=alias, comparison_id=comparison)
    common.console().print(f"Promoted through gate decision {decision}.")


def register(monitor_app: typer.Typer) -> None:
    monitor_app.command("compare")(compare)
    monitor_app.command("promote-challenger")(promote_challenger)
