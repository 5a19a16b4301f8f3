"""Request validation against a model signature, for JSON requests and for data frames.

The rules come from the signature's columns (name, dtype, nullable, categories) and are
compiled once per loaded model into one check per column. JSON values are checked in pure
Python (one-row requests must stay cheap); frames are checked column-wise with pandas and
report a reason per row (batch scoring writes those rows to the reject file).

Problems are named by kind, so clients can act on them:

    missing          a signature column is absent
    null             a null/NaN where the column is not nullable
    wrong_type       a value of the wrong JSON type (a string for a float column)
    unseen_category  a value outside the training categories (when unseen="reject")
    bad_shape        columns of different lengths, an empty request, a malformed tensor
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from conveyor.exceptions import ServingError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Unseen = Literal["reject", "pass"]
DTYPES = ("int", "float", "bool", "str", "category", "datetime")
_MISSING = object()


class RequestError(ServingError):
    """A request the server refuses; rendered as a JSON body with its HTTP status.

    Attributes:
        status: HTTP status code (400, 401, 404, 413, 422, 503, ...).
        problem: Short machine-readable kind (``missing``, ``wrong_type``, ...).
        field: The offending field, e.g. ``records[3].tenure``, or None.
    """

    def __init__(
        self, status: int, message: str, *, problem: str = "invalid", field: str | None = None
    ) -> None:
        self.status = status
        self.problem = problem
        self.field = field
        self.message = message
        super().__init__(message)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "problem": self.problem}
        if self.field is not None:
            out["field"] = self.field
        return out


@dataclass(frozen=True)
class ColumnRule:
    """What one input column accepts (taken from the model signature)."""

    name: str
    dtype: str
    nullable: bool = False
    categories: frozenset[Any] | None = None
    # The time zone of a tz-aware datetime column at training (values arrive as UTC).
    tz: str | None = None


def rules_from_signature(signature: Any) -> tuple[ColumnRule, ...]:
    """Column rules from a signature whose ``columns`` have name, dtype, nullable, categories.

    Raises:
        ServingError: a column has a dtype this server does not know.
    """
    rules = []
    for column in signature.columns:
        dtype = str(column.dtype)
        if dtype not in DTYPES:
            raise ServingError(
                f"The signature column {column.name!r} has dtype {dtype!r}; the server "
                f"knows {', '.join(DTYPES)}."
            )
        categories = getattr(column, "categories", None)
        pandas_dtype = str(getattr(column, "pandas_dtype", None) or "")
        tz = None
        if dtype == "datetime" and "," in pandas_dtype:  # datetime64[ns, Europe/Paris]
            tz = pandas_dtype.partition(",")[2].strip(" ]") or None
        rules.append(
            ColumnRule(
                name=str(column.name),
                dtype=dtype,
                nullable=bool(getattr(column, "nullable", False)),
                categories=frozenset(str(c) for c in categories) if categories else None,
                tz=tz,
            )
        )
    return tuple(rules)


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int with more digits than Python will print
        return "a very large integer"
    return text if len(text) <= 60 else text[:57] + "..."


class _Bad(Exception):
    """A value a column refuses: the problem kind and what was expected."""

    def __init__(self, problem: str, expected: str) -> None:
        self.problem = problem
        self.expected = expected


# A check returns the value coerced to its column's type (what the model and the prediction
# log receive), or raises `_Bad`.
Check = Callable[[Any], Any]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INT_EXPECTED = f"an integer between {INT64_MIN} and {INT64_MAX}"
# pandas' nanosecond timestamps cover 1677-09-21 to 2262-04-11; whole years inside that.
_FIRST_YEAR, _LAST_YEAR = 1678, 2261
_DATETIME_EXPECTED = (
    f"an ISO 8601 date-time string between the years {_FIRST_YEAR} and {_LAST_YEAR}"
)


def _check_for(rule: ColumnRule, unseen: Unseen) -> Check:
    kind = rule.dtype
    if kind == "float":

        def check(v: Any) -> Any:
            t = type(v)
            if t is float:
                if math.isfinite(v):
                    return v
            elif t is int:
                try:
                    return float(v)
                except OverflowError:
                    pass
            else:
                raise _Bad("wrong_type", "a number")
            raise _Bad("wrong_type", "a finite number")

    elif kind == "int":

        def check(v: Any) -> Any:
            t = type(v)
            if t is int:
                if INT64_MIN <= v <= INT64_MAX:
                    return v
            elif t is float and v.is_integer():
                if INT64_MIN <= v < 2.0**63:
                    return int(v)
            elif t is not float:
                raise _Bad("wrong_type", "an integer")
            raise _Bad("wrong_type", _INT_EXPECTED)

    elif kind == "bool":

        def check(v: Any) -> Any:
            if type(v) is bool:
                return v
            raise _Bad("wrong_type", "true or false")

    elif kind == "datetime":

        def check(v: Any) -> Any:
            if type(v) is str:
                try:
                    parsed = dt.datetime.fromisoformat(v)
                except ValueError:
                    parsed = None
                if parsed is not None and _FIRST_YEAR <= parsed.year <= _LAST_YEAR:
                    if parsed.tzinfo is not None:
                        # One time line for the whole column: UTC, as the model input.
                        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
                    return parsed
            raise _Bad("wrong_type", _DATETIME_EXPECTED)

    elif kind == "str" and not rule.categories:

        def check(v: Any) -> Any:
            if type(v) is str:
                return v
            raise _Bad("wrong_type", "a string")

    else:  # category, or a str column with a known domain (held as strings)
        cats = rule.categories or frozenset()
        strict = kind == "str"
        shown = ", ".join(sorted(map(repr, cats))[:10]) + (", ..." if len(cats) > 10 else "")

        def check(v: Any) -> Any:
            t = type(v)
            if t is str:
                text = v
            elif strict or t not in (int, bool, float):
                raise _Bad("wrong_type", "a string")
            else:
                # A code sent as a number (2 for the category "2") becomes its text, so the
                # column holds one type all the way to the model and the log.
                text = str(v)
            if text in cats or unseen == "pass":
                return text
            raise _Bad("unseen_category", f"one of the training categories ({shown})")

    return check


_NONE = type(None)
# Below this many records the plain row-by-row pass is cheaper (one-row requests).
_COLUMNWISE_FROM = 16


def _column(values: list[Any], nullable: bool, dtype: str, check: Check) -> list[Any] | None:
    """The column's values coerced to its type, or None when any value is refused.

    Decided with type sets where the values need no conversion (the common case)."""
    kinds = set(map(type, values))
    present = values
    if _NONE in kinds:
        if not nullable:
            return None
        kinds.discard(_NONE)
        present = [v for v in values if v is not None]
    if object in kinds:  # a missing column
        return None
    if dtype == "float" and kinds <= {float, int}:
        try:
            if all(map(math.isfinite, present)):
                return values
        except OverflowError:  # an int beyond the float range
            return None
        return None
    if dtype == "int" and kinds <= {int}:
        if not present or (min(present) >= INT64_MIN and max(present) <= INT64_MAX):
            return values
        return None
    if dtype == "bool":
        return values if kinds <= {bool} else None
    try:
        return [None if v is None else check(v) for v in values]
    except _Bad:
        return None


class Validator:
    """Checks requests for one model signature.

    Args:
        rules: The signature's column rules.
        unseen: What to do with a category value not seen in training: ``"reject"`` the
            request (422) or ``"pass"`` it to the model (whose encoder decides).
    """

    def __init__(self, rules: Sequence[ColumnRule], unseen: Unseen = "reject") -> None:
        if unseen not in ("reject", "pass"):
            raise ServingError(
                f"The 'unseen' parameter of Validator must be 'reject' or 'pass'. Got "
                f"{unseen!r} instead."
            )
        self.rules = tuple(rules)
        self.unseen = unseen
        self.names = tuple(r.name for r in self.rules)
        self._checks = tuple(
            (r.name, r.nullable, _check_for(r, unseen), r.dtype) for r in self.rules
        )

    def _fail(self, field: str, name: str, value: Any, problem: str, expected: str) -> RequestError:
        if problem == "null":
            message = f"{field} is null or NaN, but column {name!r} does not allow missing values."
        elif problem == "unseen_category":
            message = (
                f"{field} is {_show(value)}, which the model never saw in training; "
                f"expected {expected}."
            )
        else:
            message = (
                f"{field} must be {expected}. Got {_show(value)} ({_type_name(value)}) instead."
            )
        return RequestError(422, message, problem=problem, field=field)

    def records(self, records: Any) -> tuple[dict[str, list[Any]], int]:
        """Columns (signature order) from ``[{column: value}, ...]``.

        Raises:
            RequestError: 422 naming the first offending ``records[i].column``.
        """
        if type(records) is not list or not records:
            raise RequestError(
                422,
                "'records' must be a non-empty array of objects, one per row.",
                problem="bad_shape",
                field="records",
            )
        if len(records) >= _COLUMNWISE_FROM and all(type(r) is dict for r in records):
            # Fast path for batches, column by column; on any problem the row-by-row pass
            # below finds the first offending record so the error names it.
            fast: dict[str, list[Any]] = {}
            for name, nullable, check, dtype in self._checks:
                coerced = _column([r.get(name, _MISSING) for r in records], nullable, dtype, check)
                if coerced is None:
                    break
                fast[name] = coerced
            else:
                return fast, len(records)
        columns: dict[str, list[Any]] = {name: [] for name in self.names}
        for i, record in enumerate(records):
            if type(record) is not dict:
                raise RequestError(
                    422,
                    f"records[{i}] must be an object of column values. Got {_type_name(record)}.",
                    problem="wrong_type",
                    field=f"records[{i}]",
                )
            for name, nullable, check, _ in self._checks:
                value = record.get(name, _MISSING)
                if value is None:
                    if not nullable:
                        raise self._fail(f"records[{i}].{name}", name, value, "null", "")
                elif value is _MISSING:
                    raise RequestError(
                        422,
                        f"records[{i}] lacks the column {name!r} that the model needs.",
                        problem="missing",
                        field=f"records[{i}].{name}",
                    )
                else:
                    try:
                        value = check(value)
                    except _Bad as bad:
                        raise self._fail(
                            f"records[{i}].{name}", name, value, bad.problem, bad.expected
                        ) from None
                columns[name].append(value)
        return columns, len(records)

    def columns(self, data: Any, where: str = "columns") -> tuple[dict[str, list[Any]], int]:
        """Columns (signature order) from ``{column: [values...]}``.

        Raises:
            RequestError: 422 naming the offending ``columns.name[i]``.
        """
        if type(data) is not dict:
            raise RequestError(
                422,
                f"'{where}' must be an object mapping each column name to an array of values.",
                problem="wrong_type",
                field=where,
            )
        n = -1
        out: dict[str, list[Any]] = {}
        for name, nullable, check, dtype in self._checks:
            values = data.get(name, _MISSING)
            if values is _MISSING:
                raise RequestError(
                    422,
                    f"{where} lacks the column {name!r} that the model needs.",
                    problem="missing",
                    field=f"{where}.{name}",
                )
            if type(values) is not list:
                raise RequestError(
                    422,
                    f"{where}.{name} must be an array of values. Got {_type_name(values)}.",
                    problem="wrong_type",
                    field=f"{where}.{name}",
                )
            if n < 0:
                n = len(values)
            elif len(values) != n:
                raise RequestError(
                    422,
                    f"{where}.{name} has {len(values)} values but the other columns have {n}.",
                    problem="bad_shape",
                    field=f"{where}.{name}",
                )
            coerced = _column(values, nullable, dtype, check)
            if coerced is None:
                # Find the first offending value, so the error names it.
                for i, value in enumerate(values):
                    if value is None:
                        if not nullable:
                            raise self._fail(f"{where}.{name}[{i}]", name, value, "null", "")
                        continue
                    try:
                        check(value)
                    except _Bad as bad:
                        raise self._fail(
                            f"{where}.{name}[{i}]", name, value, bad.problem, bad.expected
                        ) from None
                raise RequestError(  # pragma: no cover - the loop above names the value
                    422, f"{where}.{name} holds a refused value.", field=f"{where}.{name}"
                )
            out[name] = coerced
        if n <= 0:
            raise RequestError(422, f"'{where}' holds no rows.", problem="bad_shape", field=where)
        return out, n

    # -- frames (batch scoring) ---------------------------------------------------------

    def missing_columns(self, available: Iterable[str]) -> list[str]:
        have = set(available)
        return [name for name in self.names if name not in have]

    def frame(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Coerce a frame's signature columns and find the rows that break a rule.

        Returns:
            The coerced frame (signature columns, in order) and an object array holding,
            per row, None when the row is valid or the reason it is not.

        Raises:
            ServingError: a signature column is absent from the frame.
        """
        import numpy as np
        import pandas as pd

        missing = self.missing_columns(frame.columns)
        if missing:
            raise ServingError(
                "The input lacks the column(s) "
                + ", ".join(map(repr, missing))
                + " that the model needs. Its columns: "
                + ", ".join(map(str, frame.columns))
                + "."
            )
        n = len(frame)
        reasons = np.full(n, None, dtype=object)
        failed = np.zeros(n, dtype=bool)
        coerced: dict[str, Any] = {}
        as_is = True  # every column usable without conversion: reuse the frame

        def note(mask: Any, text: str) -> None:
            if not mask.any():
                return
            hits = mask & ~failed
            if hits.any():
                reasons[hits] = text
                failed[hits] = True

        for rule in self.rules:
            s = frame[rule.name]
            if rule.dtype in ("float", "int") and s.dtype.kind in "fiu":
                # Numeric column read as numbers (Parquet): plain numpy, no copies.
                arr = s.to_numpy()
                null = np.isnan(arr) if s.dtype.kind == "f" else np.zeros(n, dtype=bool)
                if not rule.nullable:
                    note(null, f"column {rule.name!r} is null")
                if s.dtype.kind == "f":
                    if rule.dtype == "int":
                        with np.errstate(invalid="ignore"):
                            note(
                                np.isfinite(arr) & (np.floor(arr) != arr),
                                f"column {rule.name!r} is not an integer",
                            )
                        note(_outside_int64(arr), f"column {rule.name!r} is outside int64")
                    else:
                        note(np.isinf(arr), f"column {rule.name!r} is infinite")
                coerced[rule.name] = arr
                continue
            as_is = False
            null = s.isna().to_numpy()
            if not rule.nullable:
                note(null, f"column {rule.name!r} is null")
            if rule.dtype in ("float", "int"):
                values = pd.to_numeric(s, errors="coerce") if s.dtype != bool else s
                if values.dtype == bool:
                    note(~null, f"column {rule.name!r} is not a number")
                arr = values.to_numpy(dtype="float64", na_value=np.nan)
                bad = np.isnan(arr) & ~null
                note(bad, f"column {rule.name!r} is not a number")
                if rule.dtype == "int":
                    with np.errstate(invalid="ignore"):
                        fractional = np.isfinite(arr) & (np.floor(arr) != arr)
                    note(fractional, f"column {rule.name!r} is not an integer")
                    outside = _outside_int64(arr)
                    note(outside, f"column {rule.name!r} is outside int64")
                    if not (null.any() or bad.any() or fractional.any() or outside.any()):
                        arr = arr.astype("int64")
                else:
                    note(np.isinf(arr), f"column {rule.name!r} is infinite")
                coerced[rule.name] = arr
            elif rule.dtype == "bool":
                if s.dtype == bool:
                    coerced[rule.name] = s.to_numpy()
                else:
                    lowered = s.astype("string").str.lower()
                    truth = lowered.map({"true": True, "false": False, "1": True, "0": False})
                    note(truth.isna().to_numpy() & ~null, f"column {rule.name!r} is not a boolean")
                    coerced[rule.name] = truth.to_numpy(dtype=object)
            elif rule.dtype == "datetime":
                parsed = pd.to_datetime(s, errors="coerce")
                note(parsed.isna().to_numpy() & ~null, f"column {rule.name!r} is not a date-time")
                coerced[rule.name] = parsed.to_numpy()
            else:
                obj = s.astype(object).where(~null, None).to_numpy(dtype=object)
                if self.unseen == "reject" and rule.categories:
                    unseen = ~s.astype(str).isin(list(rule.categories)).to_numpy() & ~null
                    note(unseen, f"column {rule.name!r} has a category unseen in training")
                coerced[rule.name] = obj
        if as_is:
            return frame[list(self.names)], reasons
        return pd.DataFrame(coerced, index=frame.index), reasons


def _outside_int64(arr: np.ndarray) -> np.ndarray:
    """Rows of a float array that no int64 holds (inf included; NaN is not outside)."""
    import numpy as np

    with np.errstate(invalid="ignore"):
        return ~np.isnan(arr) & ~((arr >= -(2.0**63)) & (arr < 2.0**63))  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=64)
def _column_index(names: tuple[str, ...]) -> pd.Index:
    """The column labels of a model input frame, built once per signature.

    An object Index: building pandas' string Index (Arrow-backed) for every request, and
    scikit-learn turning it back into an object array to check feature names, cost more
    than a one-row model call.
    """
    import pandas as pd

    return pd.Index(list(names), dtype=object)


def build_frame(rules: Sequence[ColumnRule], columns: Mapping[str, list[Any]]) -> pd.DataFrame:
    """The model input frame from validated JSON columns (one allocation per column).

    Numeric signatures without nulls take a single 2-D float block, the cheapest frame
    pandas can build; other signatures get one typed array per column.
    """
    import numpy as np
    import pandas as pd

    names = [r.name for r in rules]
    if all(r.dtype == "float" for r in rules):
        block = np.array([columns[n] for n in names], dtype=np.float64).T
        return pd.DataFrame(block, columns=_column_index(tuple(names)), copy=False)
    data: dict[str, Any] = {}
    for rule in rules:
        values = columns[rule.name]
        if rule.dtype == "float":
            data[rule.name] = np.array(values, dtype=np.float64)
        elif rule.dtype == "int":
            if None in values:
                data[rule.name] = np.array(values, dtype=np.float64)
            else:
                data[rule.name] = np.array(values, dtype=np.int64)
        elif rule.dtype == "bool":
            data[rule.name] = np.array(values, dtype=object if None in values else bool)
        elif rule.dtype == "datetime":
            # The validator made every value a naive UTC datetime (or None).
            stamps = pd.to_datetime(pd.Series(values, dtype=object))
            if rule.tz is not None:
                stamps = stamps.dt.tz_localize("UTC").dt.tz_convert(rule.tz)
            data[rule.name] = stamps.to_numpy() if rule.tz is None else stamps.array
        else:
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            data[rule.name] = arr
    return pd.DataFrame(data, copy=False)
