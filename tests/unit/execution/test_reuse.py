"""A value identical to one stored before in this process is not serialized again."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conveyor.execution import reuse
from conveyor.execution.worker import store_value
from conveyor.materializers.base import MaterializerRegistry, default_registry
from conveyor.materializers.builtin import PandasMaterializer
from conveyor.stores.artifacts import ArtifactStore, open_artifact_store


class CountingParquet(PandasMaterializer):
    """The built-in Parquet materializer, counting how often it really writes."""

    name = "counting.parquet"

    def __init__(self) -> None:
        self.saves = 0

    def save(self, value: Any) -> bytes:
        self.saves += 1
        return super().save(value)


@pytest.fixture(autouse=True)
def _empty_memo() -> Iterator[None]:
    reuse.forget_all()
    yield
    reuse.forget_all()


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return open_artifact_store(str(tmp_path / "artifacts"))


@pytest.fixture
def counting() -> tuple[MaterializerRegistry, CountingParquet]:
    registry = MaterializerRegistry()
    materializer = CountingParquet()
    registry.register(pd.DataFrame, materializer)
    return registry, materializer


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=500), "b": np.arange(500), "c": ["x"] * 500})


def test_an_identical_frame_is_recorded_without_writing_it_again(
    store: ArtifactStore, counting: tuple[MaterializerRegistry, CountingParquet]
) -> None:
    registry, materializer = counting
    first = store_value(store, registry, "out", _frame(), "output")
    again = store_value(store, registry, "out", _frame(), "output")  # equal, not the same object
    assert materializer.saves == 1
    assert (again.content_hash, again.size, again.summary) == (
        first.content_hash,
        first.size,
        first.summary,
    )
    assert again.summary is not first.summary  # a copy: changing one changes nothing else
    pd.testing.assert_frame_equal(
        materializer.load(store.get(again.content_hash), again.summary), _frame()
    )


def _set(frame: pd.DataFrame, row: int, col: int, value: Any) -> pd.DataFrame:
    frame.iloc[row, col] = value
    return frame


def _with_attrs(frame: pd.DataFrame, **attrs: Any) -> pd.DataFrame:
    frame.attrs.update(attrs)
    return frame


@pytest.mark.parametrize(
    "change",
    [
        lambda f: _set(f, 3, 0, -f.iloc[3, 0]),
        lambda f: _set(f, 0, 0, np.nan),
        lambda f: f.rename(columns={"a": "z"}),
        lambda f: f.set_index(f.index + 1),
        lambda f: _with_attrs(f, source="survey"),
        lambda f: f.astype({"b": "int32"}),
        lambda f: f.astype({"c": "category"}),
    ],
    ids=["value", "nan", "column-name", "index", "attrs", "dtype", "categorical"],
)
def test_any_difference_is_written_as_its_own_artifact(
    store: ArtifactStore,
    counting: tuple[MaterializerRegistry, CountingParquet],
    change: Any,
) -> None:
    registry, materializer = counting
    first = store_value(store, registry, "out", _frame(), "output")
    changed = change(_frame())
    second = store_value(store, registry, "out", changed, "output")
    assert materializer.saves == 2
    assert second.content_hash != first.content_hash
    pd.testing.assert_frame_equal(
        materializer.load(store.get(second.content_hash), second.summary), changed
    )


def test_a_blob_gone_from_the_store_is_written_again(
    store: ArtifactStore, counting: tuple[MaterializerRegistry, CountingParquet]
) -> None:
    registry, materializer = counting
    first = store_value(store, registry, "out", _frame(), "output")
    os.remove(first.uri)  # what garbage collection of the store does
    again = store_value(store, registry, "out", _frame(), "output")
    assert materializer.saves == 2
    assert again.content_hash == first.content_hash and store.exists(again.content_hash)


def test_another_store_gets_its_own_copy(
    tmp_path: Path, counting: tuple[MaterializerRegistry, CountingParquet]
) -> None:
    registry, materializer = counting
    one = open_artifact_store(str(tmp_path / "one"))
    two = open_artifact_store(str(tmp_path / "two"))
    store_value(one, registry, "out", _frame(), "output")
    stored = store_value(two, registry, "out", _frame(), "output")
    assert materializer.saves == 2 and two.exists(stored.content_hash)


def test_the_built_in_frame_and_container_formats_take_part_and_estimators_do_not(
    store: ArtifactStore,
) -> None:
    registry = default_registry()
    frame = _frame()
    parts = {"train": frame.iloc[:400], "test": frame.iloc[400:]}
    for value in (frame, parts):
        assert reuse.fingerprint(registry.for_value(value), value) is not None
        first = store_value(store, registry, "out", value, "output")
        assert store_value(store, registry, "out", value, "output") == first
    assert reuse.fingerprint(registry.for_value(1.5), 1.5) is None


def test_the_memo_is_bounded() -> None:
    for i in range(reuse.MAX_ENTRIES + 10):
        reuse.remember(("m", "1", str(i)), "h", 1, {})
    assert reuse.recall(("m", "1", "0")) is None
    assert reuse.recall(("m", "1", str(reuse.MAX_ENTRIES + 9))) is not None
