"""DatasetRef: partitions written to the artifact store, read back by reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor.data.partitioned import DatasetRef
from conveyor.exceptions import ArtifactCorruptError, DataError
from conveyor.materializers.base import default_registry
from conveyor.stores.artifacts import open_artifact_store


def frame(rows: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"a": rng.normal(size=rows), "b": rng.integers(0, 5, rows), "c": ["x", "y"] * (rows // 2)}
    )


def test_partitions_hold_every_row_once_in_order(tmp_path: Path) -> None:
    store = open_artifact_store(str(tmp_path / "store"))
    df = frame(1000)
    ref = DatasetRef.write(df, partitions=3, artifact_store=store, name="demo@1")
    assert len(ref) == 3 and ref.row_count == 1000
    assert [p.rows for p in ref.partitions] == [334, 334, 332]
    pd.testing.assert_frame_equal(ref.to_pandas(), df)
    assert list(ref.read_partition(1, ["b"]).columns) == ["b"]
    assert ref.column_names == ["a", "b", "c"]
    assert ref.profile().row_count == 1000


def test_travels_as_a_small_artifact_and_changes_with_the_data(tmp_path: Path) -> None:
    store = open_artifact_store(str(tmp_path / "store"))
    ref = DatasetRef.write(frame(), rows_per_partition=400, artifact_store=store)
    registry = default_registry()
    materializer, data, summary = registry.dump(ref)
    assert len(data) < 1000 and summary["partitions"] == 3 and summary["rows"] == 1000
    loaded = registry.by_name(materializer.name).load(data, summary)
    assert loaded == ref
    other = DatasetRef.write(frame().assign(a=1.0), rows_per_partition=400, artifact_store=store)
    assert other.to_bytes() != ref.to_bytes()
    again = DatasetRef.write(frame(), rows_per_partition=400, artifact_store=store)
    assert again.to_bytes() == ref.to_bytes()  # same rows, same blobs, same ref


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"partitions": 0}, "'partitions' parameter must be an int >= 1. Got 0"),
        ({"rows_per_partition": -5}, "'rows_per_partition' parameter must be an int >= 1"),
        ({"partitions": 2, "rows_per_partition": 5}, "not both"),
    ],
)
def test_bad_partition_counts_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    store = open_artifact_store(str(tmp_path / "store"))
    with pytest.raises(DataError, match=message):
        DatasetRef.write(frame(), artifact_store=store, **kwargs)
    assert not (tmp_path / "store" / "objects").exists()


def test_unknown_column_and_partition_are_named(tmp_path: Path) -> None:
    ref = DatasetRef.write(frame(), partitions=2, artifact_store=open_artifact_store(str(tmp_path)))
    with pytest.raises(DataError, match=r"no column 'bb'\. Did you mean 'b'"):
        ref.read_partition(0, ["bb"])
    with pytest.raises(DataError, match="Partition 5 does not exist; this dataset has 2"):
        ref.read_partition(5)


def test_damaged_partition_is_an_error_not_wrong_rows(tmp_path: Path) -> None:
    store = open_artifact_store(str(tmp_path))
    ref = DatasetRef.write(frame(), partitions=2, artifact_store=store)
    blob = Path(store.uri(ref.partitions[1].content_hash))
    blob.write_bytes(blob.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ArtifactCorruptError, match="corrupt"):
        ref.read_partition(1)


def test_bytes_that_are_not_a_ref_are_refused() -> None:
    with pytest.raises(DataError, match="not a dataset reference"):
        DatasetRef.from_bytes(b'{"partitions": [["../../etc/passwd", 1]], "columns": []}')
