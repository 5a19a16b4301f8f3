"""`Scheduler`: evaluates the schedules and triggers of pipelines and launches their runs.

One pass is `tick(now)`: renew the lease (a standby scheduler stops here), run the jobs
(e.g. monitors computing the windows that just closed), then for every trigger of every
pipeline evaluate its occurrences since its stored cursor and `claim` each; a fired claim
launches a run whose ``trigger`` records the event, its reason and the monitor report
behind it. `run` repeats ticks until a stop event is set (SIGTERM in the CLI), then waits
for the runs it launched. All state lives in the metadata store, so a restarted scheduler
continues where the last one stopped and never fires an occurrence twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from conveyor.exceptions import ConfigError
from conveyor.triggers import state
from conveyor.triggers.specs import Occurrence, Trigger, triggers_of

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.core.pipeline import Pipeline
    from conveyor.stores.metadata import MetadataStore

logger = logging.getLogger("conveyor.scheduler")

STALE = "stale code"  # status of a tick result that started nothing because code changed


class Job(Protocol):
    """Work done at the start of every tick, before triggers are evaluated."""

    name: str

    def __call__(self, now: float) -> None: ...


Launcher = Callable[["Pipeline[Any, Any]", Mapping[str, Any], Mapping[str, Any]], str | None]


@dataclass(frozen=True)
class Fired:
    """A run the scheduler started (or a suppressed occurrence, with `run` None)."""

    pipeline: str
    trigger: str
    kind: str
    status: str
    reason: str
    event_id: str | None
    report_id: str | None


class Scheduler:
    """Runs pipelines when their schedules and triggers say so.

    Args:
        pipelines: Pipelines whose ``schedule=`` and ``triggers=`` are evaluated.
        settings: Stores (and defaults for the runs it launches).
        jobs: Callables run at the start of each tick (e.g. monitors).
        interval: Seconds between ticks in `run`.
        lease: Name of the lease; schedulers sharing it elect one active instance.
            None disables the lease (correctness never depends on it).
        lease_ttl: Seconds a lease lasts without renewal.
        max_concurrent_runs: Runs launched at once; further ones wait in line.
        launcher: Starts a run and returns its id (default: `run_pipeline` in-process).
        owner: Identity of this scheduler in the lease and events.
    """

    def __init__(
        self,
        pipelines: Sequence[Pipeline[Any, Any]],
        *,
        settings: Settings,
        jobs: Sequence[Job] = (),
        interval: float = 10.0,
        lease: str | None = "default",
        lease_ttl: float = 60.0,
        max_concurrent_runs: int = 1,
        launcher: Launcher | None = None,
        owner: str | None = None,
    ) -> None:
        if interval <= 0:
            raise ConfigError(
                f"The 'interval' parameter of Scheduler must be > 0 seconds. Got {interval!r}."
            )
        if max_concurrent_runs < 1:
            raise ConfigError(
                "The 'max_concurrent_runs' parameter of Scheduler must be an int >= 1. Got "
                f"{max_concurrent_runs!r} instead."
            )
        self.pipelines = list(pipelines)
        self.triggers: list[tuple[Pipeline[Any, Any], Trigger]] = [
            (p, trigger) for p in self.pipelines for trigger in triggers_of(p)
        ]
        self.settings = settings
        self.jobs = list(jobs)
        self.interval = interval
        self.lease = lease
        self.lease_ttl = lease_ttl
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._launcher = launcher or self._run_in_process
        self._pool = ThreadPoolExecutor(max_concurrent_runs, thread_name_prefix="conveyor-run")
        self._futures: list[Future[Any]] = []
        self._store: MetadataStore | None = None
        self.active = False
        from conveyor.triggers.staleness import CodeWatch

        # The project code imported now is what runs; an edit on disk means restart.
        self.code = CodeWatch(settings.root)

    @property
    def metadata_store(self) -> MetadataStore:
        if self._store is None:
            from conveyor.stores.metadata import open_metadata_store

            self._store = open_metadata_store(self.settings.db_url)
        return self._store

    # ------------------------------------------------------------------ one pass
    def tick(self, now: float | None = None) -> list[Fired]:
        """Evaluate everything once at time `now` (default: the clock); launch what fires."""
        now = time.time() if now is None else now
        engine = self.metadata_store.engine
        if self.lease is not None:
            self.active = state.acquire_lease(engine, self.lease, self.owner, now, self.lease_ttl)
            if not self.active:
                return []
        else:
            self.active = True
        for job in self.jobs:
            try:
                job(now)
            except Exception:
                logger.exception("scheduler job %s failed", getattr(job, "name", job))
        out: list[Fired] = []
        for pipeline, trigger in self.triggers:
            try:
                out.extend(self._evaluate(pipeline, trigger, now))
            except Exception:
                logger.exception("trigger %s of %s failed", trigger.kind, pipeline.name)
        self.code.refresh()  # modules the runs imported since: watch them from now on
        return out

    def _evaluate(self, pipeline: Pipeline[Any, Any], trigger: Trigger, now: float) -> list[Fired]:
        engine = self.metadata_store.engine
        key = trigger.key(pipeline.name)
        cursor = state.ensure_state(engine, trigger, pipeline.name, now)
        if state.active_run(engine, key, now):
            return []  # one incident, one run: wait for the current one to finish
        with engine.connect() as c:
            evaluation = trigger.evaluate(c, cursor, now)
        if not evaluation.occurrences:
            if evaluation.cursor != cursor:
                state.save_cursor(engine, key, evaluation.cursor, now)
            return []
        stale = self.code.changed()
        if stale:
            # Decide nothing: the occurrences stay pending for the restarted scheduler.
            reason = (
                f"pipeline code changed on disk since the scheduler started "
                f"({', '.join(stale[:5])}); restart the scheduler to run the new code. "
                f"{len(evaluation.occurrences)} occurrence(s) wait undecided."
            )
            logger.error("%s: %s", key, reason)
            return [Fired(pipeline.name, key, trigger.kind, STALE, reason, None, None)]
        out = []
        for occurrence in evaluation.occurrences:
            decision = state.claim(
                engine,
                trigger,
                pipeline.name,
                occurrence,
                now=now,
                cursor=evaluation.cursor,
                scheduler=self.owner,
            )
            if decision.status == "duplicate":
                continue
            out.append(
                Fired(
                    pipeline=pipeline.name,
                    trigger=key,
                    kind=trigger.kind,
                    status=decision.status,
                    reason=decision.reason,
                    event_id=decision.event_id,
                    report_id=occurrence.report_id,
                )
            )
            if decision.status == state.FIRED:
                assert decision.event_id is not None
                self._launch(pipeline, trigger, occurrence, decision)
        return out

    def _launch(
        self,
        pipeline: Pipeline[Any, Any],
        trigger: Trigger,
        occurrence: Occurrence,
        decision: state.Decision,
    ) -> None:
        record = dict(state.trigger_record(decision, occurrence, trigger))
        params = dict(trigger.params)
        key = trigger.key(pipeline.name)
        event_id = decision.event_id
        assert event_id is not None
        logger.info("%s: starting %s (%s)", key, pipeline.name, occurrence.reason)

        def work() -> str | None:
            run_id: str | None = None
            status = state.FAILED
            try:
                run_id = self._launcher(pipeline, params, record)
                status = state.COMPLETED
            except Exception as exc:
                run_id = getattr(exc, "run_id", None)
                logger.exception("run of %s started by %s failed", pipeline.name, key)
            finally:
                state.finish_event(
                    self.metadata_store.engine, event_id, key, run_id=run_id, status=status
                )
            return run_id

        self._futures.append(self._pool.submit(work))

    def _run_in_process(
        self,
        pipeline: Pipeline[Any, Any],
        params: Mapping[str, Any],
        trigger: Mapping[str, Any],
    ) -> str | None:
        from conveyor.execution.orchestrator import run_pipeline

        run = run_pipeline(
            pipeline,
            params,
            settings=self.settings,
            trigger=trigger,
            tags={state.EVENT_TAG: str(trigger["event_id"])},
            raise_on_failure=False,
        )
        if run.status != "completed":
            raise _RunFailed(run.id, run.status)
        return str(run.id)

    # ------------------------------------------------------------------ loop
    def wait_for_runs(self, timeout: float | None = None) -> bool:
        """Wait for the runs launched so far; False when some are still going."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for future in list(self._futures):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                future.result(timeout=remaining)
            except TimeoutError:
                return False
            except Exception:  # already logged by the run wrapper
                pass
        self._futures = [f for f in self._futures if not f.done()]
        return True

    def run(
        self,
        stop: threading.Event,
        *,
        on_tick: Callable[[list[Fired]], None] | None = None,
        grace: float = 30.0,
    ) -> None:
        """Tick every `interval` seconds until `stop` is set, then wind down cleanly.

        Winding down: no new runs start, the lease is released, and runs already started
        get `grace` seconds to finish (a run still going afterwards is marked interrupted
        by the next process that opens the store).
        """
        try:
            while not stop.is_set():
                started = time.monotonic()
                fired = self.tick()
                if on_tick is not None:
                    on_tick(fired)
                self._futures = [f for f in self._futures if not f.done()]
                stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
        finally:
            self.close(grace)

    def close(self, grace: float = 30.0) -> None:
        if self.lease is not None and self.active:
            try:
                state.release_lease(self.metadata_store.engine, self.lease, self.owner)
            except Exception:
                logger.exception("could not release the scheduler lease")
        self.active = False
        self.wait_for_runs(grace)
        self._pool.shutdown(wait=False, cancel_futures=True)


class _RunFailed(Exception):
    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"run {run_id} ended {status}")
        self.run_id = run_id


__all__ = ["Fired", "Job", "Scheduler"]
