"""`conveyor artifacts get`: a stored artifact to a file (its bytes, or a table as
Parquet or CSV)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli import common

TABLE_SUFFIXES = (".parquet", ".csv")


def write_atomic(target: Path, data: bytes) -> None:
    """Write `data` to `target` through a temporary file in the same folder, so a failed
    write never leaves a partial file under the real name."""
    import os
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def table_bytes(data: bytes, suffix: str) -> bytes:
    """Parquet bytes of a stored table re-encoded for `suffix` (.parquet or .csv)."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(data))
    buffer = io.BytesIO()
    if suffix == ".parquet":
        pq.write_table(table, buffer)
    else:
        keep = [n for n in table.column_names if not n.startswith("__index_level_")]
        pcsv.write_csv(table.select(keep), buffer)
    return buffer.getvalue()


def artifacts_get(
    ctx: typer.Context,
    artifact_id: Annotated[str, typer.Argument(help="Artifact id (or a unique prefix).")],
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="File to write. .parquet or .csv writes a table in that format; any other "
            "name receives the stored bytes.",
        ),
    ],
) -> None:
    """Save an artifact to a file: its stored bytes, or a table as Parquet or CSV."""
    with common.errors_to_exit():
        row = common.metadata_store(ctx).get_artifact(artifact_id)
        data = common.artifact_store(ctx).get(row["content_hash"])
    suffix = output.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        if not str(row["materializer"]).endswith(".parquet"):
            common.fail(
                f"Artifact {row['id']} ({row['name']}) is a {row['type_name']}, not a table, "
                f"so it cannot be written as {suffix}. Choose another file name to save its "
                f"stored bytes ({row['materializer']})."
            )
        data = table_bytes(data, suffix)
    try:
        write_atomic(output, data)
    except OSError as exc:
        common.fail(f"Cannot write {output}: {exc.strerror or exc}.")
    kind = suffix[1:] if suffix in TABLE_SUFFIXES else row["materializer"]
    common.err_console().print(
        f"Wrote {row['name']} ({kind}, {len(data)} bytes) to {output}", highlight=False
    )


def register(app: typer.Typer) -> None:
    """Add `conveyor artifacts get` to the `artifacts` group made by the runs commands."""
    from conveyor.cli.runs import artifacts_app

    artifacts_app.command("get")(artifacts_get)
