"""`Schema`: what a table is expected to look like, inferred from a Profile, edited as YAML.

Example of the YAML form::

    version: 1
    row_count: {min: 1, max: null}
    columns:
      age:
        kind: numeric
        dtype: int64
        required: true
        max_null_fraction: 0.0
        min: 18
        max: 99
      country:
        kind: categorical
        dtype: string
        domain: [DE, FR, US]
        max_unseen_fraction: 0.01
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from conveyor._internal.files import write_atomic
from conveyor.exceptions import DataError, SchemaFileError, did_you_mean

if TYPE_CHECKING:
    from conveyor.data.profile import Profile

SCHEMA_VERSION = 1
KINDS = ("numeric", "categorical", "boolean", "datetime", "text")


@dataclass(frozen=True)
class ColumnSchema:
    """Expectations for one column.

    Attributes:
        kind: numeric, categorical, boolean, datetime or text.
        dtype: The Arrow type seen at inference (a change within a kind is a warning).
        required: The column must be present.
        max_null_fraction: Largest allowed fraction of nulls (0 means no nulls).
        min: Smallest allowed value (numeric and datetime as epoch seconds), or None.
        max: Largest allowed value, or None.
        allow_nan: NaN values are allowed.
        allow_inf: +/-Inf values are allowed.
        domain: Known categories (categorical columns), or None for any value.
        max_unseen_fraction: Allowed fraction of values outside `domain`.
        drift_threshold: Largest allowed distance to the reference profile (L-infinity for
            categorical, Jensen-Shannon divergence for numeric), or None for the default.
    """

    kind: str
    dtype: str = ""
    required: bool = True
    max_null_fraction: float = 0.0
    min: float | None = None
    max: float | None = None
    allow_nan: bool = False
    allow_inf: bool = False
    domain: tuple[str, ...] | None = None
    max_unseen_fraction: float = 0.0
    drift_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise DataError(
                f"A column's min ({self.min:g}) is above its max ({self.max:g}); swap them."
            )

    def to_yaml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "dtype": self.dtype, "required": self.required}
        out["max_null_fraction"] = self.max_null_fraction
        if self.kind in ("numeric", "datetime"):
            out["min"] = self.min
            out["max"] = self.max
        if self.kind == "numeric":
            out["allow_nan"] = self.allow_nan
            out["allow_inf"] = self.allow_inf
        if self.domain is not None:
            out["domain"] = list(self.domain)
            out["max_unseen_fraction"] = self.max_unseen_fraction
        if self.drift_threshold is not None:
            out["drift_threshold"] = self.drift_threshold
        return out


_COLUMN_KEYS = [f.name for f in fields(ColumnSchema)]
_TOP_KEYS = ["version", "row_count", "columns", "allow_new_columns"]
_ROW_KEYS = ["min", "max"]


@dataclass(frozen=True)
class Schema:
    """Expected columns and row-count bounds of a table.

    Attributes:
        columns: Expectations per column name.
        min_rows: Fewest rows allowed (None: no bound).
        max_rows: Most rows allowed (None: no bound).
        allow_new_columns: Columns not in the schema are fine (else a warning).
    """

    __conveyor_artifact__: ClassVar[bool] = True

    columns: dict[str, ColumnSchema] = field(default_factory=dict)
    min_rows: int | None = None
    max_rows: int | None = None
    allow_new_columns: bool = False

    def __post_init__(self) -> None:
        low, high = self.min_rows, self.max_rows
        if low is not None and high is not None and low > high:
            raise DataError(
                f"The schema's min_rows ({low}) is above its max_rows ({high}); swap them."
            )

    @classmethod
    def infer(
        cls,
        profile: Profile,
        *,
        max_domain_size: int = 200,
        unseen_tolerance: float = 0.01,
        null_slack: float = 0.01,
        row_count_tolerance: float | None = None,
        range_margin: float = 0.1,
    ) -> Schema:
        """A schema that the profiled table satisfies, to review and edit.

        Args:
            profile: Profile of a table known to be good (e.g. the training data).
            max_domain_size: Categorical columns with more categories get no domain.
            unseen_tolerance: Allowed fraction of values outside the inferred domain.
            null_slack: Added to the observed null fraction of columns that have nulls.
            row_count_tolerance: If given, row-count bounds are the profiled count times
                (1 - tolerance, 1 + tolerance); otherwise only "at least one row".
            range_margin: Numeric ranges are the observed [min, max] widened by this
                fraction of their span on each side, so that a new sample from the same
                distribution does not fail on its tails. 0 keeps the observed range.
                The range of a column with no negative value never widens below 0.
        """
        columns = {}
        for name, column in profile.columns.items():
            kind = column.kind
            null_fraction = column.null_fraction
            max_null = (
                0.0 if null_fraction == 0 else min(1.0, _round_up(null_fraction + null_slack))
            )
            domain = None
            if kind in ("categorical", "boolean") and column.distinct_count is not None:
                values = sorted(column.frequencies())
                if len(values) <= max_domain_size:
                    domain = tuple(values)
            low, high = column.min, column.max
            if low is not None and high is not None and kind == "numeric" and range_margin:
                pad = (high - low) * range_margin
                # A column never seen negative (counts, amounts, ages) stays >= 0: widening
                # its range below zero would let impossible values pass.
                low, high = (low - pad if low - pad >= 0 or low < 0 else 0.0), high + pad
                if column.dtype.startswith(("int", "uint")):
                    low, high = float(math.floor(low)), float(math.ceil(high))
            columns[name] = ColumnSchema(
                kind=kind,
                dtype=column.dtype,
                required=True,
                max_null_fraction=max_null,
                min=low if kind in ("numeric", "datetime") else None,
                max=high if kind in ("numeric", "datetime") else None,
                allow_nan=column.nan_count > 0,
                allow_inf=column.inf_count > 0,
                domain=domain,
                max_unseen_fraction=unseen_tolerance if domain is not None else 0.0,
            )
        min_rows: int | None = 1
        max_rows: int | None = None
        if row_count_tolerance is not None:
            min_rows = math.floor(profile.row_count * (1 - row_count_tolerance))
            max_rows = math.ceil(profile.row_count * (1 + row_count_tolerance))
        return cls(columns, min_rows, max_rows)

    # ------------------------------------------------------------ YAML
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SCHEMA_VERSION,
            "row_count": {"min": self.min_rows, "max": self.max_rows},
            "allow_new_columns": self.allow_new_columns,
            "columns": {name: c.to_yaml_dict() for name, c in self.columns.items()},
        }

    def to_yaml(self) -> str:
        header = (
            "# conveyor schema: review and edit, then commit. Keys per column: "
            + ", ".join(_COLUMN_KEYS)
            + ".\n"
        )
        return header + str(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True))

    def save(self, path: str | Path) -> None:
        """Write the YAML form to `path`, atomically (never a partial file).

        Raises:
            SchemaFileError: the file cannot be written (its folder is missing, ...).
        """
        try:
            write_atomic(path, self.to_yaml().encode("utf-8"))
        except OSError as exc:
            raise SchemaFileError(
                f"Cannot write schema file {str(path)!r}: {exc.strerror or exc}."
            ) from None

    @classmethod
    def from_yaml(cls, source: str | Path) -> Schema:
        """Read a schema from YAML text or a file path.

        Raises:
            SchemaFileError: the YAML does not parse, has an unknown key (the message names
                the line and suggests the close match), a value of the wrong type or out of
                range, or a minimum above its maximum. The message is one line.
        """
        text, where = _read_source(source)
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text) if node is not None else None
        except yaml.YAMLError as exc:
            raise SchemaFileError(f"{where} is not valid YAML: {_yaml_problem(exc)}") from None
        if not isinstance(node, yaml.MappingNode) or not isinstance(data, dict):
            raise SchemaFileError(
                f"{where} must be a mapping with a 'columns' key. See `conveyor data "
                "infer-schema` for an example."
            )
        _check_keys(node, _TOP_KEYS, where, "the top level")
        for key, value in node.value:
            if key.value == "row_count" and isinstance(value, yaml.MappingNode):
                _check_keys(value, _ROW_KEYS, where, "row_count")
            if key.value == "columns" and isinstance(value, yaml.MappingNode):
                for column_key, column_node in value.value:
                    if not isinstance(column_node, yaml.MappingNode):
                        raise SchemaFileError(
                            f"{where}, line {column_node.start_mark.line + 1}: column "
                            f"{_short(column_key.value)} must be a mapping of settings."
                        )
                    _check_keys(
                        column_node, _COLUMN_KEYS, where, f"column {_short(column_key.value)}"
                    )
        return cls._from_dict(data, _Reader(where, node))

    @classmethod
    def _from_dict(cls, data: dict[str, Any], read: _Reader) -> Schema:
        version = data.get("version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise read.error(
                ["version"],
                f"schema version {_short(version)} is not supported (expected {SCHEMA_VERSION})",
            )
        rows = data.get("row_count")
        if rows is None:
            rows = {}
        if not isinstance(rows, dict):
            raise read.error(
                ["row_count"],
                f"row_count must be a mapping like {{min: 1, max: null}}; got {_short(rows)}",
            )
        min_rows = read.count(rows.get("min"), ["row_count", "min"])
        max_rows = read.count(rows.get("max"), ["row_count", "max"])
        if min_rows is not None and max_rows is not None and min_rows > max_rows:
            raise read.error(
                ["row_count"], f"row_count min ({min_rows}) is above its max ({max_rows})"
            )
        specs = data.get("columns")
        if specs is None:
            specs = {}
        if not isinstance(specs, dict):
            raise read.error(
                ["columns"],
                "columns must be a mapping of column name to settings (name: {kind: "
                f"numeric, ...}}); got {_short(specs)}",
            )
        columns: dict[str, ColumnSchema] = {}
        for name, spec in specs.items():
            if not isinstance(name, str) or not name:
                raise read.error(
                    ["columns"], f"column names must be non-empty strings; got {_short(name)}"
                )
            columns[name] = read.column(name, spec)
        return cls(
            columns,
            min_rows,
            max_rows,
            read.flag(data, "allow_new_columns", False, ["allow_new_columns"]),
        )

    # ------------------------------------------------------------ artifact protocol
    def to_bytes(self) -> bytes:
        return self.to_yaml().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Schema:
        return cls.from_yaml(data.decode())

    def artifact_summary(self) -> dict[str, Any]:
        return {"columns": len(self.columns)}

    def as_plain(self) -> dict[str, Any]:
        return {name: asdict(column) for name, column in self.columns.items()}


def _round_up(value: float) -> float:
    return math.ceil(value * 1000) / 1000


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: where, then what."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return " ".join(str(exc).split())


class _Reader:
    """Typed reads of schema values; every error names the file, the line and the key."""

    def __init__(self, where: str, node: yaml.MappingNode) -> None:
        self.where = where
        self.node = node

    def error(self, path: list[str], problem: str) -> SchemaFileError:
        end = "" if problem.endswith((".", "?")) else "."
        return SchemaFileError(f"{self.where}, line {_line_of(self.node, path)}: {problem}{end}")

    def count(self, value: Any, path: list[str]) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(
                path, f"{'.'.join(path)} must be a whole number >= 0 or null; got {_short(value)}"
            )
        return value

    def flag(self, spec: dict[str, Any], key: str, default: bool, path: list[str]) -> bool:
        value = spec.get(key, default)
        if not isinstance(value, bool):
            raise self.error(path, f"{key} must be true or false; got {_short(value)}")
        return value

    def number(
        self,
        spec: dict[str, Any],
        key: str,
        path: list[str],
        *,
        low: float | None = None,
        high: float | None = None,
        infinite: bool = False,
    ) -> float | None:
        value = spec.get(key)
        if value is None:
            return None
        bound = (
            f" between {low:g} and {high:g}"
            if low is not None and high is not None
            else f" >= {low:g}"
            if low is not None
            else ""
        )
        problem = f"{key} must be a number{bound} or null; got {_short(value)}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(path, problem)
        try:
            number = float(value)
        except OverflowError:
            raise self.error(path, problem) from None
        if math.isnan(number) or (math.isinf(number) and not infinite):
            raise self.error(path, problem)
        if (low is not None and number < low) or (high is not None and number > high):
            raise self.error(path, problem)
        return number

    def column(self, name: str, spec: Any) -> ColumnSchema:
        at = ["columns", name]
        if not isinstance(spec, dict):
            raise self.error(at, f"column {name!r} must be a mapping of settings")
        kind = spec.get("kind")
        if not isinstance(kind, str) or kind not in KINDS:
            raise self.error(
                [*at, "kind"],
                f"column {name!r} has kind {_short(kind)}; expected one of "
                + ", ".join(KINDS)
                + "."
                + (did_you_mean(kind, list(KINDS)) if isinstance(kind, str) else ""),
            )
        dtype = spec.get("dtype", "")
        if not isinstance(dtype, str):
            raise self.error([*at, "dtype"], f"dtype must be a string; got {_short(dtype)}")
        domain = spec.get("domain")
        if domain is not None and (
            not isinstance(domain, list)
            or not all(isinstance(v, str | int | float | bool) for v in domain)
        ):
            raise self.error(
                [*at, "domain"], f"domain must be a list of values; got {_short(domain)}"
            )

        def num(key: str, **bounds: Any) -> float | None:
            return self.number(spec, key, [*at, key], **bounds)

        low, high = num("min", infinite=True), num("max", infinite=True)
        if low is not None and high is not None and low > high:
            raise self.error(at, f"column {name!r} has min {low:g} above its max {high:g}")
        return ColumnSchema(
            kind=kind,
            dtype=dtype,
            required=self.flag(spec, "required", True, [*at, "required"]),
            max_null_fraction=num("max_null_fraction", low=0.0, high=1.0) or 0.0,
            min=low,
            max=high,
            allow_nan=self.flag(spec, "allow_nan", False, [*at, "allow_nan"]),
            allow_inf=self.flag(spec, "allow_inf", False, [*at, "allow_inf"]),
            domain=None if domain is None else tuple(str(v) for v in domain),
            max_unseen_fraction=num("max_unseen_fraction", low=0.0, high=1.0) or 0.0,
            drift_threshold=num("drift_threshold", low=0.0),
        )


def _read_source(source: str | Path) -> tuple[str, str]:
    if isinstance(source, Path) or ("\n" not in source and source.endswith((".yaml", ".yml"))):
        path = Path(source)
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise SchemaFileError(
                f"Cannot read schema file {str(path)!r}: {exc.strerror or exc}."
            ) from None
        except UnicodeDecodeError as exc:
            raise SchemaFileError(
                f"Schema file {str(path)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8."
            ) from None
    return source, "schema YAML"


def _check_keys(node: yaml.MappingNode, allowed: list[str], where: str, what: str) -> None:
    for key, _value in node.value:
        name = key.value if isinstance(key.value, str) else repr(key.value)
        if name not in allowed:
            raise SchemaFileError(
                f"{where}, line {key.start_mark.line + 1}: unknown key {_short(name)} in {what}."
                + did_you_mean(name, allowed)
                + " Allowed keys: "
                + ", ".join(allowed)
                + "."
            )


def _line_of(node: yaml.Node, path: list[str]) -> int:
    current = node
    for part in path:
        if not isinstance(current, yaml.MappingNode):
            break
        for key, value in current.value:
            if str(key.value) == part:
                current = value
                break
    return int(current.start_mark.line) + 1


__all__ = ["ColumnSchema", "Schema"]
