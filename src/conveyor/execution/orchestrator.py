"""The orchestrator: `run_pipeline` executes a `Plan` and is the only writer of its run's metadata.

It creates the run row, hands the walk of the DAG to `walk.Execution` (cache keys, cache
hits, executors, retries, timeouts, dynamic maps, failures) and records how the run ended.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor._internal.ids import new_id
from conveyor.config import Settings, load_settings
from conveyor.core.pipeline import (
    Pipeline,
)
from conveyor.exceptions import (
    RunFailedError,
)
from conveyor.execution.executors import Executor, make_executor
from conveyor.execution.run import Run
from conveyor.execution.walk import EventHandler, Execution, json_params
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata.store import (
    COMPLETED,
    FAILED,
    INTERRUPTED,
    RUNNING,
    process_start_time,
)

__all__ = ["EventHandler", "Execution", "code_version", "json_params", "run_pipeline"]

_HOST = socket.gethostname()
_STARTED: dict[int, int | None] = {}  # pid -> its start time (reading /proc costs a syscall)


def _this_process() -> tuple[int, int | None]:
    """(pid, start time) of this process, read again in a forked child."""
    pid = os.getpid()
    if pid not in _STARTED:
        _STARTED.clear()
        _STARTED[pid] = process_start_time(pid)
    return pid, _STARTED[pid]


def code_version(root: Path) -> tuple[str | None, bool | None]:
    """(git sha, dirty flag) of the project at `root`, or (None, None) outside git."""
    folder = root.resolve()
    if not any((p / ".git").exists() for p in (folder, *folder.parents)):
        return None, None
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if sha.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    return sha.stdout.strip() or None, bool(status.stdout.strip())


def run_pipeline(
    pipeline: Pipeline[Any, Any],
    params: Mapping[str, Any] | None = None,
    *,
    settings: Settings | None = None,
    executor: Executor | str | None = None,
    max_workers: int | None = None,
    cache: bool | None = None,
    tags: Mapping[str, str] | None = None,
    trigger: Mapping[str, Any] | None = None,
    on_event: EventHandler | None = None,
    raise_on_failure: bool = True,
) -> Run:
    """Build `pipeline` with `params`, execute it and record everything.

    Args:
        pipeline: The pipeline to run.
        params: Pipeline parameters (validated against its signature).
        settings: Stores and defaults; built from conveyor.toml and env when omitted.
        executor: An Executor, or a spec such as ``threads:4``, ``processes``, ``inline``.
        max_workers: Parallelism for an executor built from a spec.
        cache: Override caching for every step (``False`` = ``--no-cache``).
        tags: String tags stored on the run.
        trigger: Why the run started (recorded for lineage), e.g. a schedule or a drift.
        on_event: Called with (event, step, info) as steps progress.
        raise_on_failure: Raise RunFailedError when a step failed (else return the Run).

    Raises:
        PipelineDefinitionError: the DAG is invalid (before anything is recorded).
        RunFailedError: a step failed; the error names it and chains the original.
    """
    settings = settings or load_settings()
    plan = pipeline.build(**dict(params or {}))
    metadata = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    metadata.reconcile_stale_runs()
    if executor is None or isinstance(executor, str):
        owned = True
        runner = make_executor(executor or settings.executor, max_workers or settings.max_workers)
    else:
        owned, runner = False, executor
    prepare = getattr(runner, "prepare", None)
    if prepare is not None:
        try:
            prepare(settings.artifact_url, settings.root)
        except BaseException:
            if owned:
                runner.shutdown(wait=False)
            raise
    sha, dirty = code_version(settings.root)
    pid, proc_start = _this_process()
    run_id = new_id()
    started = time.time()
    metadata.create_run(
        {
            "id": run_id,
            "pipeline": plan.pipeline,
            "status": RUNNING,
            "created_at": started,
            "started_at": started,
            "params": json_params(plan.params),
            "code_sha": sha,
            "code_dirty": dirty,
            "executor": runner.name,
            "host": _HOST,
            "pid": pid,
            "proc_start": proc_start,
            "trigger": dict(trigger) if trigger else None,
        },
        tags=dict(tags or {}),
    )
    execution = Execution(
        plan,
        run_id=run_id,
        settings=settings,
        metadata=metadata,
        artifacts=artifacts,
        executor=runner,
        use_cache=settings.cache if cache is None else cache,
        on_event=on_event,
        pipeline_module=getattr(pipeline.fn, "__module__", None),
    )
    try:
        execution.start()
        execution.loop()
    except BaseException as exc:
        status = INTERRUPTED if isinstance(exc, KeyboardInterrupt) else FAILED
        try:
            execution.flush()
        except Exception:  # the run is recorded as failed below either way
            pass
        metadata.update_run(
            run_id, status=status, ended_at=time.time(), error=f"{type(exc).__name__}: {exc}"
        )
        metadata.close_open_steps(run_id, status)
        if owned:
            runner.shutdown(wait=False)
        raise
    if owned:
        # Do not wait for failed work or for attempts abandoned after their timeout.
        runner.shutdown(wait=not (execution.failed or execution.abandoned))
    status = FAILED if execution.failed else COMPLETED
    error = None
    if execution.failed:
        first = next(iter(execution.failed.values()))
        error = str(first)
    metadata.update_run(
        run_id,
        status=status,
        ended_at=time.time(),
        outputs=execution.outputs(),
        error=error,
    )
    run = Run(metadata.get_run(run_id), metadata, artifacts)
    if execution.failed and raise_on_failure:
        names = ", ".join(sorted(execution.failed))
        first = next(iter(execution.failed.values()))
        raise RunFailedError(
            f"Run {run_id} of pipeline {plan.pipeline!r} failed in step(s) {names}. "
            f"{first}\nSee `conveyor runs show {run_id}` and `conveyor logs {run_id} "
            f"{first.step}`.",
            run=run,
        ) from first
    return run
