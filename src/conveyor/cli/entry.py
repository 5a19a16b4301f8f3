"""The `conveyor` executable: the full CLI, with fast paths for `conveyor task run` and
`conveyor run` (cli/run_command.py).

Orchestrators start one `conveyor task run` process per step, so its start-up is paid once
per task. The exact form the exported workflows use is parsed here with the standard
library and runs without importing the CLI framework (typer, pydantic, rich) or the other
commands; every other command line, including ``--help`` and anything unusual, goes to the
full CLI, which accepts the same arguments and gives the same results.
"""

from __future__ import annotations

import sys
from typing import Any

_VALUE_OPTIONS = {"--run-key": "run_key", "--node": "node", "--index": "index"}
_GLOBAL_OPTIONS = {"--db-url": "db_url", "--artifact-url": "artifact_url"}


def _split(argv: list[str]) -> list[tuple[str, str | None]] | None:
    """``--key value`` / ``--key=value`` pairs and positionals; None on anything odd."""
    out: list[tuple[str, str | None]] = []
    i = 0
    while i < len(argv):
        item = argv[i]
        if item.startswith("--") and "=" in item:
            key, value = item.split("=", 1)
            out.append((key, value))
        elif item in _VALUE_OPTIONS or item in _GLOBAL_OPTIONS:
            if i + 1 >= len(argv):
                return None
            out.append((item, argv[i + 1]))
            i += 1
        elif item == "--no-cache" or not item.startswith("-"):
            out.append((item, None))
        else:
            return None  # -h, --help, --json, anything the fast path does not know
        i += 1
    return out


def task_run_args(argv: list[str]) -> dict[str, Any] | None:
    """The arguments of ``[--db-url U] [--artifact-url U] task run TARGET --run-key K
    --node N [--index I] [--no-cache]``, or None when `argv` is anything else."""
    parts = _split(argv)
    if parts is None:
        return None
    found: dict[str, Any] = {"no_cache": False}
    words: list[str] = []
    for key, value in parts:
        if key in _GLOBAL_OPTIONS and not words:
            found[_GLOBAL_OPTIONS[key]] = value
        elif key in _VALUE_OPTIONS and words[:2] == ["task", "run"]:
            found[_VALUE_OPTIONS[key]] = value
        elif key == "--no-cache" and words[:2] == ["task", "run"]:
            found["no_cache"] = True
        elif value is None and not key.startswith("-"):
            words.append(key)
        else:
            return None
    if len(words) != 3 or words[:2] != ["task", "run"] or "run_key" not in found:
        return None
    if "node" not in found:
        return None
    index = found.get("index")
    if index not in (None, "") and not str(index).isdigit():
        return None  # the full CLI says what is wrong with it
    found["target"] = words[2]
    return found


def _error(message: str) -> None:
    from conveyor._internal.urls import redact_text

    print(f"error: {' '.join(redact_text(message).split())}", file=sys.stderr)


def run_task_fast(args: dict[str, Any]) -> int:
    """`conveyor task run` without the CLI framework; the exit code."""
    import os

    from conveyor.config import load_settings
    from conveyor.exceptions import ConveyorError

    try:
        from conveyor.execution.loader import load_pipeline
        from conveyor.execution.task import run_task

        settings = load_settings(db_url=args.get("db_url"), artifact_url=args.get("artifact_url"))
        pipeline = load_pipeline(args["target"], settings.root)
        index = args.get("index")
        outcome = run_task(
            pipeline,
            settings,
            run_key=args["run_key"],
            node=args["node"],
            index=None if index in (None, "") else int(index),
            cache=False if args["no_cache"] else None,
        )
    except ConveyorError as exc:
        _error(str(exc))
        return 1
    except Exception as exc:
        if os.environ.get("CONVEYOR_TRACEBACK") == "1":
            raise
        _error(
            f"unexpected {type(exc).__name__}: {exc}. This is a bug in conveyor; please report "
            "it (CONVEYOR_TRACEBACK=1 shows the traceback)."
        )
        return 2
    if outcome.status == "failed":
        _error(f"{outcome.node} of run {outcome.run_id} failed: {outcome.error}")
        return 1
    print(f"{outcome.node} of run {outcome.run_id}: {outcome.status}")
    return 0


def main() -> None:
    fast = task_run_args(sys.argv[1:])
    if fast is not None:
        sys.stdout.flush()
        raise SystemExit(run_task_fast(fast))
    from conveyor.cli.run_command import run_args, run_fast

    run = run_args(sys.argv[1:])
    if run is not None:
        raise SystemExit(run_fast(run))
    from conveyor.cli.main import main as full

    full()


if __name__ == "__main__":
    main()
