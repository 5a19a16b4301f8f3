"""A model's input signature: column names, dtypes, nullability and categorical domains.

Inferred from the training frame, stored with the model, and applied at serving: the same
signature validates a request (`validate`) and casts JSON-decoded input to the dtypes the
model was trained on (`coerce`), so features are encoded identically in both places.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from conveyor.exceptions import ModelError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

DTYPES = ("int", "float", "bool", "str", "category", "datetime")

# A str column with at most this many distinct training values gets a categorical domain.
MAX_STR_CATEGORIES = 50

MISSING = "missing_column"
WRONG_TYPE = "wrong_type"
UNSEEN_CATEGORY = "unseen_category"
NULL = "null"


@dataclass(frozen=True)
class ColumnSpec:
    """One input column as the model saw it at training time.

    Attributes:
        name: Column name.
        dtype: One of ``int``, ``float``, ``bool``, ``str``, ``category``, ``datetime``.
        nullable: Whether nulls (NaN, None, NaT) may appear; false when training had none.
        categories: The domain of a ``category`` column, or of a low-cardinality ``str``
            column, as strings; None when the column is not categorical.
        pandas_dtype: The exact pandas dtype at training (``int64``, ``Int64``, ...), used
            by `Signature.coerce`.
    """

    name: str
    dtype: str
    nullable: bool = False
    categories: list[str] | None = None
    pandas_dtype: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "nullable": self.nullable,
            "categories": None if self.categories is None else list(self.categories),
            "pandas_dtype": self.pandas_dtype,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSpec:
        dtype = str(data["dtype"])
        if dtype not in DTYPES:
            raise ModelError(
                f"Column {data.get('name')!r} has dtype {dtype!r}; a signature dtype must be "
                "one of " + ", ".join(DTYPES) + "."
            )
        categories = data.get("categories")
        return cls(
            name=str(data["name"]),
            dtype=dtype,
            nullable=bool(data.get("nullable", False)),
            categories=None if categories is None else [str(c) for c in categories],
            pandas_dtype=data.get("pandas_dtype"),
        )


@dataclass(frozen=True)
class Problem:
    """One reason an input frame does not fit a signature.

    Attributes:
        column: The column concerned.
        kind: ``missing_column``, ``wrong_type``, ``unseen_category`` or ``null``.
        message: A sentence naming what was expected and what was received.
    """

    column: str
    kind: str
    message: str


def _kind_of(series: pd.Series) -> str:
    import pandas as pd
    from pandas.api import types as pt

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pt.is_bool_dtype(dtype):
        return "bool"
    if pt.is_integer_dtype(dtype):
        return "int"
    if pt.is_float_dtype(dtype):
        return "float"
    if pt.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pt.is_string_dtype(dtype) or pt.is_object_dtype(dtype):
        values = series.dropna()
        if len(values) and all(isinstance(v, bool) for v in values):
            return "bool"
        return "str"
    raise ModelError(
        f"Column {series.name!r} has dtype {dtype} which a model signature cannot describe. "
        "Supported: integers, floats, booleans, strings, categoricals and datetimes; "
        "convert the column before fitting."
    )


@dataclass(frozen=True)
class Signature:
    """The ordered input columns of a model."""

    columns: list[ColumnSpec] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise ModelError(f"The signature has no column {name!r}." + did_you_mean(name, self.names))

    @classmethod
    def from_frame(
        cls, df: pd.DataFrame, *, max_str_categories: int = MAX_STR_CATEGORIES
    ) -> Signature:
        """Infer the signature of a training frame (features only, in column order).

        Raises:
            ModelError: a column name is not a string, or a dtype cannot be described.
        """
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise ModelError(
                "A signature is inferred from a pandas DataFrame of training features. Got "
                f"{type(df).__name__} instead; wrap arrays with pd.DataFrame(X, columns=...)."
            )
        specs: list[ColumnSpec] = []
        for name in df.columns:
            if not isinstance(name, str):
                raise ModelError(
                    f"Column names of a training frame must be strings. Got {name!r} "
                    f"({type(name).__name__}); rename the columns, e.g. df.columns = "
                    "df.columns.astype(str)."
                )
            series = df[name]
            kind = _kind_of(series)
            categories: list[str] | None = None
            if kind == "category":
                categories = [str(c) for c in series.cat.categories]
            elif kind == "str":
                unique = series.dropna().unique()
                if len(unique) <= max_str_categories:
                    categories = sorted(str(v) for v in unique)
            specs.append(
                ColumnSpec(
                    name=name,
                    dtype=kind,
                    nullable=bool(series.isna().any()),
                    categories=categories,
                    pandas_dtype=(
                        f"category[{series.cat.categories.dtype}]"
                        if kind == "category"
                        else str(series.dtype)
                    ),
                )
            )
        return cls(specs)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [c.to_dict() for c in self.columns]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        return cls([ColumnSpec.from_dict(c) for c in data.get("columns", [])])

    # ------------------------------------------------------------------ validation
    def validate(
        self, df: pd.DataFrame, *, unseen: Literal["reject", "pass"] = "reject"
    ) -> list[Problem]:
        """Every way `df` does not fit this signature; an empty list when it fits.

        Extra columns are not problems (they are ignored by `coerce` and `Model.predict`).

        Args:
            df: Input rows, e.g. a JSON request decoded with ``pd.DataFrame(records)``.
            unseen: ``reject`` reports values outside a categorical domain; ``pass``
                accepts them (encoders fitted with ``handle_unknown`` deal with them).
        """
        if unseen not in ("reject", "pass"):
            raise ModelError(f"unseen must be 'reject' or 'pass'. Got {unseen!r} instead.")
        problems: list[Problem] = []
        present = {str(c) for c in df.columns}
        for spec in self.columns:
            if spec.name not in present:
                problems.append(
                    Problem(
                        spec.name,
                        MISSING,
                        f"Column {spec.name!r} ({spec.dtype}) is missing."
                        + did_you_mean(spec.name, sorted(present - set(self.names))),
                    )
                )
                continue
            series = df[spec.name]
            nulls = series.isna()
            if not spec.nullable and bool(nulls.any()):
                problems.append(
                    Problem(
                        spec.name,
                        NULL,
                        f"Column {spec.name!r} has {int(nulls.sum())} null value(s); it had "
                        "none at training, so the model expects a value in every row.",
                    )
                )
            values = series[~nulls]
            bad = _type_problem(spec, values)
            if bad is not None:
                problems.append(Problem(spec.name, WRONG_TYPE, bad))
                continue
            if unseen == "reject" and spec.categories is not None and len(values):
                known = set(spec.categories)
                strings = values.astype(str)
                unknown = sorted(set(strings[~strings.isin(known)]))
                if unknown:
                    shown = ", ".join(repr(v) for v in unknown[:5])
                    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
                    expected = ", ".join(repr(v) for v in spec.categories[:20])
                    problems.append(
                        Problem(
                            spec.name,
                            UNSEEN_CATEGORY,
                            f"Column {spec.name!r} has value(s) never seen at training: "
                            f"{shown}{more}. Expected one of: {expected}"
                            + (" ..." if len(spec.categories) > 20 else "")
                            + ".",
                        )
                    )
        return problems

    # ------------------------------------------------------------------ coercion
    def coerce(self, df: pd.DataFrame) -> pd.DataFrame:
        """The signature's columns of `df`, in training order, cast to training dtypes.

        Extra columns are dropped. Categorical columns get the training categories, so an
        encoder sees the same category codes as at training.

        Raises:
            ModelError: a column is missing or its values cannot be cast (names both).
        """
        import pandas as pd

        missing = [n for n in self.names if n not in df.columns]
        if missing:
            raise ModelError(
                "The input lacks column(s) the model was trained on: "
                + ", ".join(repr(m) for m in missing)
                + ". Expected columns: "
                + ", ".join(self.names)
                + "."
            )
        out: dict[str, pd.Series] = {}
        for spec in self.columns:
            series = df[spec.name]
            try:
                out[spec.name] = _cast(spec, series)
            except (TypeError, ValueError) as exc:
                raise ModelError(
                    f"Column {spec.name!r} cannot be converted to its training type "
                    f"{spec.dtype} ({spec.pandas_dtype}): {exc}. Send values of that type."
                ) from exc
        return pd.DataFrame(out, index=df.index)


def _type_problem(spec: ColumnSpec, values: pd.Series) -> str | None:
    """A message when non-null `values` cannot be read as `spec.dtype`, else None."""
    import pandas as pd
    from pandas.api import types as pt

    if not len(values):
        return None
    dtype = values.dtype
    got = str(dtype)
    expected = f"Column {spec.name!r} must hold {spec.dtype} values"
    if spec.dtype in ("int", "float"):
        if pt.is_bool_dtype(dtype):
            return f"{expected}. Got booleans instead."
        if pt.is_numeric_dtype(dtype):
            if spec.dtype == "int" and pt.is_float_dtype(dtype):
                fractional = values[(values % 1) != 0]
                if len(fractional):
                    return f"{expected}. Got non-integer number(s) such as {fractional.iloc[0]!r}."
            return None
        sample = [v for v in values if isinstance(v, (bool, str)) or v is None][:1]
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.isna().any() or sample:
            bad = values[numeric.isna()] if numeric.isna().any() else pd.Series(sample)
            return f"{expected}. Got {bad.iloc[0]!r} ({type(bad.iloc[0]).__name__})."
        return None
    if spec.dtype == "bool":
        if pt.is_bool_dtype(dtype):
            return None
        odd = [v for v in values if not isinstance(v, bool) and v not in (0, 1)]
        if odd:
            return f"{expected} (true/false). Got {odd[0]!r} ({type(odd[0]).__name__})."
        return None
    if spec.dtype in ("str", "category"):
        if isinstance(dtype, pd.CategoricalDtype) or pt.is_string_dtype(dtype):
            if spec.categories is None and pt.is_object_dtype(dtype):
                odd = [v for v in values if not isinstance(v, str)]
                if odd:
                    return f"{expected}. Got {odd[0]!r} ({type(odd[0]).__name__})."
            return None
        if spec.categories is not None:
            # Numbers are fine when the domain holds their string forms (e.g. codes 1, 2).
            return None
        return f"{expected}. Got values of dtype {got}."
    if spec.dtype == "datetime":
        if pt.is_datetime64_any_dtype(dtype):
            return None
        parsed = pd.to_datetime(values, errors="coerce", format="mixed")
        if parsed.isna().any():
            bad = values[parsed.isna()]
            return f"{expected} (ISO 8601 text). Got {bad.iloc[0]!r}."
        return None
    return None


def _cast(spec: ColumnSpec, series: pd.Series) -> pd.Series:
    import numpy as np
    import pandas as pd

    target = spec.pandas_dtype
    if spec.dtype == "category":
        trained = pd.CategoricalDtype(_typed_categories(spec), ordered=False)
        kind = type(trained.categories[0]) if len(trained.categories) else str
        values = series.astype(object).map(lambda v: None if _isnull(v) else _as(kind, v))
        # A category unseen at training (allowed with unseen="pass") reaches the model as a
        # missing value: the training categories fix the encoding, as they did at training.
        values = values.where(values.isin(trained.categories), None)
        return values.astype(trained)
    if spec.dtype == "str":
        return series.map(lambda v: v if _isnull(v) else str(v)).astype(target or object)
    if spec.dtype == "int":
        if series.isna().any() or (target and target[0] in "IU"):
            return series.astype(target if target and target[0] in "IU" else "Int64")
        return series.astype(target or np.int64)
    if spec.dtype == "float":
        return pd.to_numeric(series, errors="raise").astype(target or np.float64)
    if spec.dtype == "bool":
        if series.isna().any():
            return series.astype("boolean")
        return series.astype(target if target in ("bool", "boolean") else bool)
    if spec.dtype == "datetime":
        parsed = pd.to_datetime(series, format="mixed") if series.dtype == object else series
        if target and target.startswith("datetime64"):
            return pd.to_datetime(parsed).astype(target)
        return pd.to_datetime(parsed)
    return series


def _isnull(value: Any) -> bool:
    import pandas as pd

    if isinstance(value, (list, dict, tuple)):
        return False
    return value is None or bool(pd.isna(value))


def _as(kind: type, value: Any) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        return value


def _typed_categories(spec: ColumnSpec) -> list[Any]:
    """The training categories with their original type (recorded as ``category[int64]``)."""
    raw = list(spec.categories or [])
    inner = (spec.pandas_dtype or "").partition("[")[2].rstrip("]")
    if inner.startswith(("int", "uint", "Int", "UInt")):
        return [int(v) for v in raw]
    if inner.startswith(("float", "Float")):
        return [float(v) for v in raw]
    return raw
