"""`conveyor predictions show` (what answered a request) and `conveyor datasets
from-predictions` (logged predictions joined with labels as a new dataset version)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from conveyor.cli import common

predictions_app = typer.Typer(
    help="Logged predictions: what answered a request, and with which model.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripting.")]


def origin_lines(origin: dict[str, Any] | None, indent: str = "  ") -> list[str]:
    """Lines describing a dataset version made from logged predictions (else none)."""
    if not origin or origin.get("kind") != "predictions":
        return []
    lines = [
        f"{indent}from {origin['rows']} logged predictions ({origin['labeled_rows']} labeled) "
        f"of {origin['model']} via monitor {origin['monitor']}:"
    ]
    for window in origin.get("windows", []):
        lines.append(
            f"{indent}  window {common.format_time(window['start'])} - "
            f"{common.format_time(window['end'])} v{window['model_version']}: "
            f"{window['rows']} rows, {window['labeled_rows']} labeled, report "
            f"{window['report_id'] or '- (no report yet)'}"
        )
    return lines


def from_predictions(
    ctx: typer.Context,
    monitor: Annotated[str, typer.Argument(help="Monitor whose prediction log is read.")],
    labeled: Annotated[
        bool, typer.Option("--labeled", help="Only rows that have a label (for retraining).")
    ] = False,
    since: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on 3.11
        typer.Option(help="From this ISO time (UTC unless zoned) or duration back (7d, 12h)."),
    ] = None,
    until: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Up to this time, excluded (default: now)."),
    ] = None,
    name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--name", help="Dataset name (default: MONITOR-fresh)."),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Logged predictions joined with their labels, as a new dataset version."""
    from conveyor.monitoring.fresh import dataset_from_predictions

    with common.errors_to_exit():
        version = dataset_from_predictions(
            monitor,
            labeled=labeled,
            since=since,
            until=until,
            name=name,
            metadata_store=common.metadata_store(ctx),
            artifact_store=common.artifact_store(ctx),
        )
    if json_out:
        common.print_json(version.to_dict())
        return
    origin = version.origin or {}
    console = common.console()
    console.print(
        f"Dataset [bold]{version.ref}[/]: {version.row_count} rows "
        f"({origin.get('labeled_rows', 0)} labeled) from monitor {origin.get('monitor')}, "
        f"model versions {', '.join(str(v) for v in origin.get('model_versions', []))}.",
        highlight=False,
    )
    for line in origin_lines(origin)[1:]:
        console.print(line, highlight=False)
    console.print(
        f"Train on it with conveyor.data.dataset({version.name!r}) in a pipeline.",
        highlight=False,
    )


@predictions_app.command("show")
def predictions_show(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="Request id (the X-Request-ID header).")],
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--model", help="Only this model's log (faster)."),
    ] = None,
    since: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Only log days from this time (ISO, or a duration back: 7d)."),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """What answered a request: model version, its run, data versions and code."""
    from conveyor.monitoring.fresh import parse_moment
    from conveyor.monitoring.requests import find_request

    with common.errors_to_exit():
        found = find_request(
            request_id,
            metadata_store=common.metadata_store(ctx),
            artifact_store=common.artifact_store(ctx),
            model=model,
            since=parse_moment(since),
        )
    if json_out:
        common.print_json(found)
        return
    console = common.console()
    for answer in found["answers"]:
        console.print(
            f"[bold]request {request_id}[/] answered by {answer['model']}/{answer['version']} "
            f"at {common.format_time(answer['timestamp'])}: {len(answer['rows'])} rows "
            f"(log {answer['segment']})",
            highlight=False,
        )
        for row in answer["rows"][:5]:
            outputs = {k: v for k, v in row.items() if k.startswith("_") and k != "_timestamp"}
            inputs = {k: v for k, v in row.items() if not k.startswith("_")}
            console.print(f"  {_short(inputs)} -> {_short(outputs)}", highlight=False)
        if len(answer["rows"]) > 5:
            console.print(f"  ... {len(answer['rows']) - 5} more rows (--json for all)")
        _print_lineage(answer.get("lineage"))


def _short(values: dict[str, Any], limit: int = 110) -> str:
    text = ", ".join(f"{k}={v}" for k, v in values.items())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _print_lineage(lineage: dict[str, Any] | None) -> None:
    console = common.console()
    if lineage is None:
        console.print("  model version no longer in the registry")
        return
    run = lineage["run"]
    if run is None:
        console.print("  registered outside a pipeline run: no run lineage")
        return
    code = lineage["code"] or {}
    console.print(
        f"  run {run['id']} ({run['pipeline']}, {run['status']}), code "
        f"{code.get('sha') or 'not a git checkout'}{' (dirty)' if code.get('dirty') else ''}",
        highlight=False,
    )
    for item in lineage["data"]:
        if "dataset" in item:
            console.print(f"  data: dataset {item['dataset']} ({item['source']})", highlight=False)
        else:
            version = f" version {item['version']}" if item.get("version") is not None else ""
            console.print(f"  data: {item['kind']} {item['uri']}{version}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `conveyor predictions ...` and `conveyor datasets from-predictions`."""
    from conveyor.cli.data import datasets_app

    datasets_app.command("from-predictions")(from_predictions)
    app.add_typer(predictions_app, name="predictions")
