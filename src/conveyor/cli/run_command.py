"""`conveyor run`: the command's body, and its fast path that needs no CLI framework.

Every `conveyor run` process pays its start-up, and importing typer (which brings click
and pydantic) and rich costs more than the run of a small pipeline. The console script
(cli/entry.py) therefore parses the usual forms of ``[--db-url U] [--artifact-url U] run
TARGET [options]`` itself, with the option table below, and calls `execute_run`; the
typer command in cli/runs.py calls the same function. Anything the table does not cover
exactly (``--help``, an unknown or abbreviated option, a bad integer, grouped short
flags, ``--``, a value that starts with ``-``, a repeated single option, --server) is
left to the full typer CLI, so errors, help and exit codes are typer's in every case. A
test (tests/unit/cli/test_run_fast_path.py) holds the table equal to the typer command.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from conveyor.cli import _output
from conveyor.cli._output import CommandExit

if TYPE_CHECKING:
    from conveyor.config import Settings


@dataclass(frozen=True)
class OptionSpec:
    """One command-line option: its names, where its value goes and what it takes."""

    dest: str
    names: tuple[str, ...]
    takes_value: bool
    multiple: bool = False
    integer: bool = False


# The options of the root callback the fast path passes on; the others (--server,
# --server-token-file, --version, --help) send the command line to the full CLI.
ROOT_OPTIONS = (
    OptionSpec("db_url", ("--db-url",), takes_value=True),
    OptionSpec("artifact_url", ("--artifact-url",), takes_value=True),
)
# Every option of `conveyor run` except --help (the typer command in cli/runs.py).
RUN_OPTIONS = (
    OptionSpec("param", ("--param", "-p"), takes_value=True, multiple=True),
    OptionSpec("executor", ("--executor",), takes_value=True),
    OptionSpec("max_workers", ("--max-workers",), takes_value=True, integer=True),
    OptionSpec("no_cache", ("--no-cache",), takes_value=False),
    OptionSpec("quiet", ("--quiet", "-q"), takes_value=False),
    OptionSpec("json_out", ("--json",), takes_value=False),
)


def _parse_options(
    argv: list[str], options: tuple[OptionSpec, ...], stop: str | None
) -> tuple[dict[str, Any], list[str], int] | None:
    """Options and positionals of `argv` up to the word `stop`; None on anything unusual."""
    by_name = {name: spec for spec in options for name in spec.names}
    found: dict[str, Any] = {}
    words: list[str] = []
    i = 0
    while i < len(argv):
        item = argv[i]
        if stop is not None and item == stop:
            return found, words, i
        if not item.startswith("-"):
            if stop is not None:
                return None  # a word before the command: some other command
            words.append(item)
            i += 1
            continue
        name, value = item.split("=", 1) if item.startswith("--") and "=" in item else (item, None)
        spec = by_name.get(name)
        if spec is None:
            return None
        if spec.takes_value:
            if value is None:
                if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                    return None
                value = argv[i + 1]
                i += 1
            if spec.integer and not (value.isascii() and value.isdigit()):
                return None
        elif value is not None:
            return None
        if spec.multiple:
            found.setdefault(spec.dest, []).append(value)
        elif spec.dest in found:
            return None
        else:
            found[spec.dest] = value if spec.takes_value else True
        i += 1
    if stop is not None:
        return None
    return found, words, i


def run_args(argv: list[str]) -> dict[str, Any] | None:
    """The arguments of ``[root options] run TARGET [run options]``, as keyword arguments
    of `run_fast`; None when `argv` is anything else or anything the table does not cover."""
    root = _parse_options(argv, ROOT_OPTIONS, stop="run")
    if root is None:
        return None
    root_found, _, at = root
    rest = _parse_options(argv[at + 1 :], RUN_OPTIONS, stop=None)
    if rest is None:
        return None
    found, words, _ = rest
    if len(words) != 1:
        return None
    args: dict[str, Any] = {
        "db_url": root_found.get("db_url"),
        "artifact_url": root_found.get("artifact_url"),
        "target": words[0],
        "param": found.get("param"),
        "executor": found.get("executor"),
        "max_workers": None if "max_workers" not in found else int(found["max_workers"]),
    }
    for flag in ("no_cache", "quiet", "json_out"):
        args[flag] = bool(found.get(flag, False))
    return args


def run_fast(args: Mapping[str, Any]) -> int:
    """`conveyor run` without the CLI framework, as `run_args` parsed it; the exit code."""

    def settings() -> Settings:
        from conveyor.config import load_settings

        try:
            return load_settings(db_url=args["db_url"], artifact_url=args["artifact_url"])
        except Exception as exc:
            fail(str(exc))

    try:
        execute_run(
            settings,
            target=args["target"],
            param=args["param"],
            executor=args["executor"],
            max_workers=args["max_workers"],
            no_cache=args["no_cache"],
            quiet=args["quiet"],
            json_out=args["json_out"],
        )
    except CommandExit as exc:
        return exc.code
    except KeyboardInterrupt:
        return 130  # what the typer CLI exits with on a Ctrl-C outside the run
    except BrokenPipeError:
        return 1  # as the typer CLI: the reader of stdout went away
    except Exception as exc:
        return _output.report_uncaught(exc)
    finally:
        sys.stdout.flush()
    return 0


def fail(message: str, code: int = 1) -> NoReturn:
    """Print an error to stderr and end the command with `code`."""
    _output.print_error(message)
    raise CommandExit(code)


_STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "running": "yellow",
    "skipped": "dim",
    "interrupted": "magenta",
}


def status_markup(status: str) -> str:
    """A run or step status in its colour, as rich markup."""
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


class _Progress:
    """Prints one line per finished step, and a live progress bar on a terminal.

    Quiet runs and runs whose output is not a terminal never build the bar, so they do
    not import rich.progress (nor rich at all when quiet): that import is part of every
    `conveyor run` process's start-up.
    """

    def __init__(self, pipeline: str, total: int, quiet: bool) -> None:
        self.quiet = quiet
        self.progress: Any = None
        if quiet or not sys.stdout.isatty():
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=_output.console(),
            transient=True,
            disable=not _output.console().is_terminal,
        )
        self.task = self.progress.add_task(pipeline, total=total)

    @property
    def console(self) -> Any:
        return _output.console()

    def __enter__(self) -> _Progress:
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)

    def __call__(self, event: str, step: str, info: Mapping[str, Any]) -> None:
        if self.progress is not None:
            if event == "expanded":
                self.progress.update(
                    self.task, total=(self.progress.tasks[0].total or 0) + info["count"] - 1
                )
                return
            if event in ("completed", "cached", "failed", "skipped"):
                self.progress.advance(self.task)
        elif event == "expanded":
            return
        if self.quiet:
            return
        if event == "completed":
            self.console.print(
                f"  [green]✓[/] {step} [dim]{_output.format_duration(info['duration'])}[/]",
                highlight=False,
            )
        elif event == "cached":
            self.console.print(f"  [cyan]↺[/] {step} [dim](cached)[/]", highlight=False)
        elif event == "failed":
            self.console.print(f"  [red]✗ {step}[/] {info['error']}", highlight=False)
        elif event == "skipped":
            self.console.print(f"  [dim]- {step} (skipped)[/]", highlight=False)
        elif event == "retry":
            self.console.print(
                f"  [yellow]↻ {step}[/] attempt {info['attempt']} failed: {info['error']}; "
                f"retrying in {info['delay']:.1f} s",
                highlight=False,
            )


def execute_run(
    settings: Callable[[], Settings],
    *,
    target: str,
    param: list[str] | None,
    executor: str | None,
    max_workers: int | None,
    no_cache: bool,
    quiet: bool,
    json_out: bool,
) -> None:
    """Load, run and report one pipeline run; raises CommandExit on a failure.

    Args:
        settings: Resolves the settings (and reports a bad configuration itself).
        target: ``FILE.py:PIPELINE`` or ``package.module:PIPELINE``.
        param: ``key=value`` pipeline parameters.
        executor: The executor spec, or None for the configured one.
        max_workers: Parallel steps, or None for the executor's default.
        no_cache: Re-run every step.
        quiet: Print only the summary of a failed run.
        json_out: Print the run record as JSON.

    Raises:
        CommandExit: 2 when the pipeline cannot be loaded or built, 1 when the run fails.
    """
    from conveyor.exceptions import ConveyorError, PipelineDefinitionError, RunFailedError
    from conveyor.execution.loader import load_pipeline, parse_params
    from conveyor.execution.orchestrator import run_pipeline

    resolved = settings()
    try:
        pipeline = load_pipeline(target, resolved.root)
        params = parse_params(pipeline, param or [])
        plan_size = len(pipeline.build(**params).nodes)
    except PipelineDefinitionError as exc:
        fail(str(exc), code=2)
    except ConveyorError as exc:
        fail(str(exc), code=2)
    started = time.perf_counter()
    if not (quiet or json_out):
        _output.console().print(f"Running [bold]{pipeline.name}[/] {params or ''}", highlight=False)
    failed: RunFailedError | None = None

    def on_sigterm(signum: int, _frame: object) -> None:
        # Unwind like Ctrl-C: the run and its open steps are recorded as interrupted now,
        # not on the next look at the store.
        raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with _Progress(pipeline.name, plan_size, quiet or json_out) as progress:
            try:
                result = run_pipeline(
                    pipeline,
                    params,
                    settings=resolved,
                    executor=executor,
                    max_workers=max_workers,
                    cache=False if no_cache else None,
                    on_event=progress,
                )
            except RunFailedError as exc:
                failed = exc
                result = exc.run  # type: ignore[assignment]
            except ConveyorError as exc:
                fail(str(exc))
            except KeyboardInterrupt as exc:
                import os

                _output.err_console().print(
                    f"[bold red]error:[/] Run interrupted ({exc or 'Ctrl-C'}); re-run to resume "
                    "from cache.",
                    highlight=False,
                )
                sys.stdout.flush()
                sys.stderr.flush()
                # The run is recorded as interrupted. Step threads cannot be stopped, and the
                # interpreter would wait for them at exit, so leave now.
                os._exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    elapsed = time.perf_counter() - started
    if json_out:
        _output.print_json({**result.record, "steps": result.steps()})
    elif not quiet or failed:
        steps = result.steps()
        cached = sum(1 for s in steps if s["cache_hit"])
        _output.console().print(
            f"Run [bold]{result.id}[/] {status_markup(result.status)} in "
            f"{_output.format_duration(elapsed)}: {len(steps)} steps, {cached} cached.",
            highlight=False,
        )
    if failed is not None:
        from conveyor.exceptions import StepFailedError

        cause = failed.__cause__
        if isinstance(cause, StepFailedError) and cause.traceback_text:
            _output.err_console().print(cause.traceback_text, highlight=False, markup=False)
        fail(str(failed))
