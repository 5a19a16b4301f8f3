"""Connectors: CSV, Parquet (files and dataset folders), SQL and Delta Lake.

`iter_batches` streams Arrow RecordBatches in bounded memory; the `read_*` functions load
a whole table. Every read failure becomes a `DataError` that names the source, says what
went wrong and how to fix it. Inside a running step, each read is recorded in the step's
params (``data_sources``) so that lineage shows which source, and which Delta version, a
run read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from conveyor._internal.urls import redact_text, redact_url
from conveyor.exceptions import DataError

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_BATCH_ROWS = 131_072
Output = Literal["pandas", "arrow"]
_SNIFF = (";", "\t", "|")

# The null rules of every CSV reader in conveyor (data profile, infer-schema, validate,
# datasets register, predict): an empty cell, quoted or not, is null in every column,
# text columns included, and so are the usual missing-value markers (pyarrow's defaults).
CSV_NULL_VALUES: tuple[str, ...] = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "n/a",
    "nan",
    "null",
)


def _record_source(kind: str, uri: str, **extra: Any) -> None:
    from conveyor.core.context import current_context

    context = current_context()
    if context is None:
        return
    sources = list(context.params.get("data_sources", []))
    sources.append({"kind": kind, "uri": uri, **extra})
    context.params["data_sources"] = sources
    for key, value in extra.items():
        if key == "version" and value is not None:
            context.tags[f"source.{Path(uri).name}.version"] = str(value)


def _existing(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{what} {str(p)!r} does not exist. Check the path.")
    if p.is_file() and p.stat().st_size == 0:
        raise DataError(f"{what} {str(p)!r} is empty (0 bytes). Nothing to read.")
    return p


def _check_names(names: Sequence[str], source: str) -> None:
    seen: set[str] = set()
    duplicates = []
    for name in names:
        if name in seen:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        raise DataError(
            f"{source} has duplicate column names: "
            + ", ".join(repr(d) for d in sorted(set(duplicates)))
            + ". Rename them so each column has a unique name."
        )


def _output(table: pa.Table, as_: Output) -> Any:
    if as_ == "arrow":
        return table
    return table.to_pandas()


# ---------------------------------------------------------------- CSV
def csv_options(
    *,
    delimiter: str = ",",
    columns: Sequence[str] | None = None,
    column_types: Mapping[str, pa.DataType] | None = None,
    block_size: int | None = None,
    encoding: str = "utf-8",
) -> tuple[Any, Any, Any]:
    """pyarrow's (ReadOptions, ParseOptions, ConvertOptions) with conveyor's CSV rules.

    Every command that reads CSV builds its reader from these, so they agree on what is
    null (`CSV_NULL_VALUES`, empty text cells included) and on the text encoding.

    Raises:
        DataError: an unknown encoding.
    """
    import codecs

    from pyarrow import csv

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(
            f"Unknown text encoding {encoding!r}. Use e.g. utf-8, latin-1 or cp1252."
        ) from None
    read = csv.ReadOptions(encoding=encoding)
    if block_size is not None:
        read.block_size = block_size
    convert = csv.ConvertOptions(
        include_columns=list(columns) if columns else None,
        column_types=dict(column_types or {}),
        null_values=list(CSV_NULL_VALUES),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    return read, csv.ParseOptions(delimiter=delimiter), convert


def _not_utf8(source: str, column: str | None = None) -> DataError:
    where = f"column {column!r} of {source}" if column else source
    return DataError(
        f"The text in {where} is not valid UTF-8; it looks like Latin-1 (ISO-8859-1) or "
        "Windows-1252. Pass encoding='latin-1' (or 'cp1252'; CLI: --encoding latin-1), or "
        "save the file as UTF-8."
    )


def _csv_batches(
    path: str | Path,
    *,
    delimiter: str = ",",
    batch_rows: int = DEFAULT_BATCH_ROWS,
    columns: Sequence[str] | None = None,
    encoding: str = "utf-8",
) -> Iterator[pa.RecordBatch]:
    from pyarrow import csv

    p = _existing(path, "CSV file")
    source = f"CSV file {str(p)!r}"
    block = max(1 << 16, min(1 << 20, batch_rows * 16))
    read, parse, convert = csv_options(
        delimiter=delimiter, columns=columns, block_size=block, encoding=encoding
    )
    try:
        reader = csv.open_csv(p, read_options=read, parse_options=parse, convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise _csv_error(exc, source, p, delimiter) from exc
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{source} cannot be decoded as {encoding}: {exc}. Pass the file's encoding."
        ) from exc
    names = reader.schema.names
    _check_names(names, source)
    # A CSV holds text: Arrow infers "binary" only for a column whose bytes are not valid
    # in the encoding (a Latin-1 file read as UTF-8). Refuse rather than store bytes.
    for field in reader.schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            raise _not_utf8(source, field.name)
    if len(names) == 1 and delimiter == ",":
        header = names[0]
        for other in _SNIFF:
            if other in header:
                raise DataError(
                    f"{source} has a single column {header!r}, which looks like it uses "
                    f"{other!r} as delimiter. Pass delimiter={other!r} (CLI: --delimiter)."
                )
    rows = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as exc:
            raise _csv_error(exc, source, p, delimiter, rows) from exc
        rows += batch.num_rows
        yield batch


def _csv_error(
    exc: Exception, source: str, path: Path, delimiter: str, rows: int | None = None
) -> DataError:
    text = str(exc)
    if "invalid UTF8" in text or "invalid utf8" in text.lower():
        return _not_utf8(source)
    if "Empty CSV file" in text:
        return DataError(f"{source} is empty: it has no header row.")
    if "Expected" in text and "columns" in text:
        return DataError(
            f"{source} has ragged rows: {text.splitlines()[0]}. Every row needs the same "
            f"number of fields as the header (delimiter {delimiter!r}); fix the file or pass "
            "the right delimiter."
        )
    if "conversion error" in text or "CSV conversion" in text:
        where = f" after row {rows}" if rows is not None else ""
        return DataError(
            f"{source}: a column changed type between chunks{where}: {text}. The type is "
            "inferred from the first rows; clean the column or read it as string."
        )
    return DataError(f"Cannot read {source}: {text}")


def read_csv(
    path: str | Path,
    *,
    delimiter: str = ",",
    columns: Sequence[str] | None = None,
    encoding: str = "utf-8",
    as_: Output = "pandas",
) -> Any:
    """Read a CSV file (empty cells and `CSV_NULL_VALUES` are null, in every column).

    Args:
        encoding: The file's text encoding (``latin-1``, ``cp1252``, ...).

    Raises:
        DataError: missing or empty file, wrong delimiter, ragged rows, duplicate columns,
            text that is not valid in `encoding`, or a column whose values change type
            further down the file.
    """
    batches = list(_csv_batches(path, delimiter=delimiter, columns=columns, encoding=encoding))
    if not batches:
        raise DataError(f"CSV file {str(path)!r} has a header but no rows.")
    table = pa.Table.from_batches(batches)
    _record_source("csv", str(path), rows=table.num_rows)
    return _output(table, as_)


# ---------------------------------------------------------------- Parquet
def _parquet_dataset(path: str | Path) -> Any:
    import pyarrow.dataset as ds

    p = _existing(path, "Parquet source")
    if p.is_file():
        with p.open("rb") as handle:
            head = handle.read(4)
            handle.seek(max(p.stat().st_size - 4, 0))
            tail = handle.read(4)
        if head != b"PAR1" or tail != b"PAR1" or p.stat().st_size < 12:
            raise DataError(
                f"{str(p)!r} is not a valid Parquet file: the Parquet magic bytes are "
                f"missing at the {'start' if head != b'PAR1' else 'end'}. The file is "
                "corrupt or truncated; write it again."
            )
    try:
        dataset = ds.dataset(p, format="parquet")
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(
            f"Cannot open {str(p)!r} as Parquet: {exc}. The file is corrupt or truncated."
        ) from exc
    _check_names(dataset.schema.names, f"Parquet source {str(p)!r}")
    return dataset


def _parquet_batches(
    path: str | Path,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    columns: Sequence[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    dataset = _parquet_dataset(path)
    # File by file, row group by row group: the dataset scanner buffers whole fragments
    # ahead, which makes memory grow with the dataset instead of with one batch.
    for file in sorted(dataset.files):
        try:
            reader = pq.ParquetFile(file)
            _check_names(reader.schema_arrow.names, f"Parquet file {file!r}")
            yield from reader.iter_batches(
                batch_size=batch_rows, columns=list(columns) if columns else None
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
            raise DataError(
                f"Cannot read Parquet file {file!r}: {exc}. The file is corrupt or truncated."
            ) from exc


def read_parquet(
    path: str | Path, *, columns: Sequence[str] | None = None, as_: Output = "pandas"
) -> Any:
    """Read a Parquet file or a folder of Parquet files (a dataset).

    Raises:
        DataError: missing, empty, corrupt or truncated files, duplicate columns, or files
            that disagree on a column's type.
    """
    dataset = _parquet_dataset(path)
    try:
        table = dataset.to_table(columns=list(columns) if columns else None)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise DataError(
            f"Cannot read Parquet source {str(path)!r}: {exc}. A file is corrupt or "
            "truncated, or the files disagree on a column's type."
        ) from exc
    _record_source("parquet", str(path), rows=table.num_rows)
    return _output(table, as_)


# ---------------------------------------------------------------- SQL
def _sql_batches(
    url: str,
    query: str,
    *,
    params: Mapping[str, Any] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise DataError(
            f"{redact_url(url)!r} is not a usable SQLAlchemy URL: {redact_text(str(exc))}"
        ) from None
    try:
        with engine.connect() as connection:
            result = connection.execution_options(stream_results=True).execute(
                sa.text(query), dict(params or {})
            )
            names = list(result.keys())
            _check_names(names, "The SQL query")
            while True:
                rows = result.fetchmany(batch_rows)
                if not rows:
                    break
                columns = list(zip(*rows, strict=True))
                yield pa.RecordBatch.from_arrays(
                    [pa.array(list(col)) for col in columns], names=names
                )
    except sa.exc.SQLAlchemyError as exc:
        raise DataError(
            f"The SQL query failed: {exc.__class__.__name__}: {redact_text(str(exc))}"
        ) from exc
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"A column of the SQL result mixes types: {exc}") from exc
    finally:
        engine.dispose()


def read_sql(
    url: str, query: str, *, params: Mapping[str, Any] | None = None, as_: Output = "pandas"
) -> Any:
    """Run a query on a SQLAlchemy URL and return the result.

    Raises:
        DataError: bad URL, failed query or duplicate column names in the result.
    """
    batches = list(_sql_batches(url, query, params=params))
    table = pa.Table.from_batches(batches) if batches else pa.table({})
    _record_source("sql", _safe_url(url), query=query, rows=table.num_rows)
    return _output(table, as_)


def _safe_url(url: str) -> str:
    import sqlalchemy as sa

    try:
        return redact_url(sa.engine.make_url(url).render_as_string(hide_password=False))
    except (sa.exc.ArgumentError, ValueError):
        return "<invalid url>"


# ---------------------------------------------------------------- Delta Lake
def _delta_table(path: str | Path, version: int | None) -> Any:
    try:
        from deltalake import DeltaTable
    except ImportError as exc:  # pragma: no cover - the extra is installed in CI
        raise DataError("Reading Delta tables needs: pip install 'conveyor[delta]'") from exc
    from deltalake.exceptions import DeltaError, TableNotFoundError

    try:
        return DeltaTable(str(path), version=version)
    except TableNotFoundError as exc:
        raise DataError(f"{str(path)!r} is not a Delta table: {exc}") from exc
    except DeltaError as exc:
        raise DataError(
            f"Cannot open Delta table {str(path)!r} at version {version}: {exc}"
        ) from exc


def read_delta(
    path: str | Path,
    *,
    version: int | None = None,
    columns: Sequence[str] | None = None,
    as_: Output = "pandas",
) -> Any:
    """Read a Delta Lake table, at `version` when given (the version read is recorded).

    Raises:
        DataError: not a Delta table, or the version does not exist.
    """
    table = _delta_table(path, version)
    data = table.to_pyarrow_table(columns=list(columns) if columns else None)
    _record_source("delta", str(path), version=table.version(), rows=data.num_rows)
    return _output(data, as_)


def delta_version(path: str | Path, version: int | None = None) -> int:
    """The version a read of `path` (optionally pinned) resolves to."""
    return int(_delta_table(path, version).version())


# ---------------------------------------------------------------- dispatch
def detect_format(path: str | Path) -> str:
    """csv, parquet or delta, from the path (a folder with _delta_log is Delta)."""
    p = Path(path)
    if p.is_dir():
        return "delta" if (p / "_delta_log").is_dir() else "parquet"
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    if suffix in (".parquet", ".pq", ".parq"):
        return "parquet"
    raise DataError(
        f"Cannot tell the format of {str(p)!r} from its name. Use a .csv or .parquet file, "
        "a folder of Parquet files or a Delta table folder, or pass format=."
    )


def iter_batches(
    source: str | Path,
    *,
    format: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    columns: Sequence[str] | None = None,
    delimiter: str = ",",
    version: int | None = None,
    query: str | None = None,
    encoding: str = "utf-8",
) -> Iterator[pa.RecordBatch]:
    """Stream RecordBatches of at most `batch_rows` rows from a file, folder, table or query.

    `source` is a path (CSV, Parquet file or folder, Delta folder) or, with `query`, a
    SQLAlchemy URL.

    Raises:
        DataError: the source cannot be read (see the read_* functions).
    """
    if query is not None:
        yield from _sql_batches(str(source), query, batch_rows=batch_rows)
        return
    kind = format or detect_format(source)
    if kind == "csv":
        yield from _csv_batches(
            source, delimiter=delimiter, batch_rows=batch_rows, columns=columns, encoding=encoding
        )
    elif kind == "parquet":
        yield from _parquet_batches(source, batch_rows=batch_rows, columns=columns)
    elif kind == "delta":
        dataset = _delta_table(source, version).to_pyarrow_dataset()
        yield from dataset.to_batches(
            columns=list(columns) if columns else None, batch_size=batch_rows
        )
    else:
        raise DataError(f"Unknown format {kind!r}. Use csv, parquet or delta.")


def read_table(
    source: str | Path,
    *,
    format: str | None = None,
    delimiter: str = ",",
    version: int | None = None,
    encoding: str = "utf-8",
) -> pa.Table:
    """Read any supported file source completely as an Arrow table."""
    kind = format or detect_format(source)
    if kind == "csv":
        result: pa.Table = read_csv(source, delimiter=delimiter, encoding=encoding, as_="arrow")
    elif kind == "parquet":
        result = read_parquet(source, as_="arrow")
    elif kind == "delta":
        result = read_delta(source, version=version, as_="arrow")
    else:
        raise DataError(f"Unknown format {kind!r}. Use csv, parquet or delta.")
    return result


def to_pandas(table: pa.Table) -> pd.DataFrame:
    return table.to_pandas()


__all__ = [
    "CSV_NULL_VALUES",
    "csv_options",
    "delta_version",
    "detect_format",
    "iter_batches",
    "read_csv",
    "read_delta",
    "read_parquet",
    "read_sql",
    "read_table",
]
