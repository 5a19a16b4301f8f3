"""Batch scoring: Parquet or CSV in, Parquet or CSV out, streamed in chunks.

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

The output format follows the output file's extension (``.parquet``, ``.csv``, ``.tsv``,
``.csv.gz``); any other name is refused. Everything that can be checked before scoring is
checked first: the output is not the input (also through a symlink or another spelling of
the path), its folder exists, the input is readable and has the model's columns. Files
are written to a temporary name beside the target and durably renamed when complete; no
failure leaves a partial or temporary file.
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

from conveyor._internal.files import commit, temp_name
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


_SUFFIXES = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv.gz": "csv",
    ".csv": "csv",
    ".tsv": "csv",
}


def _suffix(path: str) -> str | None:
    lower = path.lower()
    return next((s for s in _SUFFIXES if lower.endswith(s)), None)


def _format(path: str, role: str = "input") -> str:
    suffix = _suffix(path)
    if suffix is None:
        raise ServingError(
            f"Cannot tell the format of the {role} file {path!r} from its name: use a "
            ".parquet or .csv file (.tsv and .csv.gz work too)."
        )
    return _SUFFIXES[suffix]


def _default_reject_path(output: str) -> str:
    """``scored.csv`` -> ``scored.rejects.csv``: the reject file follows the output format."""
    suffix = _suffix(output) or ".parquet"
    return f"{output[: len(output) - len(suffix)]}.rejects{output[len(output) - len(suffix) :]}"


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _same_file(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links, case-insensitive file systems
    except OSError:
        return False


def _check_paths(input_path: str, output_path: str, reject_path: str) -> None:
    """Everything that can be known wrong about the files before any row is scored.

    Raises:
        ServingError: naming the file and the fix.
    """
    if not os.path.exists(input_path):
        raise ServingError(f"The input file {input_path!r} does not exist.")
    if not os.path.isfile(input_path):
        raise ServingError(f"The input {input_path!r} is not a file: give a Parquet or CSV file.")
    _format(input_path, "input")
    for role, path in (("output", output_path), ("reject", reject_path)):
        _format(path, role)
        if _same_file(path, input_path):
            raise ServingError(
                f"The {role} file {path!r} is the input file: scoring would overwrite its "
                "own input. Write to another file."
            )
        if os.path.isdir(path):
            raise ServingError(f"The {role} path {path!r} is a folder: give a file name.")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise ServingError(
                f"The folder of the {role} file {path!r} does not exist. Create it first "
                f"(mkdir -p {folder})."
            )
        if not os.access(folder, os.W_OK):
            raise ServingError(f"Cannot write the {role} file {path!r}: its folder is read-only.")
    if _same_file(output_path, reject_path):
        raise ServingError(
            f"The reject file and the output file are the same ({output_path!r}). Give "
            "--reject-file another name."
        )


def _guarded(batches: Iterator[pa.RecordBatch], path: str, kind: str) -> Iterator[pa.RecordBatch]:
    """The batches of an input file, its read errors turned into one-line ServingErrors."""
    import pyarrow as pa

    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as exc:
            raise ServingError(f"{path} is not a readable {kind} file: {_one_line(exc)}") from exc
        yield batch


def _missing(path: str, columns: list[str], have: list[str]) -> None:
    missing = [c for c in columns if c not in set(have)]
    if missing:
        raise ServingError(
            f"{path} lacks the column(s) {', '.join(map(repr, missing))} that the model "
            f"needs. Its columns: {', '.join(have) or '(none)'}."
        )


def _csv_header(path: str, delimiter: str) -> list[str]:
    """The column names of a CSV file, refusing what is not UTF-8 text."""
    import csv

    import pyarrow as pa

    head = b""
    with pa.input_stream(path) as stream:  # decompresses .csv.gz
        while b"\n" not in head and len(head) < (16 << 20):
            more = stream.read(1 << 16)
            if not more:
                break
            head += more
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        raise ServingError(
            f"{path} is not UTF-8 text (it looks like UTF-16). Save it as UTF-8 CSV."
        )
    line = head.split(b"\n", 1)[0].removeprefix(b"\xef\xbb\xbf").rstrip(b"\r")
    if not line.strip():
        raise ServingError(f"{path} has no header row: the first line must name the columns.")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ServingError(
            f"The header of {path} is not UTF-8 text. Save it as UTF-8 CSV."
        ) from None
    return next(csv.reader([text], delimiter=delimiter))


def _read_chunks(
    path: str, columns: list[str], chunk_rows: int
) -> tuple[Iterator[pa.RecordBatch], int | None]:
    import pyarrow as pa

    if _format(path) == "parquet":
        import pyarrow.parquet as pq

        try:
            file = pq.ParquetFile(path)
            names = list(file.schema_arrow.names)
            total = file.metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise ServingError(f"{path} is not a readable Parquet file: {_one_line(exc)}") from exc
        _missing(path, columns, names)
        return _guarded(
            file.iter_batches(batch_size=chunk_rows, columns=columns), path, "Parquet"
        ), total
    import pyarrow.csv as pacsv

    delimiter = "\t" if path.lower().endswith(".tsv") else ","
    _missing(path, columns, _csv_header(path, delimiter))
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    lines = max(1, head.count(b"\n"))
    block = int(min(max(len(head) / lines * chunk_rows, 1 << 16), 1 << 30))
    from conveyor.data.ingest import csv_options

    # The CSV rules of every conveyor command (nulls, encoding). Signature columns are read
    # as text and checked row by row, so one bad cell rejects its row, not the whole file.
    read, parse, convert = csv_options(
        delimiter=delimiter,
        columns=columns,
        column_types={c: pa.string() for c in columns},
        block_size=block,
    )
    try:
        reader = pacsv.open_csv(
            path, read_options=read, parse_options=parse, convert_options=convert
        )
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise ServingError(f"{path} is not a readable CSV file: {_one_line(exc)}") from exc
    return _guarded(iter(reader), path, "CSV"), None


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
    # The names the parent verified when it loaded the model (its registry row's list).
    trusted: tuple[str, ...] = ()

    def load(self) -> tuple[Servable, Validator]:
        entry = _LOADED.get(self.key)
        if entry is None:
            from conveyor.serving.servable import servable_from_model
            from conveyor.training.model import Model

            servable = servable_from_model(
                Model.from_bytes(self.model_bytes, trusted=self.trusted), self.name, self.version
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
    """A Parquet or CSV file written chunk by chunk to a temporary name beside it, and
    durably renamed into place when complete (removed on failure)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.format = _format(path, "output")
        self.tmp = str(temp_name(path))
        self._writer: Any = None
        self._sink: Any = None
        self._schema: pa.Schema | None = None
        self.rows = 0

    @property
    def opened(self) -> bool:
        return self._writer is not None

    def _open(self, schema: pa.Schema) -> None:
        import pyarrow as pa

        if self.format == "parquet":
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(self.tmp, schema, compression="zstd")
        else:
            import pyarrow.csv as pacsv

            compression = "gzip" if self.path.lower().endswith(".gz") else None
            self._sink = pa.output_stream(self.tmp, compression=compression)
            delimiter = "\t" if self.path.lower().endswith(".tsv") else ","
            self._writer = pacsv.CSVWriter(
                self._sink, schema, write_options=pacsv.WriteOptions(delimiter=delimiter)
            )
        self._schema = schema

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._open(table.schema)
        elif table.schema != self._schema:
            table = table.cast(self._schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self, *, keep: bool) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if self._sink is not None:
                self._sink.close()
        except BaseException:
            Path(self.tmp).unlink(missing_ok=True)
            raise
        if keep and self._writer is not None:
            commit(self.tmp, self.path)
        else:
            # Also when an interrupt came while the writer was being made: the temporary
            # file may exist before `_writer` is set.
            Path(self.tmp).unlink(missing_ok=True)


def _close_all(writers: tuple[_Writer, ...], *, keep: bool) -> None:
    """Close every writer; keep the files only when all of them completed."""
    error: BaseException | None = None
    for writer in writers:
        try:
            writer.close(keep=keep and error is None)
        except BaseException as exc:
            error = error or exc
    if error is not None:
        if isinstance(error, OSError):
            raise ServingError(f"Cannot write the scored file: {_one_line(error)}") from error
        raise error


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
    """Score a Parquet or CSV file into a Parquet or CSV file, chunk by chunk.

    Args:
        model: A registry reference (``churn@production``), a `Model` or a `Servable`.
        input_path: Parquet or CSV input.
        output_path: Parquet or CSV output, by its extension (written to a temporary name,
            renamed when complete).
        chunk_rows: Rows per chunk (memory per chunk in flight).
        workers: Processes scoring chunks in parallel (1: score in this process); the
            same as ``executor="processes:N"``.
        executor: Where chunks are scored: an executor spec (``processes:4``,
            ``dask-local:2``, ``dask://host:port``) or an `Executor`, which is left
            running. Chunks go out while the next ones are read, at most two per executor
            worker in flight, and are written back in input order.
        id_column: A column copied to the output and reject file beside each prediction.
        reject_path: Where invalid rows go; default ``<output>.rejects.<output extension>``
            (``scored.csv`` -> ``scored.rejects.csv``). Written only when some row is
            invalid.
        unseen: ``reject`` rows with categories unseen in training, or ``pass`` them.
        progress: Called with (rows done, total rows or None) after each chunk.
        registry: Where a reference is resolved; by default the current settings' one.

    Raises:
        ServingError: an unknown file format, the output is the input, its folder is
            missing, the input cannot be read (truncated Parquet, not UTF-8, ragged CSV),
            a column the model needs is absent, or both `workers` > 1 and `executor`
            given. Raised before any row is scored whenever it can be known then.
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
    input_path, output_path = str(input_path), str(output_path)
    reject = str(reject_path) if reject_path else _default_reject_path(output_path)
    _check_paths(input_path, output_path, reject)  # before the model loads or a row is read
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
        if not writer.opened:
            import pyarrow as pa

            writer.write(pa.table({"_row": pa.array([], pa.int64())}))
        ok = True
    except OSError as exc:
        raise ServingError(f"Scoring {input_path} failed: {_one_line(exc)}") from exc
    finally:
        if pool is not None and owned:
            pool.shutdown(wait=ok)
        _close_all((writer, rejects), keep=ok)
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
    trusted = getattr(servable.model, "trusted_types", None)
    shipped = _Shipped(
        hashlib.sha256(data).hexdigest(),
        data,
        servable.name,
        servable.version,
        unseen,
        tuple(trusted()) if callable(trusted) else (),
    )
    return lambda batch, offset: pool.submit(_score_shipped, shipped, id_column, batch, offset)
