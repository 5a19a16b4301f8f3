"""Dicts, lists and tuples of frames and arrays, stored without pickle.

A step returning ``{"X_train": df, "X_test": df, "y_train": s, "y_test": s}`` (or a tuple
of arrays) would otherwise go through the cloudpickle fallback. `ContainerMaterializer`
stores each member with the materializer its type has (``.npy`` for numpy, JSON for plain
values, nested containers) and the container's shape in a small JSON header. Only
materializers that run no code on load are accepted for members.

pandas members are the exception that makes this fast: Parquet costs milliseconds per
frame where pickle costs microseconds, so frames and series are pickled (protocol 5) and
loaded by an unpickler that resolves nothing but an explicit list of pandas, numpy and
pyarrow constructors (`_PANDAS_GLOBALS`): no other callable can be named by the bytes,
whatever they say. Like every artifact, the bytes are read only from the content store,
checked against the sha256 of their database row. A frame whose pickle needs anything
else (an object column of user classes, say) is stored as Parquet instead.

Layout: ``CONVEYORC1`` + 8-byte big-endian header length + header JSON + member bytes.
The header lists, per member, its key (dicts), materializer, byte size and summary.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import threading
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import MaterializerError

if TYPE_CHECKING:
    from conveyor.materializers.base import Materializer, MaterializerRegistry

MAGIC = b"CONVEYORC1"
NAME = "conveyor.container"
PANDAS_PICKLE = "pandas.restricted-pickle"
# Member materializers whose load runs no code named by the bytes.
SAFE_MEMBERS = frozenset(
    {"json", "numpy", "pandas.parquet", "arrow.parquet", "polars.parquet", PANDAS_PICKLE, NAME}
)
# Everything a pickled DataFrame or Series of the common dtypes names (numeric, bool,
# string, datetime with or without a zone, timedelta, categorical, nullable integer;
# range, plain, datetime and multi indexes).
_PANDAS_GLOBALS = frozenset(
    {
        ("builtins", "slice"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("pandas", "Categorical"),
        ("pandas", "CategoricalDtype"),
        ("pandas", "DataFrame"),
        ("pandas", "DatetimeIndex"),
        ("pandas", "DatetimeTZDtype"),
        ("pandas", "Index"),
        ("pandas", "Int64Dtype"),
        ("pandas", "MultiIndex"),
        ("pandas", "RangeIndex"),
        ("pandas", "Series"),
        ("pandas", "StringDtype"),
        ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
        ("pandas._libs.internals", "_unpickle_block"),
        ("pandas._libs.tslibs.offsets", "Day"),
        ("pandas.arrays", "ArrowStringArray"),
        ("pandas.arrays", "DatetimeArray"),
        ("pandas.arrays", "IntegerArray"),
        ("pandas.arrays", "TimedeltaArray"),
        ("pandas.core.indexes.base", "_new_Index"),
        ("pandas.core.indexes.datetimes", "_new_DatetimeIndex"),
        ("pandas.core.internals.managers", "BlockManager"),
        ("pandas.core.internals.managers", "SingleBlockManager"),
        ("pyarrow.lib", "_restore_array"),
        ("pyarrow.lib", "py_buffer"),
        ("pyarrow.lib", "type_for_alias"),
    }
)
_PANDAS_TYPES = frozenset({"pandas.DataFrame", "pandas.Series"})
_KINDS: dict[type, str] = {dict: "dict", list: "list", tuple: "tuple"}
_MAX_MEMBERS = 10_000
_MAX_DEPTH = 8


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PANDAS_GLOBALS:
            raise MaterializerError(
                f"Refusing to unpickle {module}.{name}: a pickled pandas member may name "
                "only pandas, numpy and pyarrow constructors."
            )
        return super().find_class(module, name)


def restricted_loads(data: bytes) -> Any:
    """Unpickle `data`, resolving only the constructors in `_PANDAS_GLOBALS`.

    Raises:
        MaterializerError: the bytes name anything else, or are not a pickle.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data)).load()
    except MaterializerError:
        raise
    except Exception as exc:
        raise MaterializerError(f"Cannot load a pickled pandas member: {exc}.") from exc


class _PandasPickle:
    """A DataFrame or Series member, pickled; loaded by `restricted_loads` only."""

    name = PANDAS_PICKLE
    version = "1"

    def save(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=5)

    def load(self, data: bytes, summary: dict[str, Any]) -> Any:
        return restricted_loads(data)


_PICKLED = _PandasPickle()
# Digests of pickles `restricted_loads` accepted: the same bytes (a series handed on
# unchanged, a re-run on the same data) get the same answer without building the frame.
_LOADED: dict[bytes, None] = {}
_LOADED_LOCK = threading.Lock()
_LOADED_MAX = 512


def _loads_back(pickled: bytes) -> bool:
    """Whether `restricted_loads` accepts `pickled` (tried once per distinct bytes)."""
    digest = hashlib.sha256(pickled).digest()
    if digest in _LOADED:
        return True
    try:
        restricted_loads(pickled)
    except MaterializerError:
        return False
    with _LOADED_LOCK:
        if len(_LOADED) >= _LOADED_MAX:
            del _LOADED[next(iter(_LOADED))]
        _LOADED[digest] = None
    return True


def _pandas_kind(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__.partition('.')[0]}.{cls.__qualname__}"


def _pandas_shape(value: Any) -> dict[str, Any]:
    """What the container's summary shows of a DataFrame or Series member."""
    if value.ndim == 1:
        return {"python_type": "Series", "shape": [len(value)], "length": len(value)}
    return {"python_type": "DataFrame", "shape": list(value.shape), "length": len(value)}


class ContainerMaterializer:
    """A dict (string keys), list or tuple whose members all have a safe materializer.

    Tried only when the container's own type has no materializer that accepts it (a dict
    of plain values stays JSON), before the cloudpickle fallback.
    """

    name = NAME
    version = "1"
    # Hashing a container costs about half of writing it: an identical one stored before
    # in this process is not written again (conveyor.execution.reuse).
    reuse_identical = True

    def __init__(self, registry: MaterializerRegistry) -> None:
        self._registry = registry

    @property
    def fallback(self) -> Materializer | None:
        """Used when a member cannot be stored after all (the registry's fallback)."""
        return self._registry.fallback

    def _member(self, value: Any, depth: int) -> Materializer | None:
        if type(value) in _KINDS:
            return self if self._accepts(value, depth + 1) else None
        materializer = self._registry.for_value(value)
        return materializer if materializer.name in SAFE_MEMBERS - {NAME} else None

    def _accepts(self, value: Any, depth: int) -> bool:
        kind = type(value)
        if kind not in _KINDS or depth > _MAX_DEPTH or not 0 < len(value) <= _MAX_MEMBERS:
            return False
        if kind is dict and not all(type(k) is str for k in value):
            return False
        members = value.values() if kind is dict else value
        return all(self._member(v, depth) is not None for v in members)

    def accepts(self, value: Any) -> bool:
        return self._accepts(value, 0)

    def save(self, value: Any) -> bytes:
        kind = _KINDS[type(value)]
        pairs = list(value.items()) if kind == "dict" else list(enumerate(value))
        items, blobs = [], []
        for key, member in pairs:
            materializer = self._member(member, 0)
            if materializer is None:
                raise MaterializerError(
                    f"Member {key!r} of a {kind} is a {type(member).__qualname__}, which has "
                    "no pickle-free materializer."
                )
            data, stored_as = b"", materializer.name
            if stored_as == "pandas.parquet" and _pandas_kind(member) in _PANDAS_TYPES:
                pickled = _PICKLED.save(member)
                if _loads_back(pickled):  # else store it as Parquet
                    data, stored_as = pickled, PANDAS_PICKLE
            if stored_as == PANDAS_PICKLE:
                # Loading a pickled member needs no summary; the container's keeps only these.
                summary = _pandas_shape(member)
            else:
                data = materializer.save(member)
                summary = materializer.summary(member, data)
            entry: dict[str, Any] = {
                "materializer": stored_as,
                "size": len(data),
                "summary": summary,
            }
            if kind == "dict":
                entry["key"] = key
            items.append(entry)
            blobs.append(data)
        header = json.dumps({"kind": kind, "items": items}, separators=(",", ":")).encode()
        return b"".join([MAGIC, len(header).to_bytes(8, "big"), header, *blobs])

    @staticmethod
    def _header(data: bytes) -> tuple[dict[str, Any], int]:
        if not data.startswith(MAGIC):
            raise MaterializerError("These bytes are not a conveyor container.")
        start = len(MAGIC) + 8
        length = int.from_bytes(data[len(MAGIC) : start], "big")
        try:
            header = json.loads(data[start : start + length])
        except ValueError as exc:
            raise MaterializerError(f"The container header is not JSON: {exc}.") from exc
        if not isinstance(header, dict) or header.get("kind") not in _KINDS.values():
            raise MaterializerError("The container header has no valid kind.")
        return header, start + length

    def load(self, data: bytes, summary: dict[str, Any]) -> Any:
        header, offset = self._header(data)
        values: list[Any] = []
        keys: list[str] = []
        for entry in header.get("items", []):
            name = entry.get("materializer")
            if name not in SAFE_MEMBERS:
                raise MaterializerError(
                    f"Refusing to load a container member stored with {name!r}: containers "
                    f"hold only {', '.join(sorted(SAFE_MEMBERS))} members."
                )
            size = int(entry["size"])
            chunk = data[offset : offset + size]
            if len(chunk) != size:
                raise MaterializerError("The container is truncated.")
            offset += size
            loader: Any = (
                self
                if name == NAME
                else _PICKLED
                if name == PANDAS_PICKLE
                else self._registry.by_name(name)
            )
            values.append(loader.load(chunk, dict(entry.get("summary") or {})))
            keys.append(str(entry.get("key", "")))
        kind = header["kind"]
        if kind == "dict":
            return dict(zip(keys, values, strict=True))
        return tuple(values) if kind == "tuple" else values

    def summary(self, value: Any, data: bytes) -> dict[str, Any]:
        header, _ = self._header(data)
        members: list[dict[str, Any]] = []
        for index, entry in enumerate(header["items"][:200]):
            inner = entry.get("summary") or {}
            described = {
                "key": entry.get("key", index),
                "materializer": entry["materializer"],
                "size": entry["size"],
            }
            for field in ("python_type", "shape", "dtype", "length"):
                if field in inner:
                    described[field] = inner[field]
            members.append(described)
        return {"python_type": header["kind"], "length": len(value), "members": members}
