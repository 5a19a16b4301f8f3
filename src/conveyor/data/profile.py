"""`Profile`: one mergeable statistics object per table.

A Profile holds, per column, exact counts and moments (count, nulls, NaN, Inf, min, max,
mean, M2) and two sketches: a deterministic KLL quantile sketch (`_sketches`, exact while
a column holds at most 2,048 values) for numeric and datetime columns and an Apache
DataSketches frequent-items sketch for string columns. Everything in it merges: the
profile of a table equals (within the quantile sketch's stated rank error) the merge of the
profiles of its parts, so it is built chunk by chunk in flat memory, per partition on Dask
or per monitoring window, and combined. Nothing in it is random: the same rows in the same
order give the same Profile, byte for byte, in every process.

The same object feeds schema inference, validation, drift and monitoring. Drift tests use
only the public surface: `ColumnProfile.pmf` / `cdf` over shared split points for numeric
columns (Jensen-Shannon, PSI, KS on the sketch) and `category_frequencies()` for
categorical ones (L-infinity, chi-square).
"""

from __future__ import annotations

import itertools
import json
import math
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasketches import frequent_items_error_type, frequent_strings_sketch

from conveyor.data._sketches import QuantileSketch, sampling_rank_error
from conveyor.exceptions import DataError

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["numeric", "categorical", "boolean", "datetime", "text"]

# Type families: a column may widen within a family between chunks (int -> float) but not
# change family (int -> string), which is a data error.
Family = Literal["numeric", "boolean", "datetime", "string", "null"]

KLL_K = 200
FREQ_LG_MAX_MAP_SIZE = 10  # 1024 slots, exact while fewer than 768 distinct values
# Per chunk, at most this many distinct values go into the frequent-items sketch. Values
# beyond it each have a count <= the cut-off count, so they could not be frequent items of
# the chunk; the sketch's error bound grows by at most that count per chunk.
FREQ_FEED_LIMIT = 2048
# A string column is categorical when its distinct values are known exactly and are few.
CATEGORICAL_MAX_DISTINCT = 500
CATEGORICAL_MAX_RATIO = 0.5

_MAGIC = b"CVPF"
_FORMAT_VERSION = 2  # 2: conveyor's deterministic quantile sketch; 1 (DataSketches KLL) reads
_READABLE_VERSIONS = (1, 2)
_ABSENT = "\x00conveyor:absent\x00"


def _family(dtype: pa.DataType) -> Family:
    if pa.types.is_null(dtype):
        return "null"
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    if (
        pa.types.is_timestamp(dtype)
        or pa.types.is_date(dtype)
        or pa.types.is_time(dtype)
        or pa.types.is_duration(dtype)
    ):
        return "datetime"
    if pa.types.is_dictionary(dtype):
        return _family(dtype.value_type)
    return "string"


def _seconds_factor(dtype: pa.DataType) -> float:
    """Multiplier from the integer storage of a temporal type to seconds."""
    if pa.types.is_date32(dtype):
        return 86400.0
    if pa.types.is_date64(dtype):
        return 1e-3
    unit = getattr(dtype, "unit", "s")
    return {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[unit]


@dataclass
class ColumnProfile:
    """Mergeable statistics of one column.

    Attributes:
        name: Column name.
        family: Storage family: numeric, boolean, datetime, string or null (all-null so far).
        dtype: Arrow type of the column (the widest seen when chunks differ).
        count: Rows, nulls included.
        null_count: Missing values (Arrow nulls; pandas NaN in float columns becomes null).
        nan_count: Floating-point NaN that are not nulls (Arrow/Parquet data only).
        inf_count: +/-Inf values; they are left out of the moments and the quantile sketch.
        min: Smallest finite value (numeric, datetime as epoch seconds), else None.
        max: Largest finite value, else None.
        true_count: Number of True values of a boolean column.
    """

    name: str
    family: Family = "null"
    dtype: str = "null"
    count: int = 0
    null_count: int = 0
    nan_count: int = 0
    inf_count: int = 0
    min: float | None = None
    max: float | None = None
    true_count: int = 0
    _n: int = 0  # finite values behind the moments
    _mean: float = 0.0
    _m2: float = 0.0
    _kll: QuantileSketch | None = field(default=None, repr=False)
    _freq: frequent_strings_sketch | None = field(default=None, repr=False)
    _freq_extra_error: int = 0  # bound from values cut by FREQ_FEED_LIMIT
    _sample_error: float = 0.0  # rank error added by sampling large chunks (see _sketches)

    # ------------------------------------------------------------ derived values
    @property
    def valid_count(self) -> int:
        """Non-null values."""
        return self.count - self.null_count

    @property
    def null_fraction(self) -> float:
        return self.null_count / self.count if self.count else 0.0

    @property
    def mean(self) -> float | None:
        return self._mean if self._n else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (ddof=1) of the finite values, as pandas reports it."""
        if self._n < 2:
            return None if self._n == 0 else 0.0
        return math.sqrt(max(self._m2, 0.0) / (self._n - 1))

    @property
    def finite_count(self) -> int:
        return self._n

    @property
    def distinct_exact(self) -> bool:
        """Whether `frequencies()` holds every distinct value with its exact count."""
        return self._freq is not None and self.frequency_error == 0

    @property
    def distinct_count(self) -> int | None:
        """Number of distinct values when known exactly (strings, booleans), else None."""
        if self.family == "boolean":
            return int(self.true_count > 0) + int(self.valid_count - self.true_count > 0)
        if self.family == "string" and self.distinct_exact:
            return int(self._freq.num_active_items) if self._freq is not None else 0
        return None

    @property
    def kind(self) -> Kind:
        """numeric, categorical, boolean, datetime or text (many distinct strings)."""
        if self.family in ("numeric", "boolean", "datetime"):
            return self.family
        if self.family == "null":
            return "categorical"
        distinct = self.distinct_count
        if distinct is None:
            return "text"
        if distinct <= 20 or (
            distinct <= CATEGORICAL_MAX_DISTINCT
            and distinct <= CATEGORICAL_MAX_RATIO * max(self.valid_count, 1)
        ):
            return "categorical"
        return "text"

    # ------------------------------------------------------------ quantiles
    @property
    def quantile_error(self) -> float:
        """Normalized rank error of `quantiles`/`cdf`/`pmf` (99% confidence; 0 when exact)."""
        if self._kll is None:
            return 0.0
        return float(self._kll.normalized_rank_error(True)) + self._sample_error

    def _sketch(self) -> QuantileSketch:
        if self._kll is None or self._kll.is_empty():
            raise DataError(
                f"Column {self.name!r} ({self.kind}) has no finite numeric values, so it "
                "has no quantiles."
            )
        return self._kll

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """Approximate quantiles (ranks in [0, 1]) of the finite values."""
        return [float(x) for x in self._sketch().get_quantiles(list(qs))]

    def quantile(self, q: float) -> float:
        return float(self._sketch().get_quantile(q))

    def cdf(self, split_points: Sequence[float]) -> list[float]:
        """Fraction of finite values < each split point, then 1.0 (len(split_points) + 1)."""
        return [float(x) for x in self._sketch().get_cdf(_split_points(split_points))]

    def pmf(self, split_points: Sequence[float]) -> list[float]:
        """Mass in (-inf, s0), [s0, s1), ..., [sn, +inf): len(split_points) + 1 fractions."""
        return [float(x) for x in self._sketch().get_pmf(_split_points(split_points))]

    def histogram(self, bins: int = 20) -> tuple[list[float], list[float]]:
        """Equal-width histogram (edges, counts) of the finite values, from the sketch."""
        if self.min is None or self.max is None or self._kll is None or self._kll.is_empty():
            return [], []
        if self.max == self.min:
            return [self.min, self.max], [float(self._n)]
        edges = np.linspace(self.min, self.max, bins + 1)
        mass = self._kll.get_pmf(list(edges[1:-1]))
        return [float(e) for e in edges], [float(m) * self._n for m in mass]

    # ------------------------------------------------------------ frequencies
    def frequencies(self) -> dict[str, int]:
        """Estimated counts of the frequent values (all values when `distinct_exact`)."""
        if self.family == "boolean":
            out = {"true": self.true_count, "false": self.valid_count - self.true_count}
            return {k: v for k, v in out.items() if v}
        if self._freq is None or self._freq.is_empty():
            return {}
        items = self._freq.get_frequent_items(frequent_items_error_type.NO_FALSE_NEGATIVES)
        return {str(item): int(estimate) for item, estimate, _lo, _hi in items}

    def category_frequencies(self) -> dict[str, float]:
        """Frequent values as fractions of the non-null values (sum <= 1)."""
        total = self.valid_count
        if not total:
            return {}
        return {k: v / total for k, v in self.frequencies().items()}

    def top_k(self, k: int = 10) -> list[tuple[str, int]]:
        """The k most frequent values with their estimated counts, most frequent first."""
        ranked = sorted(self.frequencies().items(), key=lambda kv: (-kv[1], kv[0]))
        return ranked[:k]

    @property
    def frequency_error(self) -> int:
        """Upper bound on the absolute error of each count in `frequencies()`."""
        if self._freq is None:
            return 0
        # The upper bound of a value the sketch does not hold is its global error offset.
        return int(self._freq.get_upper_bound(_ABSENT)) + self._freq_extra_error

    # ------------------------------------------------------------ building
    def update(self, array: pa.Array | pa.ChunkedArray) -> None:
        """Add the values of an Arrow array (one chunk of the column)."""
        if isinstance(array, pa.ChunkedArray):
            for chunk in array.chunks:
                self.update(chunk)
            if not array.chunks:
                self._check_family(array.type)
            return
        family = self._check_family(array.type)
        n = len(array)
        nulls = array.null_count
        self.count += n
        self.null_count += nulls
        if n == nulls or family == "null":
            return
        if family == "numeric":
            self._update_numeric(array, nulls, 1.0)
        elif family == "datetime":
            self._update_datetime(array, nulls)
        elif family == "boolean":
            self.true_count += int(pc.sum(array).as_py() or 0)
        else:
            self._update_strings(array)

    def _check_family(self, dtype: pa.DataType) -> Family:
        family = _family(dtype)
        if family == "null":
            return self.family
        if self.family == "null":
            self.family = family
            self.dtype = str(dtype.value_type if pa.types.is_dictionary(dtype) else dtype)
        elif family != self.family:
            raise DataError(
                f"Column {self.name!r} changed type between chunks: it was {self.dtype} "
                f"({self.family}) and a later chunk has {dtype} ({family}). Fix the source "
                "or cast the column to one type when reading."
            )
        else:
            new = str(dtype.value_type if pa.types.is_dictionary(dtype) else dtype)
            if new != self.dtype and family == "numeric" and pa.types.is_floating(dtype):
                self.dtype = new  # int widened to float
        return family

    def _update_numeric(self, array: pa.Array, nulls: int, factor: float) -> None:
        if pa.types.is_decimal(array.type):
            array = array.cast(pa.float64())
        values = array.to_numpy(zero_copy_only=False)
        if values.dtype != np.float64:
            values = values.astype(np.float64)
        if factor != 1.0:
            values = values * factor
        nan_total = 0
        if nulls or pa.types.is_floating(array.type):
            mask = np.isnan(values)
            nan_total = int(np.count_nonzero(mask))
            if nan_total:
                values = values[~mask]
        self.nan_count += nan_total - nulls
        if not values.size:
            return
        low, high = float(values.min()), float(values.max())
        if math.isinf(low) or math.isinf(high):
            finite = np.isfinite(values)
            self.inf_count += int(values.size - np.count_nonzero(finite))
            values = values[finite]
            if not values.size:
                return
            low, high = float(values.min()), float(values.max())
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)
        n = int(values.size)
        mean = float(values.sum()) / n
        centered = values - mean
        m2 = float(np.dot(centered, centered))
        self._combine_moments(n, mean, m2)
        if self._kll is None:
            self._kll = QuantileSketch(KLL_K)
        sample_size = self._kll.update(values)
        if sample_size:
            self._sample_error = max(self._sample_error, sampling_rank_error(sample_size))

    def _update_datetime(self, array: pa.Array, nulls: int) -> None:
        dtype = array.type
        if pa.types.is_timestamp(dtype) and dtype.tz is not None:
            array = array.cast(pa.timestamp(dtype.unit))
            dtype = array.type
        width = pa.int32() if pa.types.is_date32(dtype) or dtype.bit_width == 32 else pa.int64()
        storage = array.view(width) if not pa.types.is_date32(dtype) else array.cast(pa.int32())
        self._update_numeric(storage, nulls, _seconds_factor(dtype))

    def _update_strings(self, array: pa.Array) -> None:
        if pa.types.is_nested(array.type):
            return  # lists, structs, maps: counts and nulls only (kind "text")
        if self._freq is None:
            self._freq = frequent_strings_sketch(FREQ_LG_MAX_MAP_SIZE)
        counted = pc.value_counts(array)
        values = counted.field("values")
        counts = counted.field("counts").to_numpy()
        if values.null_count:
            keep = pc.is_valid(values)
            values = values.filter(keep)
            counts = counts[keep.to_numpy(zero_copy_only=False)]
        if len(counts) > FREQ_FEED_LIMIT:
            top = np.argpartition(counts, -FREQ_FEED_LIMIT)[-FREQ_FEED_LIMIT:]
            cut = np.ones(len(counts), dtype=bool)
            cut[top] = False
            self._freq_extra_error += int(counts[cut].max())
            values = values.take(pa.array(top))
            counts = counts[top]
        if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
            keys = [str(v) for v in values.to_pylist()]
        else:
            keys = values.to_pylist()
        update = self._freq.update
        for key, weight in zip(keys, counts.tolist(), strict=True):
            update(key, weight)

    def _combine_moments(self, n: int, mean: float, m2: float) -> None:
        # Chan et al.'s parallel update keeps mean/variance exact and order independent.
        if self._n == 0:
            self._n, self._mean, self._m2 = n, mean, m2
            return
        total = self._n + n
        delta = mean - self._mean
        self._mean += delta * n / total
        self._m2 += m2 + delta * delta * self._n * n / total
        self._n = total

    # ------------------------------------------------------------ merging
    def merge(self, other: ColumnProfile) -> ColumnProfile:
        """A new ColumnProfile of both parts' values.

        Raises:
            DataError: the two parts hold different type families.
        """
        out = ColumnProfile(self.name)
        out._absorb(self)
        out._absorb(other)
        return out

    def _absorb(self, other: ColumnProfile) -> None:
        if other.family != "null":
            if self.family == "null":
                self.family, self.dtype = other.family, other.dtype
            elif other.family != self.family:
                raise DataError(
                    f"Cannot merge profiles of column {self.name!r}: one holds {self.dtype} "
                    f"({self.family}), the other {other.dtype} ({other.family})."
                )
            elif other.dtype != self.dtype and "double" in (other.dtype, "float64"):
                self.dtype = other.dtype
        self.count += other.count
        self.null_count += other.null_count
        self.nan_count += other.nan_count
        self.inf_count += other.inf_count
        self.true_count += other.true_count
        if other.min is not None:
            self.min = other.min if self.min is None else min(self.min, other.min)
        if other.max is not None:
            self.max = other.max if self.max is None else max(self.max, other.max)
        if other._n:
            self._combine_moments(other._n, other._mean, other._m2)
        if other._kll is not None:
            if self._kll is None:
                self._kll = QuantileSketch(KLL_K)
            self._kll.merge(other._kll)
        if other._freq is not None:
            if self._freq is None:
                self._freq = frequent_strings_sketch(FREQ_LG_MAX_MAP_SIZE)
            self._freq.merge(other._freq)
        self._freq_extra_error += other._freq_extra_error
        self._sample_error = max(self._sample_error, other._sample_error)

    # ------------------------------------------------------------ (de)serialization
    def _header(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "dtype": self.dtype,
            "count": self.count,
            "null_count": self.null_count,
            "nan_count": self.nan_count,
            "inf_count": self.inf_count,
            "min": self.min,
            "max": self.max,
            "true_count": self.true_count,
            "n": self._n,
            "mean": self._mean,
            "m2": self._m2,
            "freq_extra_error": self._freq_extra_error,
            "sample_error": self._sample_error,
        }

    @classmethod
    def _from_header(
        cls, header: Mapping[str, Any], kll: bytes | None, freq: bytes | None
    ) -> ColumnProfile:
        column = cls(
            name=header["name"],
            family=header["family"],
            dtype=header["dtype"],
            count=header["count"],
            null_count=header["null_count"],
            nan_count=header["nan_count"],
            inf_count=header["inf_count"],
            min=header["min"],
            max=header["max"],
            true_count=header["true_count"],
        )
        column._n, column._mean, column._m2 = header["n"], header["mean"], header["m2"]
        column._freq_extra_error = header["freq_extra_error"]
        column._sample_error = header["sample_error"]
        column._kll = QuantileSketch.deserialize(kll) if kll else None
        column._freq = frequent_strings_sketch.deserialize(freq) if freq else None
        return column

    def to_dict(self, *, bins: int = 20, top: int = 20) -> dict[str, Any]:
        """JSON-able statistics (no sketches): what reports, the UI and `--json` show."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "dtype": self.dtype,
            "count": self.count,
            "null_count": self.null_count,
            "null_fraction": self.null_fraction,
        }
        if self.family in ("numeric", "datetime"):
            out.update(
                nan_count=self.nan_count,
                inf_count=self.inf_count,
                min=self.min,
                max=self.max,
                mean=self.mean,
                std=self.std,
            )
            if self._kll is not None and not self._kll.is_empty():
                qs = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
                out["quantiles"] = dict(zip([str(q) for q in qs], self.quantiles(qs), strict=True))
                out["quantile_rank_error"] = self.quantile_error
                edges, counts = self.histogram(bins)
                out["histogram"] = {"edges": edges, "counts": counts}
        if self.family in ("string", "boolean"):
            out["distinct_count"] = self.distinct_count
            out["top_k"] = [[k, v] for k, v in self.top_k(top)]
        if self.family == "boolean":
            out["true_count"] = self.true_count
        return out


def _split_points(points: Sequence[float]) -> list[float]:
    values = [float(p) for p in points]
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise DataError(
            "Split points must be unique and increasing. Got "
            f"{values[:10]}{'...' if len(values) > 10 else ''} instead."
        )
    return values


def _to_table(data: Any) -> pa.Table | pa.RecordBatch:
    """An Arrow table from a pandas/polars DataFrame or Arrow data, checking column names."""
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        table = data
    elif hasattr(data, "to_arrow") and not hasattr(data, "iloc"):  # polars
        table = data.to_arrow()
    else:
        import pandas as pd

        if isinstance(data, pd.Series):
            data = data.to_frame()
        if not isinstance(data, pd.DataFrame):
            raise DataError(
                "Expected a pandas/polars DataFrame or a pyarrow Table/RecordBatch. Got "
                f"{type(data).__name__} instead."
            )
        _check_names([str(c) for c in data.columns])
        try:
            table = pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(
                f"Cannot convert the DataFrame to columns of one type each: {exc}. Cast "
                "mixed-type (object) columns to one type."
            ) from exc
    _check_names(table.schema.names)
    return table


def _check_names(names: Sequence[str]) -> None:
    seen: set[str] = set()
    duplicates = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if duplicates:
        raise DataError(
            "Duplicate column names: " + ", ".join(repr(d) for d in duplicates) + ". Each "
            "column needs a unique name; rename the duplicates."
        )


class Profile:
    """Mergeable per-column statistics of a table.

    Build with `from_frame` or `from_batches`, combine with `merge`, store with `to_bytes`.
    Profiles are values: `merge` returns a new Profile and leaves both inputs unchanged.
    """

    __conveyor_artifact__: ClassVar[bool] = True

    def __init__(self, columns: Mapping[str, ColumnProfile] | None = None, row_count: int = 0):
        self.columns: dict[str, ColumnProfile] = dict(columns or {})
        self.row_count = row_count

    # ------------------------------------------------------------ building
    @classmethod
    def from_frame(cls, data: Any) -> Profile:
        """Profile a pandas/polars DataFrame or a pyarrow Table / RecordBatch.

        Raises:
            DataError: duplicate column names or a column mixing types.
        """
        return cls.from_batches([data])

    @classmethod
    def from_batches(cls, batches: Iterable[Any]) -> Profile:
        """Profile a stream of chunks (RecordBatches, Tables or DataFrames) in flat memory.

        Only one chunk is held at a time; columns that first appear in a later chunk are
        counted as null in the earlier ones.

        Raises:
            DataError: duplicate column names, or a column whose type family changes from
                one chunk to the next.
        """
        profile = cls()
        for batch in batches:
            profile._update(_to_table(batch))
        return profile

    def _update(self, table: pa.Table | pa.RecordBatch) -> None:
        rows = table.num_rows
        for name, column in zip(table.schema.names, table.columns, strict=True):
            target = self.columns.get(name)
            if target is None:
                target = self.columns[name] = ColumnProfile(name)
                target.count = target.null_count = self.row_count
            target.update(column)
        for name, target in self.columns.items():
            if name not in table.schema.names:
                target.count += rows
                target.null_count += rows
        self.row_count += rows

    def merge(self, other: Profile) -> Profile:
        """The profile of the union of both tables' rows (columns matched by name)."""
        return Profile.merge_all([self, other])

    @classmethod
    def merge_all(cls, profiles: Iterable[Profile]) -> Profile:
        """The profile of the union of the rows of all `profiles`."""
        out = cls()
        for profile in profiles:
            for name, column in profile.columns.items():
                target = out.columns.get(name)
                if target is None:
                    target = out.columns[name] = ColumnProfile(name)
                    target.count = target.null_count = out.row_count
                target._absorb(column)
            for name, target in out.columns.items():
                if name not in profile.columns:
                    target.count += profile.row_count
                    target.null_count += profile.row_count
            out.row_count += profile.row_count
        return out

    # ------------------------------------------------------------ access
    def __getitem__(self, name: str) -> ColumnProfile:
        try:
            return self.columns[name]
        except KeyError:
            from conveyor.exceptions import did_you_mean

            raise DataError(
                f"No column {name!r} in the profile." + did_you_mean(name, list(self.columns))
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __iter__(self) -> Iterator[ColumnProfile]:
        return iter(self.columns.values())

    def __len__(self) -> int:
        return len(self.columns)

    def __repr__(self) -> str:
        return f"<Profile {self.row_count} rows x {len(self.columns)} columns>"

    # ------------------------------------------------------------ serialization
    def to_bytes(self) -> bytes:
        """Compact binary form: a JSON header and the serialized sketches (kilobytes)."""
        headers = []
        blobs: list[bytes] = []
        for column in self.columns.values():
            header = column._header()
            for key, sketch in (("kll", column._kll), ("freq", column._freq)):
                if sketch is not None:
                    blob = sketch.serialize()
                    header[key] = len(blob)
                    blobs.append(blob)
            headers.append(header)
        meta = json.dumps(
            {"v": _FORMAT_VERSION, "rows": self.row_count, "columns": headers},
            separators=(",", ":"),
        ).encode()
        return b"".join([_MAGIC, struct.pack("<I", len(meta)), meta, *blobs])

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        """Rebuild a Profile written by `to_bytes`.

        Raises:
            DataError: the bytes are not a serialized Profile.
        """
        if data[:4] != _MAGIC or len(data) < 8:
            raise DataError("These bytes are not a serialized conveyor Profile.")
        (size,) = struct.unpack("<I", data[4:8])
        try:
            meta = json.loads(data[8 : 8 + size])
        except ValueError as exc:
            raise DataError("The serialized Profile is damaged (bad header).") from exc
        if meta.get("v") not in _READABLE_VERSIONS:
            raise DataError(
                f"Profile format version {meta.get('v')} is not supported by this conveyor "
                f"(it reads version {_FORMAT_VERSION}). Upgrade conveyor."
            )
        offset = 8 + size
        columns = {}
        for header in meta["columns"]:
            kll = freq = None
            if "kll" in header:
                kll = data[offset : offset + header["kll"]]
                offset += header["kll"]
            if "freq" in header:
                freq = data[offset : offset + header["freq"]]
                offset += header["freq"]
            column = ColumnProfile._from_header(header, kll, freq)
            columns[column.name] = column
        return cls(columns, meta["rows"])

    def to_dict(self, *, bins: int = 20, top: int = 20) -> dict[str, Any]:
        """JSON-able statistics of every column (no sketches)."""
        return {
            "row_count": self.row_count,
            "columns": {name: c.to_dict(bins=bins, top=top) for name, c in self.columns.items()},
        }

    def to_html(self, title: str | None = None) -> str:
        """A self-contained HTML page of the statistics and a chart per column."""
        from conveyor.data.report import render_profile_html

        return render_profile_html(self, title)

    def artifact_summary(self) -> dict[str, Any]:
        return {
            "row_count": self.row_count,
            "columns": len(self.columns),
            "kinds": {name: c.kind for name, c in list(self.columns.items())[:200]},
        }

    def to_pandas_describe(self) -> pd.DataFrame:
        """A describe()-like DataFrame, handy in notebooks."""
        import pandas as pd

        rows = {}
        for name, column in self.columns.items():
            row: dict[str, Any] = {
                "kind": column.kind,
                "count": column.valid_count,
                "nulls": column.null_count,
            }
            if column.family in ("numeric", "datetime"):
                row.update(mean=column.mean, std=column.std, min=column.min, max=column.max)
            rows[name] = row
        return pd.DataFrame.from_dict(rows, orient="index")


__all__ = ["ColumnProfile", "Kind", "Profile"]
