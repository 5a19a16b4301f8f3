"""Prediction logging off the request path, to Parquet segments in the artifact store.

The serving loop hands each answered batch to `PredictionLogger.submit`, which never
blocks: a full queue drops the batch and counts its rows. A background thread buffers
batches and writes one Parquet segment when the buffer reaches ``roll_rows`` rows, when
``roll_seconds`` have passed since its first row, when the model version changes, and on
close. Segments go through the store's atomic `write_file`, so a killed server loses at
most the buffered seconds and never leaves a partial segment under a real name.

A row that cannot be written never takes other rows with it. When a buffer does not
convert to one Parquet table (a column holding values of two types, say), it is written
request by request: the requests that convert go to segments as usual (one per column
layout), and the rows that still fail go to a reject segment under
``prediction-rejects/<model>/...`` with the reason, counted by ``on_rejected`` (the
``*_prediction_log_rejected_rows`` metric). The serving paths coerce every value to the
signature's type before the model, so rejects mean a bug or a custom source, not a client.

Segment layout: ``predictions/<model>/<YYYY-MM-DD>/<HHMMSS>-<pid>-<seq>.parquet`` with the
model's input columns as sent, plus

    _request_id      string      one per HTTP request (X-Request-ID)
    _timestamp       timestamp   UTC time the batch was answered
    _model           string
    _model_version   string
    _prediction      the prediction
    _probabilities   list<double> (classifiers only)

Reject segments hold ``_request_id``, ``_timestamp``, ``_model``, ``_model_version``,
``_reason`` and ``_row`` (the row's inputs and prediction as JSON text).
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import json
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
        on_rejected: Called with the number of rows written to a reject segment.
    """

    def __init__(
        self,
        store: ArtifactStore,
        policy: LogPolicy | None = None,
        *,
        on_written: Callable[[int, str], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
        on_rejected: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.policy = policy or LogPolicy()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=self.policy.max_queue)
        self._on_written = on_written
        self._on_dropped = on_dropped
        self._on_rejected = on_rejected
        self._thread: threading.Thread | None = None
        self.dropped_rows = 0
        self.written_rows = 0
        self.rejected_rows = 0
        self.segments: list[str] = []
        self.reject_segments: list[str] = []

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

    def _path(self, prefix: str, model: str, first: float) -> str:
        stamp = dt.datetime.fromtimestamp(first, dt.UTC)
        return (
            f"{prefix}/{model}/{stamp:%Y-%m-%d}/"
            f"{stamp:%H%M%S}-{os.getpid()}-{next(_SEGMENT_SEQ):06d}.parquet"
        )

    def _write(self, buffer: list[_Entry]) -> None:
        total = sum(len(e.frame) for e in buffer)
        try:
            table = _table(buffer)
        except Exception as exc:
            logger.warning(
                "a prediction log buffer of %d rows does not convert as one table (%s); "
                "writing it request by request",
                total,
                exc,
            )
            self._salvage(buffer)
            return
        self._commit([table], buffer[0])

    def _commit(self, tables: list[Any], first: _Entry) -> None:
        rows = sum(t.num_rows for t in tables)
        try:
            import pyarrow as pa

            if len(tables) > 1:
                meta = tables[0].schema.metadata
                table = pa.concat_tables([t.replace_schema_metadata(meta) for t in tables])
            else:
                table = tables[0]
            data = _parquet(table)
            path = self._path("predictions", first.model, first.timestamp)
            self.store.write_file(path, data)
        except Exception:
            logger.exception("could not write a prediction log segment; %d rows dropped", rows)
            self._drop(rows)
            return
        self.written_rows += rows
        self.segments.append(path)
        if self._on_written is not None:
            self._on_written(rows, path)

    def _salvage(self, buffer: list[_Entry]) -> None:
        """Write what converts, grouped by column layout; reject the rows that do not."""
        import pyarrow as pa

        groups: dict[str, list[Any]] = {}
        rejects: list[tuple[_Entry, int, str]] = []  # (one-row entry, row, reason)
        for entry in buffer:
            for part in _split(entry):
                try:
                    table = _table([part])
                except Exception:
                    for i in range(len(part.frame)):
                        row = _slice(part, i, i + 1)
                        try:
                            table = _table([row])
                        except Exception as exc:
                            rejects.append((row, 0, f"{type(exc).__name__}: {exc}"))
                            continue
                        groups.setdefault(_layout(table), []).append(table)
                    continue
                groups.setdefault(_layout(table), []).append(table)
        if groups:
            # The layout most rows share is the segment's; rows converted to another layout
            # (a column of other types) would break readers of the log: they are rejects.
            layouts = sorted(groups.values(), key=lambda ts: -sum(t.num_rows for t in ts))
            main = list(layouts[0])
            expected = main[0].schema.remove_metadata()
            for tables in layouts[1:]:
                for table in tables:
                    try:  # string vs large_string and the like: the same values
                        main.append(table.replace_schema_metadata(None).cast(expected))
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
                        reason = "its columns do not have the types of the other rows: " + (
                            _diff(expected, table.schema)
                        )
                        for row in _entries_of(table, buffer[0]):
                            rejects.append((row, 0, reason))
            self._commit(main, buffer[0])
        if rejects:
            self._reject(rejects)

    def _reject(self, rejects: list[tuple[_Entry, int, str]]) -> None:
        import numpy as np
        import pyarrow as pa

        first = rejects[0][0]
        rows: dict[str, list[Any]] = {
            "_request_id": [],
            "_timestamp": [],
            "_model": [],
            "_model_version": [],
            "_reason": [],
            "_row": [],
        }
        for entry, i, reason in rejects:
            record = {str(k): v for k, v in entry.frame.iloc[i].to_dict().items()}
            record["_prediction"] = np.asarray(entry.preds)[i]
            rows["_request_id"].append(entry.requests[0][0])
            rows["_timestamp"].append(int(entry.timestamp * 1e6))
            rows["_model"].append(entry.model)
            rows["_model_version"].append(entry.version)
            rows["_reason"].append(reason)
            rows["_row"].append(json.dumps(record, default=_jsonable))
        n = len(rejects)
        table = pa.table(
            {
                **{k: pa.array(v, pa.string()) for k, v in rows.items() if k != "_timestamp"},
                "_timestamp": pa.array(rows["_timestamp"], pa.int64()).cast(
                    pa.timestamp("us", "UTC")
                ),
            }
        )
        try:
            path = self._path("prediction-rejects", first.model, first.timestamp)
            self.store.write_file(path, _parquet(table))
        except Exception:
            logger.exception("could not write a prediction log reject segment; %d rows lost", n)
            self._drop(n)
            return
        logger.error("%d prediction log rows could not be written; see %s", n, path)
        self.rejected_rows += n
        self.reject_segments.append(path)
        if self._on_rejected is not None:
            self._on_rejected(n)


def _layout(table: Any) -> str:
    """The column names and types of a table (not the pandas metadata, which varies)."""
    return str(table.schema.remove_metadata())


def _diff(expected: Any, got: Any) -> str:
    names = [f.name for f in got if not f.name.startswith("_")]
    changed = [
        f"{n} is {got.field(n).type}, expected {expected.field(n).type}"
        for n in names
        if n in expected.names and not got.field(n).type.equals(expected.field(n).type)
    ]
    return "; ".join(changed) or "a different column layout"


def _entries_of(table: Any, like: _Entry) -> list[_Entry]:
    """One-row entries (inputs and prediction) back from a converted table."""
    import numpy as np
    import pandas as pd

    inputs = [n for n in table.column_names if not n.startswith("_")]
    frame = pd.DataFrame({n: table.column(n).to_pylist() for n in inputs})
    preds = np.asarray(table.column("_prediction").to_pylist(), dtype=object)
    ids = table.column("_request_id").to_pylist()
    return [
        _Entry(
            like.model,
            like.version,
            frame.iloc[i : i + 1],
            preds[i : i + 1],
            None,
            [(ids[i], 1)],
            like.timestamp,
        )
        for i in range(table.num_rows)
    ]


def _jsonable(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return str(value)


def _slice(entry: _Entry, start: int, end: int) -> _Entry:
    """Rows start:end of an entry, credited to the request that sent them."""
    import numpy as np

    rid = entry.requests[0][0]
    offset = 0
    for request_id, n in entry.requests:
        if offset + n > start:
            rid = request_id
            break
        offset += n
    return _Entry(
        entry.model,
        entry.version,
        entry.frame.iloc[start:end],
        np.asarray(entry.preds)[start:end],
        None if entry.proba is None else np.asarray(entry.proba)[start:end],
        [(rid, end - start)],
        entry.timestamp,
    )


def _split(entry: _Entry) -> list[_Entry]:
    """One entry per request of a batch."""
    parts = []
    offset = 0
    for _, n in entry.requests:
        parts.append(_slice(entry, offset, offset + n))
        offset += n
    return parts


def _table(buffer: list[_Entry]) -> Any:
    """The segment's Arrow table: the inputs, then the request ids, times and outputs."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    frame = (
        buffer[0].frame
        if len(buffer) == 1
        else pd.concat([e.frame for e in buffer], ignore_index=True)
    )
    ids = [rid for e in buffer for rid, n in e.requests for _ in range(n)]
    stamps = np.concatenate([np.full(len(e.frame), e.timestamp, dtype="float64") for e in buffer])
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
    return table


def _parquet(table: Any) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()
