"""Shared CLI plumbing: settings from global options, output helpers, error exits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import typer

from conveyor.cli import _output

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.config import Settings
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore

# Shared with the fast `conveyor run` path, which must not import typer (cli/_output.py).
console = _output.console
err_console = _output.err_console
print_json = _output.print_json
report_uncaught = _output.report_uncaught
format_time = _output.format_time
format_duration = _output.format_duration
_print_error = _output.print_error


def settings(ctx: typer.Context) -> Settings:
    """Settings built once by the root callback from conveyor.toml, env and global flags."""
    root = ctx.find_root()
    cached = root.meta.get("conveyor.settings")
    if cached is None:
        from conveyor.cli.remote import refuse_local

        refuse_local(ctx)
        from conveyor.config import load_settings

        options = root.meta.get("conveyor.options", {})
        try:
            cached = load_settings(**options)
        except Exception as exc:
            fail(str(exc))
        root.meta["conveyor.settings"] = cached
    return cached  # type: ignore[no-any-return]


def export_store_settings(ctx: typer.Context) -> Settings:
    """Resolve settings and publish the store URLs as CONVEYOR_* variables.

    Commands that start servers or worker processes call this, so that every component
    that looks up default stores, here or in a child process, uses the stores named by
    --db-url / --artifact-url rather than only those of conveyor.toml.
    """
    import os

    resolved = settings(ctx)
    os.environ["CONVEYOR_DB_URL"] = resolved.db_url
    os.environ["CONVEYOR_ARTIFACT_URL"] = resolved.artifact_url
    return resolved


def metadata_store(ctx: typer.Context) -> MetadataStore:
    from conveyor.stores.metadata import open_metadata_store

    return open_metadata_store(settings(ctx).db_url)


def artifact_store(ctx: typer.Context) -> ArtifactStore:
    from conveyor.stores.artifacts import open_artifact_store

    return open_artifact_store(settings(ctx).artifact_url)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block, SIGTERM raises KeyboardInterrupt (so `finally` clauses run and
    partial files are removed); the previous handler is restored after it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn a ConveyorError raised inside into its message on stderr and exit code 1."""
    from conveyor.exceptions import ConveyorError

    try:
        yield
    except ConveyorError as exc:
        fail(str(exc))


def write_output(path: Path, content: str | bytes) -> None:
    """Write a file the user named (a report, a schema) atomically, or fail in one line.

    The folder must exist; the file appears whole or not at all (no partial file on any
    error), flushed to disk.
    """
    from conveyor._internal.files import write_atomic

    folder = path.resolve().parent
    if not folder.is_dir():
        fail(f"Cannot write {str(path)!r}: the folder {str(folder)!r} does not exist.")
    if path.is_dir():
        fail(f"Cannot write {str(path)!r}: it is a folder; give a file name.")
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        write_atomic(path, data)
    except OSError as exc:
        fail(f"Cannot write {str(path)!r}: {exc.strerror or exc}.")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error to stderr and exit with a non-zero code.

    Passwords in URLs inside the message are masked, whoever wrote the message.
    """
    _print_error(message)
    raise typer.Exit(code)
