"""`conveyor monitor`, `conveyor labels` and `conveyor scheduler`."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from conveyor.cli import common

if TYPE_CHECKING:
    from conveyor.monitoring.monitor import Monitor
    from conveyor.monitoring.report import MonitorReport

monitor_app = typer.Typer(help="Drift, data quality and performance of served models.")
labels_app = typer.Typer(help="Ground truth for monitored predictions.")


def _epoch(value: str | None) -> float | None:
    if value is None:
        return None
    import datetime as dt

    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        common.fail(f"{value!r} is not an ISO time. Use e.g. 2026-01-31T14:00 (UTC if no zone).")
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def _monitor(ctx: typer.Context, name: str) -> Monitor:
    from conveyor.monitoring.monitor import Monitor

    try:
        return Monitor.get(
            name,
            metadata_store=common.metadata_store(ctx),
            artifact_store=common.artifact_store(ctx),
        )
    except Exception as exc:
        common.fail(str(exc))


def _print_report(report: MonitorReport) -> None:
    console = common.console()
    style = "red" if report.dataset_drift else ("yellow" if report.drift.drifted else "green")
    console.print(f"[{style}]{report.summary()}[/]", highlight=False)
    for issue in report.quality[:10]:
        console.print(f"  {issue['severity']}: {issue['column']}: {issue['message']}")


@monitor_app.command("run")
def monitor_run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Monitor name, e.g. churn-prod.")],
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--model", help="Model reference (needed the first time)."),
    ] = None,
    window: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--window", help="Window length: 30s, 15m, 1h, 1d."),
    ] = None,
    start: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Report one window from this ISO time (default: every closed window)."),
    ] = None,
    end: Annotated[Optional[str], typer.Option(help="End of that window (ISO).")] = None,  # noqa: UP045
    max_windows: Annotated[int, typer.Option(help="At most this many closed windows.")] = 24,
    relabel: Annotated[
        bool,
        typer.Option(
            "--relabel", help="Also recompute every reported window holding labeled requests."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Compute one report per window over the prediction log (created on first use)."""
    from conveyor.monitoring.monitor import Monitor, parse_window

    store = common.metadata_store(ctx)
    artifacts = common.artifact_store(ctx)
    try:
        monitor = Monitor.get(name, metadata_store=store, artifact_store=artifacts)
    except LookupError:
        if model is None:
            common.fail(
                f"No monitor named {name!r} yet; create it with --model NAME@ALIAS "
                "(and --window, default 1h)."
            )
        monitor = Monitor(name, model, metadata_store=store, artifact_store=artifacts)
    try:
        if model is not None:
            monitor.model = model
        if window is not None:
            monitor.window = parse_window(window)
        monitor.save()
        first, last = _epoch(start), _epoch(end)
        if first is not None:
            stop = last if last is not None else first + monitor.window
            reports = monitor.run_window(first, stop)
        else:
            reports = monitor.run_due(max_windows=max_windows)
        if relabel:
            reports = [*monitor.refresh_labeled(), *reports]
    except Exception as exc:
        common.fail(str(exc))
    if as_json:
        common.print_json([r.to_dict() for r in reports])
        return
    if not reports:
        common.console().print("No predictions in the windows to report.")
    for report in reports:
        _print_report(report)


@monitor_app.command("report")
def monitor_report(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Monitor name.")],
    html: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--html", help="Write the latest report (or, with --limit > 1, an index)."),
    ] = None,
    limit: Annotated[int, typer.Option(help="Reports to show, newest first.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the latest report(s) of a monitor."""
    monitor = _monitor(ctx, name)
    reports = monitor.reports(limit=limit)
    if not reports:
        common.fail(f"Monitor {name!r} has no reports yet. Run `conveyor monitor run {name}`.")
    if html is not None:
        if len(reports) == 1:
            common.write_output(html, reports[0].to_html())
        else:
            from conveyor.monitoring.html import render_index

            common.write_output(
                html, render_index([r.to_dict() for r in reports], f"monitor {name}")
            )
        common.console().print(f"Wrote {html}")
    if as_json:
        common.print_json([r.to_dict() for r in reports])
        return
    for report in reports:
        _print_report(report)


@monitor_app.command("list")
def monitor_list(ctx: typer.Context) -> None:
    """Every monitor with its model and last window."""
    from rich.table import Table

    from conveyor.monitoring.monitor import Monitor

    store, artifacts = common.metadata_store(ctx), common.artifact_store(ctx)
    table = Table("name", "model", "window", "last window end", "decay baseline")
    for row in Monitor.list_all(store):
        monitor = Monitor(
            row["name"], row["model_ref"], metadata_store=store, artifact_store=artifacts
        )
        table.add_row(
            row["name"],
            row["model_ref"],
            f"{row['window_seconds']:g} s",
            common.format_time(row["last_end"]),
            _baseline_text(monitor),
        )
    common.console().print(table)


def _baseline_text(monitor: Monitor) -> str:
    """What on_decay compares with, or why it cannot fire (never left blank)."""
    from rich.markup import escape

    try:
        metrics, source = monitor.baseline()
    except Exception as exc:
        return escape(f"unknown: {exc}")
    if not metrics:
        return "[yellow]none: on_decay cannot fire; register with report=evaluate(...)[/]"
    return escape(f"{', '.join(sorted(metrics))} ({source})")


@labels_app.command("add")
def labels_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Monitor name.")],
    path: Annotated[Path, typer.Argument(help="Parquet or CSV with request_id, label[, row].")],
    refresh: Annotated[
        bool,
        typer.Option(help="Recompute the reported windows these requests belong to."),
    ] = True,
) -> None:
    """Store ground truth, joined to predictions by request id, and update the reports of
    the windows it belongs to."""
    from conveyor.data.ingest import read_table

    monitor = _monitor(ctx, name)
    try:
        table = read_table(path)  # the CSV rules of every command (nulls, encoding)
        count = monitor.add_labels(table, refresh=False)
        ids = table.column("request_id").drop_null().to_pylist() if refresh and count else []
        reports = monitor.refresh_labeled(ids) if ids else []
    except Exception as exc:
        common.fail(str(exc))
    console = common.console()
    console.print(f"Stored {count} labels for {name}.", highlight=False)
    if not refresh:
        console.print(
            f"Run `conveyor monitor run {name} --relabel` to update the performance of the "
            "reported windows they belong to.",
            highlight=False,
        )
    elif reports:
        console.print(f"Updated {len(reports)} report(s):", highlight=False)
        for report in reports:
            _print_report(report)
    else:
        console.print(
            "None of these requests is in a reported window yet; `conveyor monitor run "
            f"{name}` joins the labels when it reports their window.",
            highlight=False,
        )


def scheduler(
    ctx: typer.Context,
    pipelines: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--pipeline",
            "-p",
            help="file.py:name (repeatable; default: [scheduler] pipelines in conveyor.toml).",
        ),
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between evaluations.")] = 10.0,
    once: Annotated[bool, typer.Option(help="Evaluate once and exit.")] = False,
    monitors: Annotated[
        bool, typer.Option(help="Also compute the closed windows of every monitor.")
    ] = True,
    grace: Annotated[float, typer.Option(help="Seconds runs get to finish on SIGTERM.")] = 30.0,
) -> None:
    """Run schedules and triggers until SIGTERM / Ctrl-C (state lives in the metadata store)."""
    from conveyor.execution.loader import load_pipeline
    from conveyor.triggers.scheduler import Scheduler

    settings = common.settings(ctx)
    with common.errors_to_exit():
        scheduled = settings.table("scheduler").get("pipelines", [])
    if not isinstance(scheduled, list) or not all(isinstance(p, str) for p in scheduled):
        common.fail("[scheduler] pipelines in conveyor.toml must be a list of FILE.py:PIPELINE.")
    targets = list(pipelines or scheduled)
    if not targets:
        common.fail(
            "No pipelines to schedule. Pass --pipeline file.py:name or set [scheduler] "
            'pipelines = ["pipelines/training.py:training"] in conveyor.toml.'
        )
    try:
        loaded = [load_pipeline(target, settings.root) for target in targets]
        jobs = [_MonitorJob(ctx)] if monitors else []
        runner = Scheduler(loaded, settings=settings, jobs=jobs, interval=interval)
    except Exception as exc:
        common.fail(str(exc))
    console = common.console()
    count = sum(1 for _ in runner.triggers)
    console.print(
        f"scheduler {runner.owner}: {len(loaded)} pipeline(s), {count} trigger(s), every "
        f"{interval:g} s",
        highlight=False,
    )

    def report(fired: list[Any]) -> None:
        for item in fired:
            console.print(f"{item.status}: {item.pipeline} <- {item.reason}", highlight=False)

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        console.print(f"received {signal.Signals(signum).name}; stopping", highlight=False)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if once:
        _run_once(runner, stop, grace, report)
        return
    # The first evaluation registers every trigger's state, so "ready" means the
    # scheduler's view of schedules and triggers is in the store.
    report(runner.tick())
    console.print("ready", highlight=False)
    runner.run(stop, on_tick=report, grace=grace)
    console.print("stopped", highlight=False)


def _run_once(runner: Any, stop: threading.Event, grace: float, report: Any) -> None:
    """One evaluation, then wait for every run it started (a signal cuts the wait to `grace`).

    Closing the scheduler under a run that is still going would stop its executor and
    store the trigger event as failed, which uses the incident up.
    """
    from conveyor.triggers.state import FAILED, FIRED, list_events

    fired = runner.tick()
    report(fired)
    while not runner.wait_for_runs(0.2) and not stop.is_set():
        pass
    runner.close(grace)
    started = {f.event_id for f in fired if f.event_id is not None and f.status == FIRED}
    if not started:
        return
    events = list_events(runner.metadata_store.engine, limit=max(50, len(started)))
    outcomes = [e for e in events if e["id"] in started]
    for event in outcomes:
        common.console().print(
            f"{event['status']}: {event['pipeline']} run {event['run_id'] or '-'}",
            highlight=False,
        )
    if any(e["status"] == FAILED for e in outcomes):
        raise typer.Exit(1)


class _MonitorJob:
    """Computes the windows that closed since the last report, for every monitor."""

    name = "monitors"

    def __init__(self, ctx: typer.Context) -> None:
        self.ctx = ctx

    def __call__(self, now: float) -> None:
        from conveyor.monitoring.monitor import Monitor

        store = common.metadata_store(self.ctx)
        for row in Monitor.list_all(store):
            monitor = Monitor.get(
                row["name"], metadata_store=store, artifact_store=common.artifact_store(self.ctx)
            )
            for report in monitor.run_due(now, max_windows=3):
                _print_report(report)


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")
    app.add_typer(labels_app, name="labels")
    app.command("scheduler")(scheduler)
