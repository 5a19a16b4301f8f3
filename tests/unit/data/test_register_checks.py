"""`datasets register` refuses what would be a silent loss (issue 12, item 10): an empty
folder, and a folder whose files disagree on a column's type."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.config import Settings
from conveyor.data.datasets import list_datasets, register_dataset
from conveyor.exceptions import DataError
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store


def _register(settings: Settings, name: str, source: object) -> object:
    return register_dataset(
        name,
        source,
        metadata_store=open_metadata_store(settings.db_url),
        artifact_store=open_artifact_store(settings.artifact_url),
    )


def _nothing_registered(settings: Settings) -> None:
    assert list_datasets(metadata_store=open_metadata_store(settings.db_url)) == []


@pytest.mark.parametrize("content", ["none", "hidden-only"])
def test_an_empty_folder_is_refused(tmp_path: Path, settings: Settings, content: str) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    if content == "hidden-only":
        (folder / "_SUCCESS").write_text("")
        pq.write_table(pa.table({"a": [1]}), folder / ".hidden.parquet")
    with pytest.raises(DataError, match="holds no Parquet files: nothing to register"):
        _register(settings, "customers", folder)
    _nothing_registered(settings)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (pa.array([1, 2], pa.int64()), pa.array(["3", "4"], pa.string())),
        (pa.array([1, 2], pa.int64()), pa.array([3.5, 4.0], pa.float64())),
        (pa.array([1, 2], pa.int32()), pa.array([3, 4], pa.int64())),
    ],
)
def test_files_that_disagree_on_a_column_type_are_refused(
    tmp_path: Path, settings: Settings, first: pa.Array, second: pa.Array
) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(pa.table({"id": [1, 2], "amount": first}), folder / "part-0.parquet")
    pq.write_table(pa.table({"id": [3, 4], "amount": second}), folder / "part-1.parquet")
    with pytest.raises(DataError) as caught:
        _register(settings, "sales", folder)
    message = str(caught.value)
    assert "disagree on the type of column 'amount'" in message
    assert f"part-0.parquet has {first.type}" in message
    assert f"part-1.parquet has {second.type}" in message
    _nothing_registered(settings)


def test_files_that_agree_are_registered_whole(tmp_path: Path, settings: Settings) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(pa.table({"id": [1, 2], "v": [0.5, 1.5]}), folder / "part-0.parquet")
    pq.write_table(pa.table({"id": [3], "v": [2.5]}), folder / "part-1.parquet")
    version = _register(settings, "sales", folder)
    assert version.row_count == 3  # type: ignore[attr-defined]
    assert version.columns == {"id": "int64", "v": "double"}  # type: ignore[attr-defined]


def test_a_table_without_columns_is_refused(settings: Settings) -> None:
    with pytest.raises(DataError, match="has no columns"):
        _register(settings, "empty", pa.table({}))
    _nothing_registered(settings)


def test_cli_register_of_an_empty_folder_is_one_line(tmp_path: Path, settings: Settings) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    result = CliRunner().invoke(
        app,
        [
            "--db-url",
            settings.db_url,
            "--artifact-url",
            settings.artifact_url,
            "datasets",
            "register",
            "customers",
            str(folder),
        ],
    )
    err = result.stderr if result.stderr_bytes else result.output
    assert result.exit_code == 1
    assert "holds no Parquet files" in err and "Traceback" not in result.output + err
    assert len(err.strip().splitlines()) == 1
