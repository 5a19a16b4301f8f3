"""CLI commands of the serving component: `conveyor serve` and `conveyor predict`.

Everything heavy (uvicorn, pandas, pyarrow, the model) is imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from conveyor.cli import common


def serve(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Model reference: name@alias, name/VERSION or name.")],
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    host: Annotated[
        str, typer.Option(help="Address to bind. Anything but loopback needs --token-file.")
    ] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
    token_file: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on 3.11
        typer.Option(help="File holding the bearer token clients must send."),
    ] = None,
    unseen: Annotated[
        str, typer.Option(help="Categories unseen in training: reject (422) or pass.")
    ] = "reject",
    batching: Annotated[
        bool, typer.Option(help="Group concurrent requests into one model call.")
    ] = True,
    max_batch_rows: Annotated[int, typer.Option(help="Rows per model call at most.")] = 128,
    max_wait_ms: Annotated[
        float, typer.Option(help="Longest wait for more requests under concurrent load.")
    ] = 2.0,
    max_body_mb: Annotated[float, typer.Option(help="Largest request body (MiB).")] = 8.0,
    reload_interval: Annotated[
        float, typer.Option(help="Seconds between checks for a moved alias (0: never).")
    ] = 5.0,
    log_predictions: Annotated[
        bool, typer.Option(help="Log inputs and predictions to the artifact store.")
    ] = True,
    log_level: Annotated[str, typer.Option(help="Server log level.")] = "warning",
    max_connections: Annotated[
        int, typer.Option(help="Open connections at most; the longest idle are closed beyond.")
    ] = 1000,
    keep_alive: Annotated[
        float, typer.Option(help="Seconds an idle keep-alive connection is kept.")
    ] = 5.0,
    header_timeout: Annotated[
        float, typer.Option(help="Seconds a request's headers may take to arrive.")
    ] = 10.0,
    body_timeout: Annotated[
        float, typer.Option(help="Seconds a request's body may take after its headers.")
    ] = 30.0,
    trust: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            help="Trust this type in the model's file beyond the allow-list and the "
            "version's recorded list (repeatable; only for files you have reviewed)."
        ),
    ] = None,
    shadow: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Also score every request with this reference, off the answer path."),
    ] = None,
    canary: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="REF=PERCENT: answer that share of requests with REF."),
    ] = None,
    canary_key_header: Annotated[
        str, typer.Option(help="Header keeping a client on one version (sticky canary).")
    ] = "x-canary-key",
    canary_key_field: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Record field keeping a client on one version (sticky canary)."),
    ] = None,
) -> None:
    """Serve a model over HTTP: POST /predict, Open Inference Protocol v2, /metrics."""
    import gc

    gc.disable()  # start-up only allocates; the server resumes the collector once loaded
    from conveyor.exceptions import ConveyorError
    from conveyor.serving.app import MiB, ServeOptions
    from conveyor.serving.batching import BatchPolicy
    from conveyor.serving.limits import ServerLimits
    from conveyor.serving.predlog import LogPolicy
    from conveyor.serving.server import serve as run_server

    settings = common.export_store_settings(ctx)
    if unseen not in ("reject", "pass"):
        common.fail(f"--unseen must be 'reject' or 'pass'. Got {unseen!r} instead.")
    try:
        from conveyor.registry import resolve

        version = resolve(ref)  # fail fast on a wrong reference, before binding
        release = None
        if shadow and canary:
            common.fail("Choose one of --shadow and --canary.")
        if shadow or canary:
            from conveyor.serving.release import ReleasePolicy, parse_canary

            challenger, percent = (shadow, 0.0) if shadow else parse_canary(str(canary))
            resolve(str(challenger))
            release = ReleasePolicy(
                mode="shadow" if shadow else "canary",
                challenger=str(challenger),
                percent=percent,
                key_header=canary_key_header.lower(),
                key_field=canary_key_field,
            )
        options = ServeOptions(
            unseen=unseen,  # type: ignore[arg-type]
            batching=BatchPolicy(
                enabled=batching, max_batch_rows=max_batch_rows, max_wait=max_wait_ms / 1000
            ),
            max_body_bytes=int(max_body_mb * MiB),
            reload_interval=reload_interval or None,
            prediction_log=LogPolicy() if log_predictions else None,
            limits=ServerLimits(
                max_connections=max_connections,
                keep_alive=keep_alive,
                header_timeout=header_timeout,
                body_timeout=body_timeout,
            ),
            release=release,
        )

        def announce() -> None:  # once listening: never before a refusal to start
            common.err_console().print(
                f"Serving [bold]{ref}[/] (version {version.version}) on http://{host}:{port} "
                f"with {workers} worker(s); API at /docs, metrics at /metrics.",
                highlight=False,
            )

        run_server(
            ref,
            host=host,
            port=port,
            workers=workers,
            token_file=str(token_file) if token_file else None,
            options=options,
            artifact_url=settings.artifact_url if log_predictions else None,
            log_level=log_level,
            trusted=trust or (),
            announce=announce,
        )
    except ConveyorError as exc:
        common.fail(str(exc))


def predict(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Model reference: name@alias, name/VERSION or name.")],
    input_path: Annotated[Path, typer.Argument(help="Parquet or CSV file to score.")],
    output_path: Annotated[
        Path, typer.Argument(help="File to write: .parquet or .csv (the format follows it).")
    ],
    chunk_rows: Annotated[int, typer.Option(help="Rows per chunk.")] = 100_000,
    workers: Annotated[int, typer.Option(help="Scoring processes.")] = 1,
    executor: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            help="Score chunks on an executor: processes:N, dask-local:N or dask://HOST:PORT "
            "(instead of --workers)."
        ),
    ] = None,
    id_column: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Column copied beside each prediction (and into the reject file)."),
    ] = None,
    reject_file: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Where invalid rows go (default: OUTPUT.rejects.<OUTPUT's extension>)."),
    ] = None,
    unseen: Annotated[
        str, typer.Option(help="Categories unseen in training: reject or pass.")
    ] = "reject",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Score a file in chunks (memory flat in input size); invalid rows go to a reject file."""
    from conveyor.exceptions import ConveyorError
    from conveyor.serving.batch import score_file

    common.export_store_settings(ctx)
    if not input_path.exists():
        common.fail(f"The input file {str(input_path)!r} does not exist.")
    if unseen not in ("reject", "pass"):
        common.fail(f"--unseen must be 'reject' or 'pass'. Got {unseen!r} instead.")
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]scoring[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=common.err_console(),
        # No bar in logs; and none before the first chunk, so that an error found while
        # checking the files stays the only line printed.
        disable=as_json or not common.err_console().is_terminal,
    )
    task = bar.add_task("rows", total=None)

    def progress(done: int, total: int | None) -> None:
        bar.start()  # a no-op once started
        bar.update(task, completed=done, total=total)

    try:
        # SIGTERM unwinds like Ctrl-C, so the temporary files are removed on the way out.
        with common.sigterm_as_interrupt():
            summary = score_file(
                ref,
                input_path,
                output_path,
                chunk_rows=chunk_rows,
                workers=workers,
                executor=executor,
                id_column=id_column,
                reject_path=reject_file,
                unseen=unseen,  # type: ignore[arg-type]
                progress=progress,
            )
    except ConveyorError as exc:
        bar.stop()
        common.fail(str(exc))
    except KeyboardInterrupt as exc:
        bar.stop()
        common.fail(f"Scoring interrupted ({exc or 'Ctrl-C'}); no output was written.", 130)
    finally:
        bar.stop()
    if as_json:
        common.print_json(summary.to_dict())
        return
    out = common.console()
    out.print(
        f"Scored [bold]{summary.rows_scored:,}[/] of {summary.rows_in:,} rows with "
        f"{summary.model} version {summary.version} in "
        f"{common.format_duration(summary.seconds)} ({summary.rows_per_second:,.0f} rows/s) "
        f"-> {summary.output}",
        highlight=False,
    )
    if summary.rows_rejected:
        out.print(
            f"[yellow]{summary.rows_rejected:,} invalid rows[/] -> {summary.reject_file} "
            "(see its _reason column)",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    """Add `serve` and `predict` to the root app."""
    kwargs: dict[str, Any] = {}
    app.command("serve", **kwargs)(serve)
    app.command("predict", **kwargs)(predict)
