"""`conveyor events`: the event log, its webhook delivery and the delivery log."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from conveyor.cli import common

if TYPE_CHECKING:
    from conveyor.stores.metadata.events import Event

events_app = typer.Typer(
    help="What happened: runs, datasets, gates, aliases, drift, triggers; and webhooks.",
    invoke_without_command=True,
)


def _kinds(value: str | None) -> list[str]:
    from conveyor.exceptions import did_you_mean
    from conveyor.stores.metadata.events import KINDS

    kinds = [k.strip() for k in (value or "").split(",") if k.strip()]
    for kind in kinds:
        if kind not in KINDS:
            common.fail(
                f"Unknown event kind {kind!r}."
                + did_you_mean(kind, list(KINDS))
                + f" Kinds: {', '.join(KINDS)}."
            )
    return kinds


def _line(event: Event) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(event.created_at))
    links = " ".join(f"{k}={v}" for k, v in sorted(event.links.items()))
    return f"{when}  {event.kind:<24} {event.subject:<28} {event.summary}" + (
        f"  ({links})" if links else ""
    )


def _show(event: Event, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(event.as_dict(), sort_keys=True, default=str))
    else:
        common.console().print(_line(event), highlight=False, markup=False, soft_wrap=True)


@events_app.callback()
def events(
    ctx: typer.Context,
    kind: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on 3.11
        typer.Option("--kind", help="Comma-separated kinds, e.g. alias_moved,run_failed."),
    ] = None,
    subject: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Exact subject, or a prefix ending in * (e.g. 'churn*')."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Events to show.")] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between polls of --follow.")
    ] = 1.0,
) -> None:
    """The event log, oldest of the last LIMIT first; --follow keeps printing new ones."""
    if ctx.invoked_subcommand is not None:
        return
    from conveyor.stores.metadata.events import list_events

    wanted = _kinds(kind)
    with common.errors_to_exit():
        engine = common.metadata_store(ctx).engine
        recent = list_events(engine, kinds=wanted, subject=subject, limit=limit)
    for event in reversed(recent):
        _show(event, as_json)
    if not follow:
        if not recent and not as_json:
            common.console().print("No events yet.")
        return
    from conveyor.stores.metadata.events import last_seq

    cursor = recent[0].seq if recent else last_seq(engine)
    stop = threading.Event()
    try:
        while not stop.is_set():
            for event in list_events(engine, kinds=wanted, subject=subject, after=cursor):
                _show(event, as_json)
                cursor = event.seq
            stop.wait(interval)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@events_app.command("deliver")
def deliver(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep delivering until Ctrl-C / SIGTERM.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to try without --follow.")
    ] = 30.0,
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between passes.")] = 1.0,
) -> None:
    """POST the events the [[notify]] targets want: signed, retried, at least once."""
    import signal

    from conveyor.events.delivery import Deliverer
    from conveyor.events.targets import load_targets

    resolved = common.settings(ctx)
    with common.errors_to_exit():
        targets = load_targets(resolved.extra)
        engine = common.metadata_store(ctx).engine
    if not targets:
        common.fail("No [[notify]] targets in conveyor.toml. Add one with url = 'https://...'.")
    console = common.console()
    with Deliverer(engine, targets) as deliverer:
        if not follow:
            result = deliverer.drain(timeout=timeout)
            for error in result.errors[:20]:
                common.err_console().print(error, markup=False, highlight=False)
            console.print(
                f"Delivered {result.delivered}; {result.failed} to retry; {result.dead} given up."
            )
            raise typer.Exit(1 if result.failed or result.dead or result.errors else 0)

        def _stop(*_: object) -> None:
            deliverer.stop()

        previous = signal.signal(signal.SIGTERM, _stop)

        def _report(result: object) -> None:
            from conveyor.events.delivery import DrainResult

            assert isinstance(result, DrainResult)
            if result.attempted or result.errors:
                console.print(
                    f"delivered {result.delivered}, retrying {result.failed}, "
                    f"given up {result.dead}",
                    highlight=False,
                )
                for error in result.errors[:5]:
                    common.err_console().print(error, markup=False, highlight=False)

        console.print(f"Delivering to {', '.join(t.name for t in targets)} (Ctrl-C stops).")
        try:
            deliverer.run(interval=interval, on_pass=_report)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)


@events_app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    target: Annotated[Optional[str], typer.Option(help="Only this target.")] = None,  # noqa: UP045
    failed: Annotated[bool, typer.Option("--failed", help="Only pending and given-up.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The delivery log: attempts, answers and errors per target and event."""
    from conveyor.events.delivery import DEAD, PENDING, describe
    from conveyor.stores.metadata.events import deliveries as list_deliveries

    with common.errors_to_exit():
        engine = common.metadata_store(ctx).engine
        rows = list_deliveries(
            engine, target=target, statuses=(PENDING, DEAD) if failed else (), limit=limit
        )
    if as_json:
        typer.echo(json.dumps(rows, sort_keys=True, default=str))
        return
    if not rows:
        common.console().print("No deliveries yet.")
    for row in rows:
        common.console().print(describe(row), markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")
