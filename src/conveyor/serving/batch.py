"""Batch scoring: Parquet or CSV in, Parquet out, streamed in chunks.

The input is read one chunk at a time; each chunk is validated against the model signature
(the rules the online server applies), its valid rows are scored and its invalid rows go to
a reject file with the reason. With an executor (``processes:N``, ``dask-local:N``,
``dask://host:port``; ``workers=N`` is ``processes:N``) chunks are scored by its workers
while the parent reads ahead and writes results in input order; at most two chunks per
executor worker are in flight, so peak memory depends on the chunk size, not on the input
size. Workers receive the model's own bytes and load each model once.

Output columns: ``_row`` (0-based input row number), the id column when given,
``prediction`` and, for classifiers, ``proba_<class>`` per class. Reject file columns: the
signature columns as read, the id column, ``_row`` and ``_reason``.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ServingError
from conveyor.serving.validation import Unseen, Validator

if TYPE_CHECKING:
    import pyarrow as pa

    from conveyor.execution.executors import Executor
    from conveyor.registry import Registry
    from conveyor.serving.servable import Servable


@dataclass(frozen=True)
class BatchSummary:
    """What a batch scoring run did."""

    model: str
    version: str
    input: str
    output: str
    reject_file: str | None
    rows_in: int
    rows_scored: int
    rows_rejected: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "input": self.input,
            "output": self.output,
            "reject_file": self.reject_file,
            "rows_in": self.rows_in,
            "rows_scored": self.rows_scored,
            "rows_rejected": self.rows_rejected,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
        }


def _format(path: str) -> str:
    lower = path.lower()
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith((".csv", ".csv.gz", ".tsv")):
        return "csv"
    raise ServingError(
        f"Cannot tell the format of {path!r} from its name: use a .parquet or .csv file."
    )


def _read_chunks(
    path: str, columns: list[str], chunk_rows: int
) -> tuple[Iterator[pa.RecordBatch], int | None]:
    import pyarrow as pa

    if _format(path) == "parquet":
        import pyarrow.parquet as pq

        file = pq.ParquetFile(path)
        have = set(file.schema_arrow.names)
        missing = [c for c in columns if c not in have]
        if missing:
            raise ServingError(
                f"{path} lacks the column(s) {', '.join(map(repr, missing))} that the model "
                f"needs. Its columns: {', '.join(file.schema_arrow.names)}."
            )
        return file.iter_batches(batch_size=chunk_rows, columns=columns), file.metadata.num_rows
    import pyarrow.csv as pacsv

    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    lines = max(1, head.count(b"\n"))
    block = int(min(max(len(head) / lines * chunk_rows, 1 << 16), 1 << 30))
    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=block),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(
            include_columns=columns,
            # Signature columns are read as text and checked row by row, so one bad cell
            # rejects its row instead of failing the whole file.
            column_types={c: pa.string() for c in columns[: len(columns)]},
            strings_can_be_null=True,
        ),
    )
    return iter(reader), None


# -- the per-chunk work (runs in worker processes, or inline) ------------------------------

# Models loaded in this (worker) process, by the hash of their bytes: each worker loads a
# model once however many chunks it scores. One entry: a worker serves one job at a time.
_LOADED: dict[str, tuple[Servable, Validator]] = {}


@dataclass(frozen=True)
class _Shipped:
    """What a worker needs to rebuild the servable: the model's own bytes, not a pickle."""

    key: str
    model_bytes: bytes
    name: str
    version: str
    unseen: Unseen

    def load(self) -> tuple[Servable, Validator]:
        entry = _LOADED.get(self.key)
        if entry is None:
            from conveyor.serving.servable import servable_from_model
            from conveyor.training.model import Model

            servable = servable_from_model(
                Model.from_bytes(self.model_bytes), self.name, self.version
            )
            entry = (servable, servable.validator(self.unseen))
            _LOADED.clear()
            _LOADED[self.key] = entry
        return entry


def _score(
    servable: Servable,
    validator: Validator,
    id_column: str | None,
    batch: pa.RecordBatch,
    offset: int,
) -> tuple[pa.Table, pa.Table | None]:
    import numpy as np
    import pyarrow as pa

    frame = batch.select(list(validator.names)).to_pandas()
    coerced, reasons = validator.frame(frame)
    bad = reasons != None  # noqa: E711
    rows = np.arange(offset, offset + len(frame), dtype=np.int64)
    good = ~bad
    columns: dict[str, Any] = {"_row": rows[good]}
    if id_column is not None:
        columns[id_column] = batch.column(id_column).filter(pa.array(good))
    if good.any():
        preds, proba = servable.predict_frame(coerced[good] if bad.any() else coerced)
    else:
        preds, proba = np.empty(0), None
        if servable.classes is not None:
            proba = np.empty((0, len(servable.classes)))
    columns["prediction"] = preds
    if proba is not None and servable.classes is not None:
        for j, label in enumerate(servable.classes):
            columns[f"proba_{label}"] = proba[:, j]
    out = pa.table(
        {
            k: pa.array(v) if not isinstance(v, pa.Array | pa.ChunkedArray) else v
            for k, v in columns.items()
        }
    )
    rejects = None
    if bad.any():
        mask = pa.array(bad)
        rejects = pa.Table.from_batches([batch.filter(mask)])
        rejects = rejects.append_column("_row", pa.array(rows[bad]))
        rejects = rejects.append_column("_reason", pa.array(reasons[bad].tolist(), pa.string()))
    return out, rejects


def _score_shipped(
    shipped: _Shipped, id_column: str | None, batch: pa.RecordBatch, offset: int
) -> tuple[pa.Table, pa.Table | None]:
    servable, validator = shipped.load()
    return _score(servable, validator, id_column, batch, offset)


class _Writer:
    """A Parquet file written chunk by chunk to a temporary name, renamed when complete."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tmp = f"{path}.{os.getpid()}.part"
        self._writer: Any = None
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(self.tmp, table.schema, compression="zstd")
        elif table.schema != self._writer.schema:
            table = table.cast(self._writer.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self, *, keep: bool) -> None:
        if self._writer is not None:
            self._writer.close()
            if keep:
                os.replace(self.tmp, self.path)
            else:
                os.unlink(self.tmp)


def score_file(
    model: Any,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    chunk_rows: int = 100_000,
    workers: int = 1,
    executor: str | Executor | None = None,
    id_column: str | None = None,
    reject_path: str | os.PathLike[str] | None = None,
    unseen: Unseen = "reject",
    progress: Callable[[int, int | None], None] | None = None,
    registry: Registry | None = None,
) -> BatchSummary:
    """Score a Parquet or CSV file into a Parquet file, chunk by chunk.

    Args:
        model: A registry reference (``churn@production``), a `Model` or a `Servable`.
        input_path: Parquet or CSV input.
        output_path: Parquet output (written to a temporary name, renamed when complete).
        chunk_rows: Rows per chunk (memory per chunk in flight).
        workers: Processes scoring chunks in parallel (1: score in this process); the
            same as ``executor="processes:N"``.
        executor: Where chunks are scored: an executor spec (``processes:4``,
            ``dask-local:2``, ``dask://host:port``) or an `Executor`, which is left
            running. Chunks go out while the next ones are read, at most two per executor
            worker in flight, and are written back in input order.
        id_column: A column copied to the output and reject file beside each prediction.
        reject_path: Where invalid rows go; default ``<output>.rejects.parquet``. Written
            only when some row is invalid.
        unseen: ``reject`` rows with categories unseen in training, or ``pass`` them.
        progress: Called with (rows done, total rows or None) after each chunk.
        registry: Where a reference is resolved; by default the current settings' one.

    Raises:
        ServingError: an unknown file format, a column the model needs is absent, or both
            `workers` > 1 and `executor` given.
        ConfigError: an unknown executor spec or an unreachable Dask scheduler.
        ConveyorError: the reference cannot be resolved or loaded.
    """
    from conveyor.serving.servable import Servable, servable_from_model

    if chunk_rows < 1 or workers < 1:
        raise ServingError(
            f"score_file needs chunk_rows >= 1 and workers >= 1. Got {chunk_rows} and "
            f"{workers} instead."
        )
    if workers > 1:
        if executor is not None:
            raise ServingError(
                f"score_file got both workers={workers} and executor={executor!r}; give "
                f"one (workers={workers} means executor='processes:{workers}')."
            )
        executor = f"processes:{workers}"
    if isinstance(model, str):
        from conveyor.registry import ModelRef, get_registry

        registry = registry or get_registry()
        version = registry.resolve(model)
        name = ModelRef.parse(model).name
        servable = servable_from_model(registry.load(version), name, str(version.version))
    elif isinstance(model, Servable):
        servable = model
    else:
        servable = servable_from_model(model, "model", "0")
    start = time.perf_counter()  # scoring time; loading the model is not part of it
    validator = servable.validator(unseen)
    input_path, output_path = str(input_path), str(output_path)
    _format(output_path if output_path.endswith(".parquet") else output_path + ".parquet")
    reject = (
        str(reject_path) if reject_path else f"{Path(output_path).with_suffix('')}.rejects.parquet"
    )
    columns = list(validator.names) + (
        [id_column] if id_column and id_column not in validator.names else []
    )
    chunks, total = _read_chunks(input_path, columns, chunk_rows)
    writer, rejects = _Writer(output_path), _Writer(reject)
    done = 0
    ok = False
    pool: Executor | None = None
    owned = isinstance(executor, str)

    def emit(out: pa.Table, bad: pa.Table | None, rows: int) -> None:
        nonlocal done
        writer.write(out)
        if bad is not None:
            rejects.write(bad)
        done += rows
        if progress is not None:
            progress(done, total)

    try:
        if executor is None:
            offset = 0
            for batch in chunks:
                emit(*_score(servable, validator, id_column, batch, offset), batch.num_rows)
                offset += batch.num_rows
        else:
            pool = _executor(executor)
            score = _scorer(servable, validator, id_column, unseen, pool)
            pending: deque[tuple[Future[tuple[pa.Table, pa.Table | None]], int]] = deque()
            offset = 0
            for batch in chunks:
                pending.append((score(batch, offset), batch.num_rows))
                offset += batch.num_rows
                if len(pending) >= 2 * pool.max_workers:
                    future, rows = pending.popleft()
                    emit(*future.result(), rows)
            while pending:
                future, rows = pending.popleft()
                emit(*future.result(), rows)
        ok = True
    finally:
        if pool is not None and owned:
            pool.shutdown(wait=ok)
        writer.close(keep=ok)
        rejects.close(keep=ok)
    if writer.rows == 0 and ok:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"_row": pa.array([], pa.int64())}), output_path)
    return BatchSummary(
        model=servable.name,
        version=servable.version,
        input=input_path,
        output=output_path,
        reject_file=reject if rejects.rows else None,
        rows_in=done,
        rows_scored=writer.rows,
        rows_rejected=rejects.rows,
        seconds=time.perf_counter() - start,
    )


def _executor(executor: str | Executor) -> Executor:
    if not isinstance(executor, str):
        return executor
    from conveyor.execution.executors import make_executor

    return make_executor(executor)


def _scorer(
    servable: Servable,
    validator: Validator,
    id_column: str | None,
    unseen: Unseen,
    pool: Executor,
) -> Callable[[pa.RecordBatch, int], Future[tuple[pa.Table, pa.Table | None]]]:
    """A function sending one chunk to `pool`, returning the future of its result."""
    if pool.in_process:
        return lambda batch, offset: pool.submit(
            _score, servable, validator, id_column, batch, offset
        )
    if servable.model is None or not hasattr(servable.model, "to_bytes"):
        raise ServingError(
            f"Scoring on the {pool.name} executor needs a conveyor Model (its bytes are sent "
            "to the workers); this servable has none."
        )
    data = servable.model.to_bytes()
    shipped = _Shipped(
        hashlib.sha256(data).hexdigest(), data, servable.name, servable.version, unseen
    )
    return lambda batch, offset: pool.submit(_score_shipped, shipped, id_column, batch, offset)
