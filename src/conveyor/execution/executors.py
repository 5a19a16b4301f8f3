"""Executors: where step bodies (and other work, like tuning trials) run.

Every executor offers the same tiny interface, so the orchestrator never knows which one it
drives and a cluster executor plugs in without touching it:

- ``submit(fn, *args, resources=None) -> concurrent.futures.Future`` runs ``fn(*args)``
  somewhere; ``resources`` (e.g. ``{"cpus": 2, "gpus": 1, "memory": "8GiB"}``) is honoured
  by cluster executors and ignored by local ones;
- ``shutdown(wait=True)`` releases workers.

``fn`` and ``args`` must be picklable with cloudpickle for executors that leave the
process (``in_process`` is False); closures and functions from ``__main__`` work.

Worker processes never outlive the process that owns the pool: however it ends (kill -9
included), its workers exit within a fraction of a second, and the forkserver with them.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from conveyor.exceptions import ConfigError, did_you_mean

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

T = TypeVar("T")


@runtime_checkable
class Executor(Protocol):
    """Runs callables and returns futures.

    Attributes:
        name: The spec this executor was made from (recorded on runs).
        max_workers: How many callables may run at once.
        in_process: Whether callables run in this process (values need no pickling).
    """

    name: str
    max_workers: int
    in_process: bool

    def submit(
        self, fn: Callable[..., T], /, *args: Any, resources: Mapping[str, Any] | None = None
    ) -> cf.Future[T]: ...

    def shutdown(self, wait: bool = True) -> None: ...


class InlineExecutor:
    """Runs each callable immediately in the calling thread: for debugging (pdb works)."""

    name = "inline"
    max_workers = 1
    in_process = True

    def submit(
        self, fn: Callable[..., T], /, *args: Any, resources: Mapping[str, Any] | None = None
    ) -> cf.Future[T]:
        future: cf.Future[T] = cf.Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True) -> None:
        return None


# Thread pools whose work all finished, kept for the next ThreadsExecutor of the same size:
# starting a thread costs 0.3-5 ms here, a fair part of a short run (issue 17).
_IDLE_POOLS: list[tuple[int, cf.ThreadPoolExecutor]] = []
_IDLE_LOCK = threading.Lock()
_IDLE_MAX = 4
if hasattr(os, "register_at_fork"):  # a forked child has the pools but not their threads
    os.register_at_fork(after_in_child=_IDLE_POOLS.clear)


def _take_pool(max_workers: int) -> cf.ThreadPoolExecutor:
    with _IDLE_LOCK:
        for index, (size, pool) in enumerate(_IDLE_POOLS):
            if size == max_workers:
                del _IDLE_POOLS[index]
                return pool
    return cf.ThreadPoolExecutor(max_workers, thread_name_prefix="conveyor-step")


class ThreadsExecutor:
    """A thread pool: cheap to start, fine for I/O and for libraries that release the GIL.

    `shutdown(wait=True)` waits for the work submitted here, then keeps the idle threads
    for the next executor of the same size in this process; `shutdown(wait=False)`
    cancels what has not started and lets the threads go.

    With `inline_when_idle` (the default) the orchestrator runs a step in its own thread
    when that step is the only work there is (nothing else running, ready or waiting to
    be retried), it has no timeout, and the calling thread runs no asyncio event loop:
    handing it to a pool thread would only add a thread switch to the run.
    """

    in_process = True

    def __init__(self, max_workers: int = 4, *, inline_when_idle: bool = True) -> None:
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigError(
                "The 'max_workers' parameter of ThreadsExecutor must be an int >= 1. Got "
                f"{max_workers!r} instead."
            )
        self.max_workers = max_workers
        self.inline_when_idle = inline_when_idle
        self.name = f"threads:{max_workers}"
        self._pool = _take_pool(max_workers)
        self._submitted: set[cf.Future[Any]] = set()
        self._closed = False

    def submit(
        self, fn: Callable[..., T], /, *args: Any, resources: Mapping[str, Any] | None = None
    ) -> cf.Future[T]:
        if self._closed:
            raise RuntimeError("This ThreadsExecutor was shut down; make a new one.")
        future = self._pool.submit(fn, *args)
        self._submitted.add(future)
        future.add_done_callback(self._submitted.discard)
        return future

    def shutdown(self, wait: bool = True) -> None:
        if self._closed:
            return
        self._closed = True
        if not wait:
            self._pool.shutdown(wait=False, cancel_futures=True)
            return
        cf.wait(list(self._submitted))
        with _IDLE_LOCK:
            if len(_IDLE_POOLS) < _IDLE_MAX:
                _IDLE_POOLS.append((self.max_workers, self._pool))
                return
        self._pool.shutdown(wait=True)


def _call_pickled(payload: bytes) -> Any:
    import cloudpickle

    fn, args = cloudpickle.loads(payload)
    return fn(*args)


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
ORPHANED_EXIT_CODE = 70
"""Exit status of a worker process that found its parent gone."""


def _kill_me_with_parent() -> None:
    """Linux: ask the kernel to SIGKILL this process when its parent dies.

    The parent of a pool worker is the forkserver, which is single-threaded, so the
    "parent thread exited" caveat of PR_SET_PDEATHSIG does not apply. Best effort: the
    pipe watch in `_die_with_parent` covers every platform.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl in this libc: the pipe watch still works
        return


def _die_with_parent(lifeline: Connection) -> None:
    """Pool-worker initializer: exit as soon as the process that owns the pool is gone.

    `lifeline` is the read end of a pipe whose only write end lives in the owning
    process; the kernel closes it however that process ends (kill -9 included), so the
    blocked read returns and the worker exits. The forkserver then sees its last client
    go and exits too, and so does the resource tracker.
    """
    _kill_me_with_parent()

    def watch() -> None:
        try:
            lifeline.recv_bytes()
        except (EOFError, OSError):
            pass
        os._exit(ORPHANED_EXIT_CODE)

    threading.Thread(target=watch, name="conveyor-parent-watch", daemon=True).start()


class ProcessesExecutor:
    """A pool of worker processes (forkserver): true parallelism for CPU-bound Python."""

    in_process = False

    def __init__(self, max_workers: int | None = None) -> None:
        max_workers = max_workers or os.cpu_count() or 1
        if not isinstance(max_workers, int) or max_workers < 1:
            raise ConfigError(
                "The 'max_workers' parameter of ProcessesExecutor must be an int >= 1. Got "
                f"{max_workers!r} instead."
            )
        self.max_workers = max_workers
        self.name = f"processes:{max_workers}"
        context = multiprocessing.get_context("forkserver")
        # Workers hold only the read end; the write end never leaves this process.
        self._lifeline, self._lifeline_writer = context.Pipe(duplex=False)
        self._pool = cf.ProcessPoolExecutor(
            max_workers,
            mp_context=context,
            initializer=_die_with_parent,
            initargs=(self._lifeline,),
        )

    def submit(
        self, fn: Callable[..., T], /, *args: Any, resources: Mapping[str, Any] | None = None
    ) -> cf.Future[T]:
        import cloudpickle

        try:
            payload = cloudpickle.dumps((fn, args))
        except Exception as exc:
            raise ConfigError(
                f"Cannot send {getattr(fn, '__qualname__', fn)!r} to a worker process: {exc}. "
                "Use the threads executor, or make the step's inputs and globals picklable."
            ) from exc
        return self._pool.submit(_call_pickled, payload)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        if wait:
            # Every worker has exited; without `wait` the pipe stays open until this
            # process ends, so work still running is not cut short.
            self._lifeline_writer.close()
            self._lifeline.close()


EXECUTOR_KINDS = ("inline", "threads", "processes", "dask-local", "dask")


def make_executor(spec: str, max_workers: int | None = None) -> Executor:
    """Build an executor from a spec string.

    Specs: ``inline``, ``threads`` / ``threads:N``, ``processes`` / ``processes:N``; cluster
    executors (``dask://host:port``, ``dask-local:N``) are provided by
    ``conveyor.execution.dask`` when installed.

    Raises:
        ConfigError: an unknown spec (with a close-match suggestion) or a bad worker count.
    """
    kind, _, arg = spec.partition(":")
    if spec.startswith("dask"):
        from conveyor.execution import dask as dask_executor

        return dask_executor.make(spec, max_workers)
    if arg:
        try:
            max_workers = int(arg)
        except ValueError:
            raise ConfigError(
                f"Executor spec {spec!r}: the part after ':' must be a worker count."
            ) from None
    if kind == "inline":
        return InlineExecutor()
    if kind == "threads":
        return ThreadsExecutor(max_workers or 4)
    if kind == "processes":
        return ProcessesExecutor(max_workers)
    raise ConfigError(
        f"Unknown executor {spec!r}."
        + did_you_mean(kind, list(EXECUTOR_KINDS))
        + " Choose one of: inline, threads[:N], processes[:N], dask-local[:N], dask://HOST:PORT."
    )


if TYPE_CHECKING:
    _inline: Executor = InlineExecutor()
    _threads: Executor = ThreadsExecutor()
    _processes: Executor = ProcessesExecutor()
