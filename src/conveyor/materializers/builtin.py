"""Built-in materializers: JSON, numpy, tables (Parquet), scikit-learn, cloudpickle."""

from __future__ import annotations

import functools
import io
import json
import logging
import math
import pickle
from collections.abc import Collection
from typing import Any

from conveyor._internal.lazy import import_skops_io
from conveyor.exceptions import ConveyorError, MaterializerError
from conveyor.materializers.base import MaterializerRegistry, qualified_name

logger = logging.getLogger("conveyor.materializers")

_JSON_SCALARS = (bool, int, float, str, type(None))


def _json_safe(value: Any, depth: int = 0) -> bool:
    if depth > 50:
        return False
    kind = type(value)
    if kind in _JSON_SCALARS:
        return True
    if kind is list:
        return all(_json_safe(v, depth + 1) for v in value)
    if kind is dict:
        return all(type(k) is str and _json_safe(v, depth + 1) for k, v in value.items())
    return False


class JsonMaterializer:
    name = "json"
    version = "1"

    def accepts(self, value: Any) -> bool:
        if type(value) is tuple:
            return all(_json_safe(v) for v in value)
        return _json_safe(value)

    def save(self, value: Any) -> bytes:
        payload = list(value) if type(value) is tuple else value
        return json.dumps(payload, separators=(",", ":"), allow_nan=True).encode()

    def load(self, data: bytes, summary: dict[str, Any]) -> Any:
        value = json.loads(data)
        return tuple(value) if summary.get("python_type") == "tuple" else value

    def summary(self, value: Any, data: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {"python_type": type(value).__name__}
        if isinstance(value, (list, tuple, dict)):
            out["length"] = len(value)
        elif (isinstance(value, float) and not math.isfinite(value)) or isinstance(
            value, (int, float, bool)
        ):
            out["value"] = value
        elif isinstance(value, str):
            out["length"] = len(value)
        return out


class NumpyMaterializer:
    name = "numpy"
    version = "1"

    def accepts(self, value: Any) -> bool:
        return bool(value.dtype != object)

    def save(self, value: Any) -> bytes:
        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return buffer.getvalue()

    def load(self, data: bytes, summary: dict[str, Any]) -> Any:
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)

    def summary(self, value: Any, data: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {"shape": list(value.shape), "dtype": str(value.dtype)}
        if value.ndim:
            out["length"] = len(value)
        return out


@functools.lru_cache(maxsize=256)
def _dtype_name(dtype: Any) -> str:
    # str() of a numpy dtype runs Python code each time; a frame repeats a few dtypes.
    return str(dtype)


class PandasMaterializer:
    name = "pandas.parquet"
    version = "1"
    # Writing Parquet costs several times hashing the frame: an identical frame stored
    # before in this process is not written again (conveyor.execution.reuse).
    reuse_identical = True

    def save(self, value: Any) -> bytes:
        import pandas as pd

        frame = value.to_frame() if isinstance(value, pd.Series) else value
        if frame.columns.duplicated().any():
            raise MaterializerError(
                "A DataFrame with duplicate column names cannot be stored as Parquet: "
                + ", ".join(map(str, frame.columns[frame.columns.duplicated()]))
                + ". Rename the columns."
            )
        # Statistics serve predicate pushdown, which nothing reading an artifact does, and a
        # dictionary rarely pays for float columns (distinct values: pyarrow builds it, then
        # falls back to plain pages); both cost more than the rest of the write (issue 17).
        if frame.attrs:  # pandas keeps attrs in the file's metadata: let it write them
            buffer = io.BytesIO()
            frame.to_parquet(buffer, engine="pyarrow", write_statistics=False)
            return buffer.getvalue()
        import pyarrow as pa
        import pyarrow.parquet as pq

        # What DataFrame.to_parquet does for a frame without attrs, minus its engine lookup.
        table = pa.Table.from_pandas(frame)
        sink = pa.BufferOutputStream()
        pq.write_table(
            table,
            sink,
            compression="snappy",
            write_statistics=False,
            use_dictionary=[f.name for f in table.schema if not pa.types.is_floating(f.type)],
        )
        return bytes(sink.getvalue())

    def load(self, data: bytes, summary: dict[str, Any]) -> Any:
        import pandas as pd

        frame = pd.read_parquet(io.BytesIO(data), engine="pyarrow")
        if summary.get("python_type") == "Series":
            return frame.iloc[:, 0]
        return frame

    def summary(self, value: Any, data: bytes) -> dict[str, Any]:
        import pandas as pd

        if isinstance(value, pd.Series):
            return {
                "python_type": "Series",
                "shape": [len(value)],
                "length": len(value),
                "dtypes": {str(value.name): str(value.dtype)},
            }
        columns = [str(c) for c in value.columns.tolist()[:200]]
        dtypes = value.dtypes.tolist()[:200]
        return {
            "python_type": "DataFrame",
            "shape": list(value.shape),
            "length": len(value),
            "columns": columns,
            "dtypes": dict(zip(columns, map(_dtype_name, dtypes), strict=True)),
        }


class ArrowMaterializer:
    name = "arrow.parquet"
    version = "1"

    def save(self, value: Any) -> bytes:
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(value, buffer)
        return buffer.getvalue()

    def load(self, data: bytes, summary: dict[str, Any]) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pq.read_table(pa.BufferReader(data))

    def summary(self, value: Any, data: bytes) -> dict[str, Any]:
        return {
            "shape": [value.num_rows, value.num_columns],
            "length": value.num_rows,
            "columns": value.column_names[:200],
            "dtypes": {f.name: str(f.type) for f in list(value.schema)[:200]},
        }


class PolarsMaterializer:
    name = "polars.parquet"
    version = "1"

    def save(self, value: Any) -> bytes:
        buffer = io.BytesIO()
        value.write_parquet(buffer)
        return buffer.getvalue()

    def load(self, data: bytes, summary: dict[str, Any]) -> Any:
        import polars as pl

        return pl.read_parquet(io.BytesIO(data))

    def summary(self, value: Any, data: bytes) -> dict[str, Any]:
        return {
            "shape": list(value.shape),
            "length": value.height,
            "columns": value.columns[:200],
            "dtypes": {c: str(t) for c, t in list(value.schema.items())[:200]},
        }


def load_skops(
    data: bytes,
    trusted: Collection[str] = (),
    error: type[ConveyorError] = MaterializerError,
    what: str = "this scikit-learn object",
) -> tuple[Any, list[str]]:
    """Load skops bytes, trusting only the fixed allow-list and `trusted`.

    `trusted` comes from a database row (the types recorded when conveyor wrote the
    bytes from a live object) or from an explicit opt-in, never from the bytes.

    Returns:
        The object and the types beyond skops' defaults it needed (all verified).

    Raises:
        `error`: the bytes name a type that is neither allowed nor trusted (named in the
            message with the opt-in).
    """
    import_skops_io()  # not torch: see the helper
    import skops.io

    from conveyor.materializers.trust import refusal_message, refused

    try:
        found = list(skops.io.get_untrusted_types(data=data))
    except Exception as exc:
        raise error(f"These bytes are not a skops file: {type(exc).__name__}: {exc}.") from exc
    unknown = refused(found, trusted)
    if unknown:
        raise error(refusal_message(what, unknown))
    try:
        return skops.io.loads(data, trusted=sorted(found) or None), sorted(found)
    except Exception as exc:
        raise error(f"Cannot load {what}: {type(exc).__name__}: {exc}.") from exc


class JoblibMaterializer:
    """scikit-learn estimators passed between steps: a pickle, loaded with ``joblib.load``.

    Bytes written by ``joblib.dump`` (earlier releases) load the same way.

    Loads only bytes of our own artifact store: their sha256 is recorded in the artifact's
    database row and checked on every read, so nothing under the artifact folder alone
    chooses what runs (the database row does, as for every materializer). skops is kept
    for files from outside (registered models go through the flavors, which use skops):
    importing ``skops.io`` imports every scikit-learn package, seconds per process.
    """

    name = "sklearn.joblib"
    version = "1"

    def save(self, value: Any) -> bytes:
        # A plain pickle (protocol 5) is what joblib.load reads too, in a tenth of the time
        # joblib.dump takes for an in-memory buffer.
        return pickle.dumps(value, protocol=5)

    def load(self, data: bytes, summary: dict[str, Any]) -> Any:
        import joblib

        return joblib.load(io.BytesIO(data))

    def summary(self, value: Any, data: bytes) -> dict[str, Any]:
        return {"estimator": qualified_name(type(value))}


class SklearnMaterializer:
    """scikit-learn estimators through skops (no arbitrary code on load); joblib when skops
    cannot represent the estimator."""

    name = "sklearn.skops"
    version = "1"
    fallback = JoblibMaterializer()

    def save(self, value: Any) -> bytes:
        import_skops_io()  # not torch: see the helper
        import skops.io

        return bytes(skops.io.dumps(value))

    def load(self, data: bytes, summary: dict[str, Any]) -> Any:
        # The summary is the artifact's database row, written when these bytes were made.
        return load_skops(data, summary.get("skops_trusted", []))[0]

    def summary(self, value: Any, data: bytes) -> dict[str, Any]:
        import_skops_io()  # not torch: see the helper
        import skops.io

        return {
            "estimator": qualified_name(type(value)),
            "skops_trusted": sorted(skops.io.get_untrusted_types(data=data)),
        }


class CloudpickleMaterializer:
    name = "cloudpickle"
    version = "1"

    def save(self, value: Any) -> bytes:
        import cloudpickle

        logger.warning(
            "No materializer for %s: storing it with cloudpickle, which only loads with the "
            "same library versions. Register one with conveyor.register_materializer.",
            qualified_name(type(value)),
        )
        try:
            return bytes(cloudpickle.dumps(value))
        except Exception as exc:
            raise MaterializerError(
                f"Values of type {qualified_name(type(value))} cannot be stored: {exc}. "
                "Register a materializer for this type with conveyor.register_materializer."
            ) from exc

    def load(self, data: bytes, summary: dict[str, Any]) -> Any:
        import cloudpickle

        return cloudpickle.loads(data)

    def summary(self, value: Any, data: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {}
        try:
            out["length"] = len(value)
        except TypeError:
            pass
        return out


class SelfSerializingMaterializer:
    """Values of conveyor's own classes that serialize themselves.

    A class opts in with ``__conveyor_artifact__ = True``, ``to_bytes(self) -> bytes`` and
    a classmethod ``from_bytes(cls, data) -> instance`` (Profile, Schema, Model, ...), or
    ``from_artifact(cls, data, summary)`` when loading needs the recorded summary. On
    load the class is imported by name, which is only allowed inside the ``conveyor``
    package: loading never imports arbitrary modules named by stored data.
    """

    name = "conveyor.object"
    version = "1"

    def save(self, value: Any) -> bytes:
        return bytes(value.to_bytes())

    def load(self, data: bytes, summary: dict[str, Any]) -> Any:
        import importlib

        module, _, qualname = str(summary.get("class", "")).rpartition(":")
        if not (module == "conveyor" or module.startswith("conveyor.")):
            raise MaterializerError(
                f"Refusing to load class {summary.get('class')!r}: self-serializing "
                "artifacts must be conveyor classes."
            )
        cls: Any = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        # A class that needs more than its bytes to load safely (a Model: the types its
        # bytes may name) reads it from the summary, i.e. from the artifact's database row.
        from_artifact = getattr(cls, "from_artifact", None)
        if callable(from_artifact):
            return from_artifact(data, summary)
        return cls.from_bytes(data)

    def summary(self, value: Any, data: bytes) -> dict[str, Any]:
        cls = type(value)
        out: dict[str, Any] = {"class": f"{cls.__module__}:{cls.__qualname__}"}
        describe = getattr(value, "artifact_summary", None)
        if callable(describe):
            out.update(describe())
        return out


def install(registry: MaterializerRegistry) -> None:
    json_m = JsonMaterializer()
    for cls in (bool, int, float, str, type(None), list, dict, tuple):
        registry.register(cls, json_m)
    registry.register("numpy.ndarray", NumpyMaterializer())
    pandas_m = PandasMaterializer()
    registry.register("pandas.DataFrame", pandas_m)
    registry.register("pandas.core.frame.DataFrame", pandas_m)
    registry.register("pandas.core.series.Series", pandas_m)
    registry.register("pandas.Series", pandas_m)  # its __module__ in pandas >= 2.2
    registry.register("pyarrow.lib.Table", ArrowMaterializer())
    registry.register("polars.dataframe.frame.DataFrame", PolarsMaterializer())
    sklearn_m = SklearnMaterializer()
    # Estimators between steps: joblib (see JoblibMaterializer); artifacts written with
    # skops still load by their recorded name.
    registry.register("sklearn.base.BaseEstimator", sklearn_m.fallback)
    registry.register(SklearnMaterializer.name, sklearn_m)
    registry.self_serializing = SelfSerializingMaterializer()
    registry.register(SelfSerializingMaterializer.name, registry.self_serializing)
    from conveyor.materializers.containers import ContainerMaterializer

    registry.set_container(ContainerMaterializer(registry))
    registry.set_fallback(CloudpickleMaterializer())
