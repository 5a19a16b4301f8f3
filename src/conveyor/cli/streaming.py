"""CLI command of streaming inference: `conveyor stream`.

The broker clients, pandas and the model load inside the command, never at import.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from conveyor.cli import common


def stream(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Model reference: name@alias, name/VERSION or name.")],
    source: Annotated[
        str,
        typer.Option(
            "--source", help="Input: kafka://host:port/topic or redis://host:port/stream."
        ),
    ],
    sink: Annotated[
        str,
        typer.Option("--sink", help="Output: kafka://host:port/topic or redis://host:port/stream."),
    ],
    dead_letter: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on 3.11
        typer.Option(
            "--dead-letter", help="Where refused messages go, with the reason (default: dropped)."
        ),
    ] = None,
    group: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Consumer group shared by the scorers (default: conveyor-<model>)."),
    ] = None,
    consumer: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="This scorer's name in the group (default: host-pid). A stable name lets a "
            "restarted Redis scorer resume its own pending entries at once."
        ),
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Messages per model call at most.")] = 1000,
    max_wait_ms: Annotated[
        float, typer.Option(help="Longest wait for messages when none are ready.")
    ] = 50.0,
    unseen: Annotated[
        str, typer.Option(help="Categories unseen in training: reject (dead letter) or pass.")
    ] = "reject",
    codec: Annotated[str, typer.Option(help="Message body codec.")] = "json",
    claim_idle: Annotated[
        float,
        typer.Option(help="Redis: seconds before entries pending at a dead consumer are claimed."),
    ] = 30.0,
    reload_interval: Annotated[
        float, typer.Option(help="Seconds between checks for a moved alias (0: never).")
    ] = 5.0,
    log_predictions: Annotated[
        bool, typer.Option(help="Log inputs and predictions to the artifact store.")
    ] = True,
    metrics_port: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(help="Serve Prometheus /metrics on 127.0.0.1:PORT."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Log level.")] = "warning",
) -> None:
    """Score a Kafka topic or Redis stream continuously (at-least-once; SIGTERM drains)."""
    import asyncio
    import logging

    from conveyor.exceptions import ConveyorError
    from conveyor.registry import ModelRef, Registry
    from conveyor.serving.predlog import LogPolicy
    from conveyor.serving.servable import RegistrySource
    from conveyor.serving.streaming.base import open_sink, open_source
    from conveyor.serving.streaming.scorer import StreamOptions, StreamScorer, run_stream
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.metadata import open_metadata_store

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = common.settings(ctx)
    if unseen not in ("reject", "pass"):
        common.fail(f"--unseen must be 'reject' or 'pass'. Got {unseen!r} instead.")
    try:
        artifacts = open_artifact_store(settings.artifact_url)
        registry = Registry(open_metadata_store(settings.db_url), artifacts)
        version = registry.resolve(ref)  # fail fast on a wrong reference
        name = ModelRef.parse(ref).name
        group = group or f"conveyor-{name}"
        options = StreamOptions(
            max_batch=max_batch,
            max_wait=max_wait_ms / 1000,
            unseen=unseen,  # type: ignore[arg-type]
            codec=codec,
            reload_interval=reload_interval or None,
            prediction_log=LogPolicy() if log_predictions else None,
        )
        extra = {"claim_idle": claim_idle} if source.startswith("redis") else {}
        scorer = StreamScorer(
            RegistrySource(ref, registry),
            open_source(source, group=group, consumer=consumer, **extra),
            open_sink(sink),
            dead_letter=open_sink(dead_letter) if dead_letter else None,
            options=options,
            log_store=artifacts if log_predictions else None,
        )
        common.err_console().print(
            f"Scoring [bold]{source}[/] with {ref} (version {version.version}) -> {sink}"
            + (f", refusals -> {dead_letter}" if dead_letter else "")
            + f"; group {group}"
            + (f"; metrics on http://127.0.0.1:{metrics_port}/metrics" if metrics_port else ""),
            highlight=False,
        )
        stats = asyncio.run(run_stream(scorer, metrics_port=metrics_port))
    except ConveyorError as exc:
        common.fail(str(exc))
    common.err_console().print(
        f"Stopped: {stats.messages_in:,} messages in, {stats.messages_out:,} scored, "
        f"{stats.dead_letters:,} dead letters, {stats.reloads} reloads in "
        f"{common.format_duration(stats.seconds)}.",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add `stream` to the root app."""
    app.command("stream")(stream)
