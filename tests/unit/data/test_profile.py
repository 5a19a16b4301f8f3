"""Profile: statistics, mergeability, quantile accuracy, serialization, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from conveyor.data.profile import Profile
from conveyor.exceptions import DataError


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 600_000  # large enough that chunks go through the sampled sketch path
    x = rng.normal(10, 3, n)
    x[::1000] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "i": rng.integers(0, 100, n),
            "c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
            "flag": rng.random(n) < 0.25,
            "t": pd.date_range("2024-01-01", periods=n, freq="min"),
        }
    )


def test_exact_statistics_match_pandas(frame: pd.DataFrame) -> None:
    profile = Profile.from_frame(frame)
    x = profile["x"]
    assert profile.row_count == len(frame)
    assert x.kind == "numeric"
    assert x.null_count == frame["x"].isna().sum()
    assert x.mean == pytest.approx(frame["x"].mean(), rel=1e-9)
    assert x.std == pytest.approx(frame["x"].std(), rel=1e-9)
    assert x.min == frame["x"].min() and x.max == frame["x"].max()
    assert profile["c"].kind == "categorical"
    assert profile["c"].frequencies() == frame["c"].value_counts().to_dict()
    assert profile["flag"].kind == "boolean"
    assert profile["flag"].true_count == frame["flag"].sum()
    assert profile["t"].kind == "datetime"
    assert profile["t"].min == pytest.approx(frame["t"].min().timestamp())


def test_quantiles_within_stated_error(frame: pd.DataFrame) -> None:
    column = Profile.from_frame(frame)["x"]
    values = np.sort(frame["x"].dropna().to_numpy())
    for q, estimate in zip(
        [0.01, 0.1, 0.5, 0.9, 0.99], column.quantiles([0.01, 0.1, 0.5, 0.9, 0.99]), strict=True
    ):
        rank = np.searchsorted(values, estimate) / len(values)
        assert abs(rank - q) <= column.quantile_error
    pmf = column.pmf([7.0, 10.0, 13.0])
    assert sum(pmf) == pytest.approx(1.0)
    true = np.histogram(values, [-np.inf, 7, 10, 13, np.inf])[0] / len(values)
    assert np.abs(np.array(pmf) - true).max() <= column.quantile_error


def test_profiles_of_parts_merge_into_profile_of_whole(frame: pd.DataFrame) -> None:
    whole = Profile.from_frame(frame)
    parts = [Profile.from_frame(frame.iloc[i : i + 150_000]) for i in range(0, len(frame), 150_000)]
    merged = Profile.merge_all(parts)
    streamed = Profile.from_batches(
        pa.Table.from_pandas(frame, preserve_index=False).to_batches(max_chunksize=100_000)
    )
    for candidate in (merged, streamed, parts[0].merge(Profile.merge_all(parts[1:]))):
        assert candidate.row_count == whole.row_count
        for name in ("x", "i"):
            a, b = candidate[name], whole[name]
            assert (a.count, a.null_count, a.min, a.max) == (b.count, b.null_count, b.min, b.max)
            assert a.mean == pytest.approx(b.mean, rel=1e-9)
            assert a.std == pytest.approx(b.std, rel=1e-9)
        values = np.sort(frame["x"].dropna().to_numpy())
        for q in (0.05, 0.5, 0.95):
            rank = np.searchsorted(values, candidate["x"].quantile(q)) / len(values)
            assert abs(rank - q) <= candidate["x"].quantile_error
        assert candidate["c"].frequencies() == whole["c"].frequencies()


def test_serialization_is_compact_and_lossless(frame: pd.DataFrame) -> None:
    profile = Profile.from_frame(frame)
    data = profile.to_bytes()
    assert len(data) < 64_000
    restored = Profile.from_bytes(data)
    assert restored.to_dict() == profile.to_dict()
    assert restored.merge(restored)["x"].count == 2 * profile["x"].count
    with pytest.raises(DataError, match="not a serialized"):
        Profile.from_bytes(b"nope")


def test_nan_inf_and_nulls_counted_separately() -> None:
    table = pa.table({"v": pa.array([1.0, None, float("nan"), float("inf"), -float("inf"), 3.0])})
    column = Profile.from_frame(table)["v"]
    assert (column.null_count, column.nan_count, column.inf_count) == (1, 1, 2)
    assert (column.min, column.max, column.mean) == (1.0, 3.0, 2.0)


def test_type_change_between_chunks_is_an_error() -> None:
    batches = [pa.record_batch({"a": [1, 2]}), pa.record_batch({"a": ["x", "y"]})]
    with pytest.raises(DataError, match="changed type between chunks"):
        Profile.from_batches(batches)


def test_int_widening_to_float_is_fine() -> None:
    profile = Profile.from_batches([pa.record_batch({"a": [1, 2]}), pa.record_batch({"a": [0.5]})])
    assert profile["a"].dtype == "double" and profile["a"].count == 3


def test_duplicate_column_names_rejected() -> None:
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(DataError, match="Duplicate column names: 'a'"):
        Profile.from_frame(frame)


def test_high_cardinality_strings_are_text_with_bounded_error() -> None:
    values = [f"id-{i}" for i in range(5000)] + ["hot"] * 5000
    column = Profile.from_frame(pa.table({"s": values}))["s"]
    assert column.kind == "text"
    assert column.top_k(1)[0][0] == "hot"
    assert abs(column.frequencies()["hot"] - 5000) <= column.frequency_error
