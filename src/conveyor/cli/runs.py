"""Commands for running pipelines and reading what runs recorded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Optional

import typer

from conveyor.cli import common
from conveyor.cli._output import CommandExit
from conveyor.cli.run_command import execute_run, status_markup

runs_app = typer.Typer(help="List, show and compare runs.", no_args_is_help=True)
artifacts_app = typer.Typer(help="Inspect stored artifacts.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the metadata database schema.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripting.")]

_status = status_markup


def run(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="FILE.py:PIPELINE or package.module:PIPELINE")],
    param: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--param", "-p", help="Pipeline parameter as key=value (repeatable)."),
    ] = None,
    executor: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="inline, threads[:N], processes[:N], dask-local[:N], dask://HOST:PORT"),
    ] = None,
    max_workers: Annotated[Optional[int], typer.Option(help="Parallel steps.")] = None,  # noqa: UP045
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Re-run every step.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the summary.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Run a pipeline: conveyor run pipelines/training.py:training -p test_size=0.25"""
    # The console script runs the usual forms of this command without typer
    # (cli/run_command.py); both call execute_run.
    try:
        execute_run(
            lambda: common.settings(ctx),
            target=target,
            param=param,
            executor=executor,
            max_workers=max_workers,
            no_cache=no_cache,
            quiet=quiet,
            json_out=json_out,
        )
    except CommandExit as exc:
        raise typer.Exit(exc.code) from None


def runs_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="Rows per page.")] = 20,
    before: Annotated[
        Optional[str], typer.Option(help="Show runs older than this run id (next page).")  # noqa: UP045
    ] = None,
    pipeline: Annotated[Optional[str], typer.Option(help="Only this pipeline.")] = None,  # noqa: UP045
    status: Annotated[Optional[str], typer.Option(help="Only this status.")] = None,  # noqa: UP045
    metric: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--metric", "-m", help="Metric column, e.g. eval.roc_auc (repeatable)."),
    ] = None,
    param: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--param", help="Parameter column, e.g. C or train.C (repeatable)."),
    ] = None,
    sort: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--sort", help="Rank by a metric or parameter; -KEY for descending."),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """List runs, newest first; with --metric/--param/--sort, a leaderboard."""
    from conveyor.cli import remote
    from conveyor.exceptions import ConveyorError

    client = remote.server_client(ctx)
    if client is not None:
        remote.runs_list(
            client,
            limit=limit,
            before=before,
            pipeline=pipeline,
            status=status,
            metrics=metric or [],
            sort=sort,
            json_out=json_out,
        )
        return
    if metric or param or sort:
        _leaderboard(ctx, limit, pipeline, status, metric or [], param or [], sort, json_out)
        return
    try:
        store = common.metadata_store(ctx)
        store.reconcile_stale_runs()
        rows = store.list_runs(limit=limit, before=before, pipeline=pipeline, status=status)
    except ConveyorError as exc:
        common.fail(str(exc))
    if json_out:
        common.print_json(rows)
        return
    from rich.table import Table

    table = Table(title=None, box=None, header_style="bold")
    for column in ("run", "pipeline", "status", "started", "duration", "params"):
        table.add_column(column)
    for row in rows:
        params = ", ".join(f"{k}={v}" for k, v in (row["params"] or {}).items())
        table.add_row(
            row["id"],
            row["pipeline"],
            _status(row["status"]),
            common.format_time(row["started_at"]),
            common.format_duration(_duration(row)),
            params[:60],
        )
    common.console().print(table)
    if len(rows) == limit:
        common.console().print(f"[dim]next page: --before {rows[-1]['id']}[/]")


def _duration(row: Mapping[str, Any]) -> float | None:
    if row["ended_at"] and row["started_at"]:
        return float(row["ended_at"] - row["started_at"])
    return None


def _leaderboard(
    ctx: typer.Context,
    limit: int,
    pipeline: str | None,
    status: str | None,
    metrics: list[str],
    params: list[str],
    sort: str | None,
    json_out: bool,
) -> None:
    from conveyor.execution.views import leaderboard

    if sort is not None and not metrics and not params:
        key = sort.lstrip("-+")
        metrics = [key]
    with common.errors_to_exit():
        store = common.metadata_store(ctx)
        store.reconcile_stale_runs()
        ranked = leaderboard(
            store,
            metrics=metrics,
            params=params,
            sort=sort,
            limit=limit,
            pipeline=pipeline,
            status=status,
        )
    if json_out:
        common.print_json(
            [
                {
                    "id": s.run["id"],
                    "pipeline": s.run["pipeline"],
                    "status": s.run["status"],
                    "started_at": s.run["started_at"],
                    "params": {k: s.params.get(k) for k in params},
                    "metrics": {k: s.metrics.get(k) for k in metrics},
                }
                for s in ranked
            ]
        )
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("#", "run", "pipeline", "status", *params, *metrics):
        table.add_column(column)
    for rank, summary in enumerate(ranked, 1):
        table.add_row(
            str(rank),
            summary.run["id"],
            summary.run["pipeline"],
            _status(summary.run["status"]),
            *(_cell(summary.params.get(k)) for k in params),
            *(_cell(summary.metrics.get(k)) for k in metrics),
        )
    common.console().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def runs_show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    json_out: JsonFlag = False,
) -> None:
    """Show a run: params, outputs, steps, metrics (cache hits: those reused), logged artifacts."""
    from conveyor.cli import remote

    client = remote.server_client(ctx)
    if client is not None:
        remote.runs_show(client, run_id, json_out=json_out)
        return
    from conveyor.exceptions import ConveyorError
    from conveyor.execution.views import logged_artifacts, summarize

    try:
        store = common.metadata_store(ctx)
        store.reconcile_stale_runs()
        run_row = store.get_run(run_id)
        steps = store.step_runs(run_row["id"])
        summary = summarize(store, [run_row])[0]
        logged = logged_artifacts(store, run_row["id"])
    except ConveyorError as exc:
        common.fail(str(exc))
    metrics = summary.metrics
    if json_out:
        common.print_json(
            {
                **run_row,
                "steps": steps,
                "metrics": metrics,
                "reused_metrics": sorted(summary.reused),
                "logged_artifacts": logged,
            }
        )
        return
    from rich.table import Table

    console = common.console()
    duration = (
        run_row["ended_at"] - run_row["started_at"]
        if run_row["ended_at"] and run_row["started_at"]
        else None
    )
    console.print(
        f"[bold]Run {run_row['id']}[/]  {run_row['pipeline']}  {_status(run_row['status'])}"
    )
    console.print(
        f"started {common.format_time(run_row['started_at'])}, took "
        f"{common.format_duration(duration)}, executor {run_row['executor']}, "
        f"code {run_row['code_sha'] or '-'}{' (dirty)' if run_row['code_dirty'] else ''}",
        highlight=False,
    )
    if run_row["params"]:
        console.print("params: " + ", ".join(f"{k}={v}" for k, v in run_row["params"].items()))
    if run_row["outputs"]:
        console.print("outputs: " + ", ".join(f"{k}={v}" for k, v in run_row["outputs"].items()))
    if run_row.get("tags"):
        tags = ", ".join(f"{k}={v}" for k, v in sorted(run_row["tags"].items()))
        console.print(f"tags: {tags}", highlight=False, markup=False)
    if run_row["error"]:
        console.print(f"[red]error:[/] {run_row['error']}", highlight=False)
    table = Table(box=None, header_style="bold")
    for column in ("step", "status", "attempts", "duration", "cache"):
        table.add_column(column)
    for step in steps:
        cache = f"hit ({step['cache_source']})" if step["cache_hit"] else ""
        table.add_row(
            step["name"],
            _status(step["status"]),
            str(step["attempts"]),
            common.format_duration(step["duration"]),
            cache,
        )
    console.print(table)
    if metrics:
        console.print(
            "metrics: "
            + ", ".join(
                f"{k}={v:.4g}" + (" (reused)" if k in summary.reused else "")
                for k, v in metrics.items()
            )
        )
    if logged:
        console.print("logged artifacts:")
        for item in logged:
            console.print(
                f"  {item['id']}  {item['name']} ({item['type_name']}, {item['size']} bytes) "
                f"from {item['step']}; save with `conveyor artifacts get {item['id']} -o FILE`",
                highlight=False,
            )


def runs_compare(
    ctx: typer.Context,
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids (or prefixes).")],
    all_rows: Annotated[bool, typer.Option("--all", help="Also show equal values.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Parameters and metrics of runs side by side; cache hits show what they reused."""
    from conveyor.execution.views import compare

    with common.errors_to_exit():
        diff = compare(common.metadata_store(ctx), run_ids, all_rows=all_rows)
    if json_out:
        common.print_json(diff)
        return
    from rich.table import Table

    console = common.console()
    for number, run_id in enumerate(diff["runs"], 1):
        console.print(f"[bold]#{number}[/] {run_id}", highlight=False)
    table = Table(box=None, header_style="bold")
    for column in ("", "key", *(f"#{n}" for n in range(1, len(diff["runs"]) + 1))):
        table.add_column(column)
    for row in diff["params"]:
        table.add_row("param", row["key"], *("-" if v is None else repr(v) for v in row["values"]))
    for row in diff["metrics"]:
        cells = []
        for value, delta in zip(row["values"], row["deltas"], strict=True):
            text = _cell(value)
            if delta:
                text += f" ({delta:+.4g})"
            cells.append(text)
        table.add_row("metric", row["key"], *cells)
    if not diff["params"] and not diff["metrics"]:
        console.print("No differences in params or metrics.")
    else:
        console.print(table)


def logs(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    step: Annotated[str, typer.Argument(help="Step invocation name, as in `runs show`.")],
) -> None:
    """Print what a step printed and logged (stdout, stderr, logging)."""
    from conveyor.exceptions import ConveyorError

    try:
        store = common.metadata_store(ctx)
        run_row = store.get_run(run_id)
        row = store.find_step_run(run_row["id"], step)
        text = store.get_logs(row["cache_source"] if row["cache_hit"] else row["id"])
    except ConveyorError as exc:
        common.fail(str(exc))
    if row["cache_hit"]:
        common.err_console().print(f"[dim](cached: logs of step run {row['cache_source']})[/]")
    if row["traceback"]:
        text = (text + "\n" if text else "") + row["traceback"]
    typer.echo(text, nl=not text.endswith("\n"))


def artifacts_show(
    ctx: typer.Context,
    artifact_id: Annotated[str, typer.Argument(help="Artifact id (or a unique prefix).")],
    json_out: JsonFlag = False,
) -> None:
    """Show an artifact: type, size, summary, producing step."""
    from conveyor.exceptions import ConveyorError

    try:
        row = common.metadata_store(ctx).get_artifact(artifact_id)
    except ConveyorError as exc:
        common.fail(str(exc))
    if json_out:
        common.print_json(row)
        return
    console = common.console()
    console.print(f"[bold]Artifact {row['id']}[/]  {row['name']} ({row['kind']})")
    console.print(f"type {row['type_name']}, {row['size']} bytes, stored as {row['materializer']}")
    console.print(f"sha256 {row['content_hash']}", highlight=False)
    console.print(f"run {row['run_id']}, step run {row['step_run_id'] or '-'}", highlight=False)
    for key, value in (row["summary"] or {}).items():
        console.print(f"  {key}: {value}", highlight=False)


def lineage(
    ctx: typer.Context,
    artifact_id: Annotated[str, typer.Argument(help="Artifact id.")],
    json_out: JsonFlag = False,
) -> None:
    """Show where an artifact came from: the steps and artifacts upstream of it."""
    from conveyor.exceptions import ConveyorError

    try:
        graph = common.metadata_store(ctx).lineage(artifact_id)
    except ConveyorError as exc:
        common.fail(str(exc))
    if json_out:
        common.print_json(graph)
        return
    from rich.tree import Tree

    artifacts, steps, edges = graph["artifacts"], graph["step_runs"], graph["edges"]
    producers: dict[str, list[str]] = {}
    inputs: dict[str, list[tuple[str, str]]] = {}
    for edge in edges:
        if edge["direction"] == "out":
            producers.setdefault(edge["artifact_id"], []).append(edge["step_run_id"])
        elif edge["direction"] == "in":
            inputs.setdefault(edge["step_run_id"], []).append((edge["name"], edge["artifact_id"]))

    def add_artifact(tree: Any, aid: str, seen: set[str]) -> None:
        row = artifacts[aid]
        node = tree.add(f"[bold]{row['name']}[/] {aid} [dim]{row['type_name']}[/]")
        if aid in seen:
            return
        seen = seen | {aid}
        for sid in producers.get(aid, [])[:1]:
            step = steps.get(sid)
            if step is None:
                continue
            label = f"[cyan]{step['name']}[/] step run {sid} run {step['run_id']}"
            if step["cache_hit"]:
                label += f" [dim](cached from {step['cache_source']})[/]"
            step_node = node.add(label)
            for _name, upstream in sorted(inputs.get(sid, [])):
                if upstream in artifacts:
                    add_artifact(step_node, upstream, seen)

    root = artifacts[graph_root(graph, artifact_id)]
    tree = Tree(f"lineage of {root['id']}")
    add_artifact(tree, root["id"], set())
    common.console().print(tree)


def graph_root(graph: Mapping[str, Any], artifact_id: str) -> str:
    for aid in graph["artifacts"]:
        if aid == artifact_id or aid.startswith(artifact_id.upper()):
            return str(aid)
    return str(next(iter(graph["artifacts"])))


def db_upgrade(ctx: typer.Context) -> None:
    """Apply the shipped schema migrations to the metadata database."""
    from conveyor.exceptions import ConveyorError
    from conveyor.stores.metadata.engine import (
        HEAD_REVISION,
        current_revision,
        make_engine,
        upgrade,
    )

    settings = common.settings(ctx)
    try:
        engine = make_engine(settings.db_url)
        before = current_revision(engine)
        upgrade(engine)
    except ConveyorError as exc:
        common.fail(str(exc))
    common.console().print(f"Schema at revision {HEAD_REVISION} (was {before or 'empty'}).")


def db_current(ctx: typer.Context) -> None:
    """Print the schema revision of the metadata database."""
    from conveyor.stores.metadata.engine import HEAD_REVISION, current_revision, make_engine

    revision = current_revision(make_engine(common.settings(ctx).db_url))
    typer.echo(f"{revision or 'empty'} (this conveyor expects {HEAD_REVISION})")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("logs")(logs)
    app.command("lineage")(lineage)
    runs_app.command("list")(runs_list)
    runs_app.command("show")(runs_show)
    runs_app.command("compare")(runs_compare)
    artifacts_app.command("show")(artifacts_show)
    db_app.command("upgrade")(db_upgrade)
    db_app.command("current")(db_current)
    app.add_typer(runs_app, name="runs")
    app.add_typer(artifacts_app, name="artifacts")
    app.add_typer(db_app, name="db")
