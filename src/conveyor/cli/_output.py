"""Output helpers of the CLI that need neither typer nor, until they print, rich.

The fast `conveyor run` path (cli/run_command.py) and the full typer CLI (cli/common.py
re-exports these) print through the same functions, so both give the same bytes.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

_console: Console | None = None
_err_console: Console | None = None


class CommandExit(Exception):
    """End the command with this exit code (the message, if any, is already printed)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def console() -> Console:
    """The rich console on stdout, built on first use (importing rich costs ~0.1 s)."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console()
    return _console


def err_console() -> Console:
    """The rich console on stderr, built on first use."""
    global _err_console
    if _err_console is None:
        from rich.console import Console

        _err_console = Console(stderr=True)
    return _err_console


def print_json(value: Any) -> None:
    """Print `value` as indented JSON on stdout (non-JSON values as their str)."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def print_error(message: str) -> None:
    """Print ``error: message`` on stderr; passwords in URLs inside it are masked."""
    from rich.markup import escape

    from conveyor._internal.urls import redact_text

    err_console().print(
        f"[bold red]error:[/] {escape(redact_text(message))}", highlight=False, soft_wrap=True
    )


def report_uncaught(exc: Exception) -> int:
    """Print an error no command handled as one line; returns the exit code.

    A ConveyorError is an expected failure (exit 1); anything else is a bug in conveyor
    (exit 2). ``CONVEYOR_TRACEBACK=1`` re-raises it, to see the traceback.
    """
    import os

    from conveyor.exceptions import ConveyorError

    if os.environ.get("CONVEYOR_TRACEBACK") == "1":
        raise exc
    if isinstance(exc, ConveyorError):
        message, code = str(exc), 1
    else:
        message, code = (
            f"unexpected {type(exc).__name__}: {exc}. This is a bug in conveyor; please "
            "report it (CONVEYOR_TRACEBACK=1 shows the traceback).",
            2,
        )
    print_error(" ".join(message.split()))
    return code


def format_time(epoch: float | None) -> str:
    """A local timestamp as ``YYYY-MM-DD HH:MM:SS``; ``-`` for None."""
    if epoch is None:
        return "-"
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: float | None) -> str:
    """Seconds as ``12 ms``, ``3.40 s`` or ``2.5 min``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"
