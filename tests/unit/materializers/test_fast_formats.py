"""The cheaper byte formats of frames and estimators still load equal objects."""

from __future__ import annotations

import io
import pickle

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from conveyor.materializers import containers
from conveyor.materializers.base import default_registry


def _parquet_columns(data: bytes) -> dict[str, tuple[str, ...]]:
    meta = pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0)
    return {
        meta.column(i).path_in_schema: (meta.column(i).encodings, meta.column(i).statistics)
        for i in range(meta.num_columns)
    }


def test_frames_are_parquet_without_statistics_and_float_dictionaries() -> None:
    frame = pd.DataFrame(
        {
            "x": np.linspace(0.0, 1.0, 50),
            "label": pd.Categorical(["a", "b"] * 25),
            "n": np.arange(50) % 3,
            "when": pd.date_range("2024-01-01", periods=50, tz="UTC"),
            "name": ["p", "q", None, "r", "s"] * 10,
        },
        index=pd.Index(np.arange(50)[::-1], name="row"),
    )
    materializer, data, _ = default_registry().dump(frame)
    assert materializer.name == "pandas.parquet"
    loaded = materializer.load(data, {})
    pd.testing.assert_frame_equal(loaded, frame)
    columns = _parquet_columns(data)
    assert all(stats is None for _, stats in columns.values())
    assert not any("DICTIONARY" in e for e in columns["x"][0])
    assert any("DICTIONARY" in e for e in columns["n"][0])
    assert any("DICTIONARY" in e for e in columns["name"][0])


def test_frame_attrs_and_series_still_round_trip() -> None:
    frame = pd.DataFrame({"a": [1.5, 2.5]})
    frame.attrs = {"source": "sensor-7"}
    registry = default_registry()
    materializer, data, summary = registry.dump(frame)
    loaded = materializer.load(data, summary)
    pd.testing.assert_frame_equal(loaded, frame)
    assert loaded.attrs == {"source": "sensor-7"}
    series = pd.Series([0.1, 0.2, 0.3], name="y", index=[5, 6, 7])
    materializer, data, summary = registry.dump(series)
    pd.testing.assert_series_equal(materializer.load(data, summary), series)
    assert summary["dtypes"] == {"y": "float64"}


def test_frame_summary_lists_columns_and_dtypes() -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.0], "s": ["x", "y"]})
    _, _, summary = default_registry().dump(frame)
    assert summary["columns"] == ["a", "b", "s"]
    assert summary["dtypes"] == {"a": "int64", "b": "float64", "s": str(frame["s"].dtype)}


def test_estimators_are_a_pickle_and_bytes_from_joblib_dump_still_load() -> None:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    registry = default_registry()
    materializer, data, summary = registry.dump(model)
    assert materializer.name == "sklearn.joblib"
    assert data.startswith(b"\x80\x05")  # pickle protocol 5
    np.testing.assert_array_equal(materializer.load(data, summary).predict(X), model.predict(X))
    older = io.BytesIO()
    joblib.dump(model, older)  # what earlier releases wrote
    restored = materializer.load(older.getvalue(), summary)
    np.testing.assert_array_equal(restored.coef_, model.coef_)


def test_a_pickled_member_is_checked_once_per_distinct_bytes() -> None:
    frame = pd.DataFrame({"a": np.arange(5.0)})
    pickled = pickle.dumps(frame, protocol=5)
    assert containers._loads_back(pickled)
    assert containers._loads_back(pickled)
    digests = set(containers._LOADED)
    # Bytes that name a callable outside the allowed constructors are refused, every time,
    # and never remembered as accepted.
    evil = pickle.dumps(pa.BufferReader)
    assert not containers._loads_back(evil)
    assert not containers._loads_back(evil)
    assert set(containers._LOADED) == digests


def test_dict_of_frames_summary_keeps_member_shapes() -> None:
    parts = {"X": pd.DataFrame({"a": [1.0, 2.0, 3.0]}), "y": pd.Series([0, 1, 0], name="t")}
    materializer, data, summary = default_registry().dump(parts)
    assert materializer.name == "conveyor.container"
    assert [(m["key"], m["python_type"], m["shape"], m["length"]) for m in summary["members"]] == [
        ("X", "DataFrame", [3, 1], 3),
        ("y", "Series", [3], 3),
    ]
    loaded = materializer.load(data, summary)
    pd.testing.assert_frame_equal(loaded["X"], parts["X"])
    pd.testing.assert_series_equal(loaded["y"], parts["y"])
