"""Built-in materializers round-trip their types; users can register their own."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.exceptions import MaterializerError
from conveyor.materializers.base import MaterializerRegistry, default_registry
from conveyor.materializers.builtin import install


def round_trip(value: Any, registry: MaterializerRegistry | None = None) -> tuple[str, Any, dict]:
    registry = registry or default_registry()
    materializer, data, summary = registry.dump(value)
    loaded = registry.by_name(materializer.name).load(data, summary)
    return materializer.name, loaded, summary


@pytest.mark.parametrize(
    "value", [0, 3.5, "text", True, None, [1, "a", None], {"k": [1, 2]}, (1, 2, "x")]
)
def test_json_values_keep_their_type(value: Any) -> None:
    name, loaded, _ = round_trip(value)
    assert name == "json"
    assert loaded == value and type(loaded) is type(value)


def test_numpy_arrays() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    name, loaded, summary = round_trip(array)
    assert name == "numpy" and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, array)
    assert summary["shape"] == [3, 4] and summary["length"] == 3


def test_pandas_frames_and_series_as_parquet() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None]})
    name, loaded, summary = round_trip(frame)
    assert name == "pandas.parquet"
    pd.testing.assert_frame_equal(loaded, frame)
    assert summary["shape"] == [3, 2] and summary["columns"] == ["a", "b"]
    series = pd.Series([1.5, 2.5], name="score")
    _, loaded_series, _ = round_trip(series)
    pd.testing.assert_series_equal(loaded_series, series)


def test_duplicate_column_names_get_a_clear_error() -> None:
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(MaterializerError, match="duplicate column names"):
        default_registry().dump(frame)


def test_arrow_and_polars_tables() -> None:
    table = pa.table({"x": [1, 2], "y": ["a", "b"]})
    name, loaded, _ = round_trip(table)
    assert name == "arrow.parquet" and loaded.equals(table)
    frame = pl.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    name, loaded, _ = round_trip(frame)
    assert name == "polars.parquet" and loaded.equals(frame)


def test_sklearn_estimators_between_steps_use_joblib_and_predict_identically() -> None:
    x, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5, random_state=0))
    model.fit(x, y)
    name, loaded, summary = round_trip(model)
    assert name == "sklearn.joblib"
    assert summary["estimator"].endswith("Pipeline")
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    # The same fitted object gives the same bytes, so its content hash is stable.
    assert default_registry().dump(model)[1] == default_registry().dump(model)[1]


@pytest.mark.slow
def test_storing_and_loading_an_estimator_does_not_import_skops() -> None:
    # importing skops.io imports every scikit-learn package: seconds on each `conveyor run`
    code = (
        "import sys\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from conveyor.materializers.base import default_registry\n"
        "registry = default_registry()\n"
        "m, data, summary = registry.dump(LogisticRegression().fit([[0], [1]], [0, 1]))\n"
        "registry.by_name(m.name).load(data, summary)\n"
        "print(sorted(n for n in ('skops', 'sklearn.ensemble') if n in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert done.stdout.strip() == "[]"


def test_sklearn_pipeline_through_skops_predicts_identically() -> None:
    # Artifacts written with skops (before joblib became the default) still load by name.
    x, y = load_iris(return_X_y=True)
    model = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5, random_state=0))
    model.fit(x, y)
    skops_m = default_registry().by_name("sklearn.skops")
    data = skops_m.save(model)
    summary = skops_m.summary(model, data)
    assert summary["estimator"].endswith("Pipeline")
    loaded = skops_m.load(data, summary)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def _halve(X: Any) -> Any:
    return X / 2


def test_skops_artifact_with_unrecorded_types_is_refused() -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    materializer = default_registry().by_name("sklearn.skops")
    x, y = load_iris(return_X_y=True)
    model = make_pipeline(FunctionTransformer(_halve), RandomForestClassifier(n_estimators=2))
    data = materializer.save(model.fit(x, y))
    summary = materializer.summary(model, data)
    assert f"{__name__}._halve" in summary["skops_trusted"]
    loaded = materializer.load(data, summary)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    with pytest.raises(MaterializerError, match="Refusing to load"):
        materializer.load(data, {**summary, "skops_trusted": []})


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value


def test_unknown_types_fall_back_to_cloudpickle_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="conveyor.materializers"):
        name, loaded, _ = round_trip(Opaque(5))
    assert name == "cloudpickle" and loaded.value == 5
    assert "register_materializer" in caplog.text and "Opaque" in caplog.text


class Celsius(float):
    pass


class CelsiusMaterializer:
    name = "celsius"
    version = "2"

    def save(self, value: Any) -> bytes:
        return f"{float(value)}C".encode()

    def load(self, data: bytes, summary: dict[str, Any]) -> Any:
        return Celsius(float(data.decode().rstrip("C")))

    def summary(self, value: Any, data: bytes) -> dict[str, Any]:
        return {"degrees": float(value)}


def test_user_registered_materializer_wins_over_builtins() -> None:
    registry = MaterializerRegistry()
    install(registry)
    registry.register(Celsius, CelsiusMaterializer())
    name, loaded, summary = round_trip(Celsius(21.5), registry)
    assert name == "celsius" and isinstance(loaded, Celsius) and loaded == 21.5
    assert summary == {"degrees": 21.5}


def test_loading_with_an_unknown_materializer_names_it() -> None:
    with pytest.raises(MaterializerError, match="No materializer named 'nope'"):
        default_registry().by_name("nope")


def test_self_serializing_refuses_classes_outside_conveyor() -> None:
    registry = default_registry()
    with pytest.raises(MaterializerError, match="must be conveyor classes"):
        registry.by_name("conveyor.object").load(b"", {"class": "os:system"})


def test_a_series_is_parquet_not_pickle() -> None:
    series = pd.Series([1, 2, 3], name="y", index=[7, 8, 9])
    name, loaded, _ = round_trip(series)
    assert name == "pandas.parquet"
    pd.testing.assert_series_equal(loaded, series)


def test_a_dict_of_frames_is_stored_without_pickle(caplog: pytest.LogCaptureFixture) -> None:
    frame = pd.DataFrame({"a": np.arange(4.0), "b": list("wxyz")}, index=[3, 1, 2, 0])
    parts = {
        "X_train": frame,
        "X_test": frame.iloc[:2],
        "y_train": pd.Series([0, 1, 0, 1], name="target"),
        "y_test": pd.Series([1, 0], name="target"),
    }
    with caplog.at_level(logging.WARNING, logger="conveyor.materializers"):
        name, loaded, summary = round_trip(parts)
    assert name == "conveyor.container" and caplog.text == ""
    assert list(loaded) == list(parts)
    pd.testing.assert_frame_equal(loaded["X_train"], parts["X_train"])
    pd.testing.assert_frame_equal(loaded["X_test"], parts["X_test"])
    pd.testing.assert_series_equal(loaded["y_test"], parts["y_test"])
    assert summary["python_type"] == "dict" and summary["length"] == 4
    assert [m["key"] for m in summary["members"]] == list(parts)
    assert summary["members"][0]["shape"] == [4, 2]


def test_tuples_lists_and_nesting_keep_their_shape() -> None:
    value = (np.arange(3), {"inner": [np.ones(2), 5, "x"], "n": None})
    name, loaded, summary = round_trip(value)
    assert name == "conveyor.container" and summary["length"] == 2
    assert type(loaded) is tuple and type(loaded[1]["inner"]) is list
    np.testing.assert_array_equal(loaded[0], value[0])
    np.testing.assert_array_equal(loaded[1]["inner"][0], np.ones(2))
    assert loaded[1]["inner"][1:] == [5, "x"] and loaded[1]["n"] is None


@pytest.mark.parametrize(
    "value",
    [{"a": 1, "b": [1, 2]}, (1, "x"), [], {}],
)
def test_plain_containers_stay_json(value: Any) -> None:
    assert round_trip(value)[0] == "json"


@pytest.mark.parametrize("value", [{1: np.arange(2)}, {"a": np.arange(2), "b": Opaque(1)}])
def test_containers_with_unsafe_members_or_keys_are_not_containers(value: Any) -> None:
    assert default_registry().for_value(value).name == "cloudpickle"


def test_a_container_never_loads_a_pickled_member() -> None:
    from conveyor.materializers.containers import MAGIC

    pickled = b"\x80\x04K\x01."
    header = b'{"kind":"list","items":[{"materializer":"cloudpickle","size":5,"summary":{}}]}'
    forged = MAGIC + len(header).to_bytes(8, "big") + header + pickled
    with pytest.raises(MaterializerError, match="Refusing to load a container member"):
        default_registry().by_name("conveyor.container").load(forged, {})


def test_pandas_members_are_pickled_but_load_only_pandas_constructors() -> None:
    import pickle

    from conveyor.materializers.containers import MAGIC, PANDAS_PICKLE

    frame = pd.DataFrame({"a": [1.0, 2.0], "t": pd.to_datetime(["2020-01-01", "2021-01-02"])})
    _, loaded, summary = round_trip({"frame": frame, "y": pd.Series([1, 2], name="y")})
    assert [m["materializer"] for m in summary["members"]] == [PANDAS_PICKLE, PANDAS_PICKLE]
    pd.testing.assert_frame_equal(loaded["frame"], frame)
    # A frame holding objects of other classes is not pickled: Parquet cannot store it
    # either, so the whole dict takes the cloudpickle fallback, as before containers.
    odd = pd.DataFrame({"a": [Opaque(1)]})
    assert round_trip({"odd": odd})[0] == "cloudpickle"
    evil = pickle.dumps(subprocess.run)  # names a callable outside the allowed constructors
    header = b'{"kind":"list","items":[{"materializer":"%s","size":%d,"summary":{}}]}' % (
        PANDAS_PICKLE.encode(),
        len(evil),
    )
    forged = MAGIC + len(header).to_bytes(8, "big") + header + evil
    with pytest.raises(MaterializerError, match=r"Refusing to unpickle subprocess\.run"):
        default_registry().by_name("conveyor.container").load(forged, {})
