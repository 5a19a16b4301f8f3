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

from conveyor.exceptions import SchemaFileError, did_you_mean

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
                low, high = low - pad, high + pad
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
        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    @classmethod
    def from_yaml(cls, source: str | Path) -> Schema:
        """Read a schema from YAML text or a file path.

        Raises:
            SchemaFileError: the YAML does not parse, has an unknown key (the message names
                the line and suggests the close match) or a value of the wrong type.
        """
        text, where = _read_source(source)
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            raise SchemaFileError(f"{where} is not valid YAML: {exc}") from exc
        if node is None or not isinstance(node, yaml.MappingNode):
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
                            f"{column_key.value!r} must be a mapping of settings."
                        )
                    _check_keys(column_node, _COLUMN_KEYS, where, f"column {column_key.value!r}")
        data = yaml.safe_load(text)
        return cls._from_dict(data, where, node)

    @classmethod
    def _from_dict(cls, data: dict[str, Any], where: str, node: yaml.MappingNode) -> Schema:
        version = data.get("version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise SchemaFileError(
                f"{where}: schema version {version!r} is not supported (expected {SCHEMA_VERSION})."
            )
        rows = data.get("row_count") or {}
        columns = {}
        for name, spec in (data.get("columns") or {}).items():
            kind = spec.get("kind")
            if kind not in KINDS:
                line = _line_of(node, ["columns", str(name), "kind"])
                raise SchemaFileError(
                    f"{where}, line {line}: column {name!r} has kind {kind!r}; expected one of "
                    + ", ".join(KINDS)
                    + "."
                    + (did_you_mean(str(kind), list(KINDS)) if isinstance(kind, str) else "")
                )
            try:
                domain = spec.get("domain")
                columns[str(name)] = ColumnSchema(
                    kind=kind,
                    dtype=str(spec.get("dtype", "")),
                    required=bool(spec.get("required", True)),
                    max_null_fraction=float(spec.get("max_null_fraction", 0.0)),
                    min=_number(spec.get("min")),
                    max=_number(spec.get("max")),
                    allow_nan=bool(spec.get("allow_nan", False)),
                    allow_inf=bool(spec.get("allow_inf", False)),
                    domain=None if domain is None else tuple(str(v) for v in domain),
                    max_unseen_fraction=float(spec.get("max_unseen_fraction", 0.0)),
                    drift_threshold=_number(spec.get("drift_threshold")),
                )
            except (TypeError, ValueError) as exc:
                line = _line_of(node, ["columns", str(name)])
                raise SchemaFileError(
                    f"{where}, line {line}: column {name!r} has a value of the wrong type: {exc}."
                ) from exc
        return cls(
            columns,
            None if rows.get("min") is None else int(rows["min"]),
            None if rows.get("max") is None else int(rows["max"]),
            bool(data.get("allow_new_columns", False)),
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


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _read_source(source: str | Path) -> tuple[str, str]:
    if isinstance(source, Path) or ("\n" not in source and source.endswith((".yaml", ".yml"))):
        path = Path(source)
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise SchemaFileError(f"Cannot read schema file {str(path)!r}: {exc}") from exc
    return source, "schema YAML"


def _check_keys(node: yaml.MappingNode, allowed: list[str], where: str, what: str) -> None:
    for key, _value in node.value:
        name = str(key.value)
        if name not in allowed:
            raise SchemaFileError(
                f"{where}, line {key.start_mark.line + 1}: unknown key {name!r} in {what}."
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
