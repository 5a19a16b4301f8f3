"""`BackgroundWriter`: a run's durable work, in order, off the path of its steps.

A new blob costs two fsyncs (the file, then its folder): milliseconds per step output,
as long as many steps take. With an in-process executor the values already travel
downstream in memory, so nothing needs to wait for them: the worker computes the bytes
and their hash (the next cache key needs it), queues the write here, and the step's
metadata commit is queued after it. One thread runs the queue first in, first out, so

- a metadata row is committed only after every blob queued before it is durable: no
  committed row ever points at a blob a crash could lose;
- rows are committed in the order the orchestrator made them;
- once a job fails, later jobs are not run (their rows could point at the lost blob);
  `drain` raises the failure.

The orchestrator drains the queue before it records a run as finished, and before a
step that must read an input back from the store starts.
"""

from __future__ import annotations

import concurrent.futures as cf
import queue
import threading
from collections.abc import Callable
from typing import Any

from conveyor.exceptions import StoreError

_STOP = object()


class BackgroundWriter:
    """A FIFO of callables run by one daemon thread (started on first use)."""

    def __init__(self, name: str = "conveyor-writer") -> None:
        self._name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = 0
        self.error: BaseException | None = None

    @property
    def pending(self) -> int:
        """Jobs queued and not finished yet."""
        return self._pending

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """Queue ``fn(*args, **kwargs)`` after everything queued before it."""
        future: cf.Future[Any] = cf.Future()
        with self._lock:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
        self._queue.put((future, fn, args, kwargs))
        return future

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            future, fn, args, kwargs = job
            try:
                if self.error is not None:
                    raise StoreError(
                        f"Not written: an earlier write of this run failed ({self.error})."
                    )
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # recorded, raised by drain() on the caller's side
                if self.error is None:
                    self.error = exc
                future.set_exception(exc)
            finally:
                with self._lock:
                    self._pending -= 1

    def drain(self) -> None:
        """Wait until everything queued so far is done.

        Raises:
            BaseException: the first failure of a queued job (e.g. an OSError of a blob
                write), chained in a StoreError.
        """
        if self._thread is not None:
            self.submit(lambda: None).exception()
        if self.error is not None:
            raise StoreError(
                f"A background artifact or metadata write failed: {self.error}"
            ) from self.error

    def close(self) -> None:
        """Drain and stop the thread (a later `submit` starts a new one).

        Raises:
            StoreError: as `drain`.
        """
        try:
            self.drain()
        finally:
            with self._lock:
                thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(_STOP)
                thread.join()
