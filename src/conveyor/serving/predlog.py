"""Prediction logging off the request path, to Parquet segments in the artifact store.

The serving loop hands each answered batch to `PredictionLogger.submit`, which never
blocks: a full queue drops the batch and counts its rows. A background thread buffers
batches and writes one Parquet segment when the buffer reaches ``roll_rows`` rows, when
``roll_seconds`` have passed since its first row, when the model version changes, and on
close. Segments go through the store's atomic `write_file`, so a killed server loses at
most the buffered seconds and never leaves a partial segment under a real name.

Segment layout: ``predictions/<model>/<YYYY-MM-DD>/<HHMMSS>-<pid>-<seq>.parquet`` with the
model's input columns as sent, plus

    _request_id      string      one per HTTP request (X-Request-ID)
    _timestamp       timestamp   UTC time the batch was answered
    _model           string
    _model_version   string
    _prediction      the prediction
    _probabilities   list<double> (classifiers only)
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ServingError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from conveyor.stores.artifacts import ArtifactStore

logger = logging.getLogger("conveyor.serving")


# One sequence per process: several loggers in one process (a server and a stream scorer,
# two apps in tests) never name two segments alike within the same second.
_SEGMENT_SEQ = itertools.count(1)


@dataclass(frozen=True)
class LogPolicy:
    """When segments roll and how much may wait in memory.

    Attributes:
        roll_rows: Write a segment once this many rows are buffered.
        roll_seconds: Write a segment at most this long after its first row (the most a
            killed server can lose).
        max_queue: Batches that may wait for the writer thread; more are dropped, counted.
    """

    roll_rows: int = 50_000
    roll_seconds: float = 5.0
    max_queue: int = 2_000

    def __post_init__(self) -> None:
        if self.roll_rows < 1 or self.roll_seconds <= 0 or self.max_queue < 1:
            raise ServingError(
                "LogPolicy needs roll_rows >= 1, roll_seconds > 0 and max_queue >= 1. Got "
                f"{self.roll_rows!r}, {self.roll_seconds!r} and {self.max_queue!r} instead."
            )


class _Entry:
    __slots__ = ("frame", "model", "preds", "proba", "requests", "timestamp", "version")

    def __init__(
        self,
        model: str,
        version: str,
        frame: pd.DataFrame,
        preds: np.ndarray,
        proba: np.ndarray | None,
        requests: list[tuple[str, int]],
        timestamp: float,
    ) -> None:
        self.model = model
        self.version = version
        self.frame = frame
        self.preds = preds
        self.proba = proba
        self.requests = requests
        self.timestamp = timestamp


_STOP = object()


class PredictionLogger:
    """Appends answered batches to Parquet segments from a background thread.

    Thread-safe: `submit` may be called from any thread and never blocks.

    Args:
        store: The artifact store whose named files receive the segments.
        policy: Roll and queue limits.
        on_written: Called with (rows, segment path) after each segment.
        on_dropped: Called with the number of rows dropped.
    """

    def __init__(
        self,
        store: ArtifactStore,
        policy: LogPolicy | None = None,
        *,
        on_written: Callable[[int, str], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.policy = policy or LogPolicy()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.policy.max_queue)
        self._on_written = on_written
        self._on_dropped = on_dropped
        self._thread: threading.Thread | None = None
        self.dropped_rows = 0
        self.written_rows = 0
        self.segments: list[str] = []

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="conveyor-prediction-log", daemon=True
        )
        self._thread.start()

    def submit(
        self,
        model: str,
        version: str,
        *,
        frame: pd.DataFrame,
        preds: np.ndarray,
        proba: np.ndarray | None,
        requests: list[tuple[str, int]],
    ) -> bool:
        """Queue one answered batch; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(
                _Entry(model, version, frame, preds, proba, requests, time.time())
            )
        except queue.Full:
            self._drop(len(frame))
            return False
        return True

    def flush(self, timeout: float = 10.0) -> None:
        """Write everything submitted so far (blocks until the writer has done so)."""
        done = threading.Event()
        self._queue.put(done, timeout=timeout)
        if not done.wait(timeout):
            raise ServingError(f"The prediction log did not flush within {timeout} s.")

    def close(self, timeout: float = 10.0) -> None:
        """Write what is buffered and stop the thread."""
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            logger.warning("prediction log queue stayed full on close; buffered rows lost")
            return
        self._thread.join(timeout)
        self._thread = None

    def _drop(self, rows: int) -> None:
        self.dropped_rows += rows
        if self._on_dropped is not None:
            self._on_dropped(rows)

    def _loop(self) -> None:
        buffer: list[_Entry] = []
        rows = 0
        started = 0.0
        while True:
            timeout = (
                None
                if not buffer
                else max(0.0, started + self.policy.roll_seconds - time.monotonic())
            )
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if isinstance(item, _Entry):
                if buffer and (item.version != buffer[0].version or item.model != buffer[0].model):
                    self._write(buffer)
                    buffer, rows = [], 0
                if not buffer:
                    started = time.monotonic()
                buffer.append(item)
                rows += len(item.frame)
                if (
                    rows < self.policy.roll_rows
                    and time.monotonic() - started < self.policy.roll_seconds
                ):
                    continue
            if buffer:
                self._write(buffer)
                buffer, rows = [], 0
            if isinstance(item, threading.Event):
                item.set()
            elif item is _STOP:
                return

    def _write(self, buffer: list[_Entry]) -> None:
        total = sum(len(e.frame) for e in buffer)
        try:
            data, first = self._segment(buffer)
            stamp = dt.datetime.fromtimestamp(first, dt.UTC)
            path = (
                f"predictions/{buffer[0].model}/{stamp:%Y-%m-%d}/"
                f"{stamp:%H%M%S}-{os.getpid()}-{next(_SEGMENT_SEQ):06d}.parquet"
            )
            self.store.write_file(path, data)
        except Exception:
            logger.exception("could not write a prediction log segment; %d rows dropped", total)
            self._drop(total)
            return
        self.written_rows += total
        self.segments.append(path)
        if self._on_written is not None:
            self._on_written(total, path)

    @staticmethod
    def _segment(buffer: list[_Entry]) -> tuple[bytes, float]:
        import numpy as np
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = pd.concat([e.frame for e in buffer], ignore_index=True)
        ids = [rid for e in buffer for rid, n in e.requests for _ in range(n)]
        stamps = np.concatenate(
            [np.full(len(e.frame), e.timestamp, dtype="float64") for e in buffer]
        )
        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.append_column("_request_id", pa.array(ids, pa.string()))
        table = table.append_column(
            "_timestamp",
            pa.array((stamps * 1e6).astype("int64"), pa.int64()).cast(pa.timestamp("us", "UTC")),
        )
        table = table.append_column("_model", pa.array([buffer[0].model] * len(frame), pa.string()))
        table = table.append_column(
            "_model_version", pa.array([buffer[0].version] * len(frame), pa.string())
        )
        preds = np.concatenate([np.asarray(e.preds) for e in buffer])
        table = table.append_column("_prediction", pa.array(preds))
        if all(e.proba is not None for e in buffer):
            proba = np.concatenate([np.asarray(e.proba, dtype="float64") for e in buffer])
            flat = pa.array(proba.reshape(-1))
            width = proba.shape[1] if proba.ndim == 2 else 1
            table = table.append_column(
                "_probabilities", pa.FixedSizeListArray.from_arrays(flat, width)
            )
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        return sink.getvalue(), buffer[0].timestamp
