"""Adaptive micro-batching: concurrent requests share one model call.

Requests are queued on the event loop; one collector task takes everything queued (up to
``max_batch_rows``), runs the model once on a single model thread, and answers each
request with its own slice. While the model runs, new requests pile up, so batches grow
with load by themselves. Waiting for stragglers (up to ``max_wait``) happens only when
recent batches show concurrent traffic: a lone client never waits.

A model that raises on a batch is retried request by request, so one bad request fails
alone.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ServingError
from conveyor.serving.validation import RequestError, build_frame

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from conveyor.serving.metrics import ServingMetrics
    from conveyor.serving.servable import Servable


@dataclass(frozen=True)
class BatchPolicy:
    """How requests are grouped.

    Attributes:
        enabled: Group concurrent requests into one model call.
        max_batch_rows: Stop adding requests once a batch has this many rows.
        max_wait: Seconds a batch may wait for more requests under concurrent load.
    """

    enabled: bool = True
    max_batch_rows: int = 128
    max_wait: float = 0.002

    def __post_init__(self) -> None:
        if not isinstance(self.max_batch_rows, int) or self.max_batch_rows < 1:
            raise ServingError(
                "The 'max_batch_rows' parameter of BatchPolicy must be an int >= 1. Got "
                f"{self.max_batch_rows!r} instead."
            )
        if self.max_wait < 0:
            raise ServingError(
                "The 'max_wait' parameter of BatchPolicy must be >= 0 seconds. Got "
                f"{self.max_wait!r} instead."
            )


@dataclass(frozen=True)
class Answer:
    """One request's share of a batch result."""

    predictions: np.ndarray
    probabilities: np.ndarray | None
    version: str


class _Pending:
    __slots__ = ("columns", "future", "request_id", "rows")

    def __init__(
        self, columns: dict[str, list[Any]], rows: int, request_id: str, future: Any
    ) -> None:
        self.columns = columns
        self.rows = rows
        self.request_id = request_id
        self.future = future


BatchSink = Callable[
    ["Servable", "pd.DataFrame", "np.ndarray", "np.ndarray | None", list[tuple[str, int]]], None
]


class MicroBatcher:
    """Groups requests for one loaded model version.

    Args:
        servable: The model version this batcher feeds.
        policy: Batch size and wait limits.
        executor: The model thread (shared by every version so calls never overlap).
        metrics: Where batch sizes and model time are counted.
        sink: Called on the event loop after each model call (prediction logging); must
            not block.
    """

    def __init__(
        self,
        servable: Servable,
        policy: BatchPolicy,
        executor: Executor,
        metrics: ServingMetrics | None = None,
        sink: BatchSink | None = None,
    ) -> None:
        self.servable = servable
        self.policy = policy
        self._executor = executor
        self._metrics = metrics
        self._sink = sink
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._busy_avg = 1.0  # moving average of requests per batch
        self._names = [r.name for r in servable.rules]

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def submit(self, columns: dict[str, list[Any]], rows: int, request_id: str) -> Any:
        """Queue validated columns; returns a future resolving to an `Answer`."""
        if self._closing:
            raise ServingError("This model version is being unloaded.")
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(columns, rows, request_id, future))
        self._wakeup.set()
        return future

    async def close(self) -> None:
        """Answer everything queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    async def _collect(self) -> list[_Pending]:
        queue = self._queue
        first = queue.popleft()
        batch = [first]
        if not self.policy.enabled:
            return batch
        limit = self.policy.max_batch_rows
        rows = first.rows
        deadline = None
        while True:
            while queue and rows + queue[0].rows <= limit:
                item = queue.popleft()
                batch.append(item)
                rows += item.rows
            if rows >= limit or queue or self._busy_avg < 1.5 or self.policy.max_wait == 0:
                break
            now = time.perf_counter()
            if deadline is None:
                deadline = now + self.policy.max_wait
            remaining = deadline - now
            if remaining <= 0 or self._closing:
                break
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = await self._collect()
            self._busy_avg = 0.8 * self._busy_avg + 0.2 * len(batch)
            try:
                frame, preds, proba, seconds = await loop.run_in_executor(
                    self._executor, self._call, batch
                )
            except Exception as exc:
                if len(batch) > 1:
                    for item in batch:
                        await self._run_alone(loop, item)
                else:
                    self._fail(batch[0], exc)
                continue
            self._answer(batch, frame, preds, proba, seconds)

    async def _run_alone(self, loop: asyncio.AbstractEventLoop, item: _Pending) -> None:
        try:
            frame, preds, proba, seconds = await loop.run_in_executor(
                self._executor, self._call, [item]
            )
        except Exception as exc:
            self._fail(item, exc)
        else:
            self._answer([item], frame, preds, proba, seconds)

    def _fail(self, item: _Pending, exc: BaseException) -> None:
        # Called for a request scored alone. An error about the data (a value the model
        # cannot take: too large for its float32 input, say; or numpy's overflow warning
        # where warnings are errors) is the request's: 422, as the stream scorer
        # dead-letters such a row. Anything else is the server's: 500.
        refused = isinstance(exc, (ValueError, TypeError, ArithmeticError, RuntimeWarning))
        if self._metrics is not None:
            self._metrics.error("model_input" if refused else "model")
        if not item.future.done():
            text = (
                f"Model {self.servable.name} version {self.servable.version} failed on this "
                f"request: {type(exc).__name__}: {exc}"
            )
            error: ServingError = (
                RequestError(422, text, problem="model_input") if refused else ServingError(text)
            )
            error.__cause__ = exc
            item.future.set_exception(error)

    def _call(
        self, batch: list[_Pending]
    ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray | None, float]:
        start = time.perf_counter()
        if len(batch) == 1:
            columns = batch[0].columns
        else:
            chain = itertools.chain.from_iterable
            columns = {n: list(chain(b.columns[n] for b in batch)) for n in self._names}
        frame = build_frame(self.servable.rules, columns)
        preds, proba = self.servable.predict_frame(frame)
        return frame, preds, proba, time.perf_counter() - start

    def _answer(
        self,
        batch: list[_Pending],
        frame: pd.DataFrame,
        preds: np.ndarray,
        proba: np.ndarray | None,
        seconds: float,
    ) -> None:
        version = self.servable.version
        offset = 0
        for item in batch:
            end = offset + item.rows
            if not item.future.done():
                item.future.set_result(
                    Answer(
                        preds[offset:end],
                        None if proba is None else proba[offset:end],
                        version,
                    )
                )
            offset = end
        if self._metrics is not None:
            self._metrics.batch_rows.observe(offset)
            self._metrics.batch_requests.observe(len(batch))
            self._metrics.model_seconds.observe(seconds)
        if self._sink is not None:
            self._sink(self.servable, frame, preds, proba, [(b.request_id, b.rows) for b in batch])
