"""Validation: compare a table (through its Profile) with a Schema and a reference Profile.

Anomalies follow TensorFlow Data Validation's vocabulary: missing / new column, type
change, null fraction, out of range, NaN / Inf, unseen categories, row count and drift.
Each has a severity; errors make `validate` (the pipeline step) stop the run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from conveyor.core.step import step
from conveyor.data.profile import ColumnProfile, Profile
from conveyor.data.schema import ColumnSchema, Schema
from conveyor.exceptions import DataError, ValidationFailedError

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

Severity = Literal["error", "warning"]

# Default drift thresholds: L-infinity distance between category frequencies, and
# Jensen-Shannon divergence (log base 2, in [0, 1]) between binned numeric distributions.
DEFAULT_CATEGORICAL_DRIFT = 0.1
DEFAULT_NUMERIC_DRIFT = 0.1
DRIFT_BINS = 20

# A summary lists every error and fills up to this many items with warnings.
SUMMARY_ITEMS = 5

# Arrow types that differ only in their physical layout (offset width, views, unit) stand
# for the same logical type: a pipeline round trip through pandas or Parquet turns
# string into large_string, and that is no change of the data.
_LOGICAL = (
    (re.compile(r"\b(?:large_string|large_utf8|utf8|string_view)\b"), "string"),
    (re.compile(r"\b(?:large_binary|binary_view)\b"), "binary"),
    (re.compile(r"\b(?:large_list_view|large_list|list_view)<"), "list<"),
    (re.compile(r"\blist<(?:item|element): "), "list<"),  # Parquet names the item "element"
    (re.compile(r"\btimestamp\[(?:s|ms|us|ns)(?:, )?"), "timestamp["),
    (re.compile(r"\b(?:date32\[day\]|date64\[ms\])"), "date"),
    (re.compile(r"\bduration\[(?:s|ms|us|ns)\]"), "duration"),
    (re.compile(r"\bdecimal(?:32|64|128|256)\("), "decimal("),
)


def logical_dtype(dtype: str) -> str:
    """The logical type of an Arrow type name: ``large_string`` -> ``string``,
    ``large_list<item: int64>`` -> ``list<item: int64>``, ``timestamp[ns, tz=UTC]`` ->
    ``timestamp[tz=UTC]``; dtypes with the same logical type compare equal in validation.
    """
    out = dtype.strip()
    for pattern, replacement in _LOGICAL:
        out = pattern.sub(replacement, out)
    return out


_FAMILY_OF_KIND = {
    "numeric": "numeric",
    "boolean": "boolean",
    "datetime": "datetime",
    "categorical": "string",
    "text": "string",
}


@dataclass(frozen=True)
class Anomaly:
    """One finding of validation.

    Attributes:
        column: Column name, or "" for table-level findings (row count).
        kind: missing_column, new_column, type_change, dtype_change, null_fraction,
            out_of_range, nan, inf, unseen_categories, row_count or drift.
        severity: "error" or "warning".
        message: What was expected, what was found.
        value: The measured value (fraction, distance, count), when there is one.
        threshold: The bound it was compared with, when there is one.
    """

    column: str
    kind: str
    severity: Severity
    message: str
    value: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class Thresholds:
    """Drift thresholds and severities.

    Attributes:
        categorical: Default L-infinity threshold for categorical columns.
        numeric: Default Jensen-Shannon threshold for numeric columns.
        columns: Per-column thresholds, overriding the defaults and the schema.
        drift_severity: Severity of drift anomalies.
        new_column_severity: Severity of columns the schema does not know.
    """

    categorical: float = DEFAULT_CATEGORICAL_DRIFT
    numeric: float = DEFAULT_NUMERIC_DRIFT
    columns: Mapping[str, float] = field(default_factory=dict)
    drift_severity: Severity = "error"
    new_column_severity: Severity = "warning"

    @classmethod
    def coerce(cls, value: Thresholds | Mapping[str, Any] | float | None) -> Thresholds:
        if value is None:
            return cls()
        if isinstance(value, Thresholds):
            return value
        if isinstance(value, (int, float)):
            return cls(categorical=float(value), numeric=float(value))
        known = {"categorical", "numeric", "columns", "drift_severity", "new_column_severity"}
        unknown = set(value) - known
        if unknown:
            # A plain {column: threshold} mapping.
            if all(isinstance(v, (int, float)) for v in value.values()):
                return cls(columns={str(k): float(v) for k, v in value.items()})
            from conveyor.exceptions import did_you_mean

            name = sorted(unknown)[0]
            raise DataError(
                f"Unknown threshold setting {name!r}." + did_you_mean(name, sorted(known))
            )
        return cls(**dict(value))


class ValidationReport:
    """Anomalies found in a table, with the profiles they were computed from."""

    __conveyor_artifact__: ClassVar[bool] = True

    def __init__(
        self,
        anomalies: list[Anomaly],
        profile: Profile,
        reference: Profile | None = None,
        schema: Schema | None = None,
        drift: dict[str, float] | None = None,
    ) -> None:
        # Errors first (stable within each severity), everywhere the report is shown.
        self.anomalies = sorted(anomalies, key=lambda a: a.severity != "error")
        self.profile = profile
        self.reference = reference
        self.schema = schema
        self.drift = drift or {}

    @property
    def ok(self) -> bool:
        """No anomaly of severity error."""
        return not self.errors

    @property
    def errors(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == "error"]

    @property
    def warnings(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.severity == "warning"]

    def summary(self) -> str:
        """One paragraph: every error, then the first warnings (only warnings are cut)."""
        if not self.anomalies:
            return f"OK: {self.profile.row_count} rows, {len(self.profile)} columns, no anomalies."
        shown = self.errors + self.warnings[: max(0, SUMMARY_ITEMS - len(self.errors))]
        left = len(self.anomalies) - len(shown)
        return (
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s) in "
            f"{self.profile.row_count} rows: "
            + "; ".join(f"{a.severity}: {a.column or '<table>'}: {a.message}" for a in shown)
            + (f"; and {left} more warning(s)" if left else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "row_count": self.profile.row_count,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "anomalies": [asdict(a) for a in self.anomalies],
            "drift": self.drift,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_html(self) -> str:
        """A self-contained HTML page with the anomalies and per-column charts."""
        from conveyor.data.report import render_html

        return render_html(self)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.table import Table

        table = Table(title="Validation: " + ("OK" if self.ok else "FAILED"), title_justify="left")
        for name in ("severity", "column", "anomaly", "message"):
            table.add_column(name)
        for anomaly in self.anomalies:
            style = "red" if anomaly.severity == "error" else "yellow"
            table.add_row(
                f"[{style}]{anomaly.severity}[/]",
                anomaly.column or "<table>",
                anomaly.kind,
                anomaly.message,
            )
        yield table
        yield self.summary()

    def __repr__(self) -> str:
        return f"<ValidationReport ok={self.ok} anomalies={len(self.anomalies)}>"

    # ------------------------------------------------------------ artifact protocol
    def to_bytes(self) -> bytes:
        import base64

        payload = self.to_dict()
        payload["profile"] = base64.b64encode(self.profile.to_bytes()).decode()
        if self.reference is not None:
            payload["reference"] = base64.b64encode(self.reference.to_bytes()).decode()
        if self.schema is not None:
            payload["schema"] = self.schema.to_yaml()
        return json.dumps(payload).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ValidationReport:
        import base64

        payload = json.loads(data)
        reference = payload.get("reference")
        schema = payload.get("schema")
        return cls(
            [Anomaly(**a) for a in payload["anomalies"]],
            Profile.from_bytes(base64.b64decode(payload["profile"])),
            Profile.from_bytes(base64.b64decode(reference)) if reference else None,
            Schema.from_yaml(schema) if schema else None,
            payload.get("drift"),
        )

    def artifact_summary(self) -> dict[str, Any]:
        return {"ok": self.ok, "errors": len(self.errors), "warnings": len(self.warnings)}


# ---------------------------------------------------------------- distances
def js_divergence(p: list[float] | np.ndarray, q: list[float] | np.ndarray) -> float:
    """Jensen-Shannon divergence (log base 2, in [0, 1]) of two discrete distributions."""
    a = np.asarray(p, dtype=float)
    b = np.asarray(q, dtype=float)
    a = a / a.sum() if a.sum() > 0 else a
    b = b / b.sum() if b.sum() > 0 else b
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    return max(0.0, 0.5 * kl(a) + 0.5 * kl(b))


def numeric_split_points(reference: ColumnProfile, bins: int = DRIFT_BINS) -> list[float]:
    """Split points at the reference's quantiles, so each bin holds ~1/bins of its mass."""
    qs = [i / bins for i in range(1, bins)]
    points = sorted(set(reference.quantiles(qs)))
    return points


def numeric_drift(current: ColumnProfile, reference: ColumnProfile) -> float | None:
    """Jensen-Shannon divergence between the binned distributions (None if not computable)."""
    if current.finite_count == 0 or reference.finite_count == 0:
        return None
    points = numeric_split_points(reference)
    if not points:
        points = [reference.min or 0.0]
    return js_divergence(current.pmf(points), reference.pmf(points))


def categorical_drift(current: ColumnProfile, reference: ColumnProfile) -> float | None:
    """L-infinity distance between the category frequencies (None if not computable)."""
    a = current.category_frequencies()
    b = reference.category_frequencies()
    if not a and not b:
        return None
    return max(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


# ---------------------------------------------------------------- validation
def _as_profile(data: Any) -> Profile:
    if isinstance(data, Profile):
        return data
    return Profile.from_frame(data)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}"


def validate_frame(
    data: Any,
    schema: Schema | str | Path | None = None,
    reference: Profile | Any | None = None,
    thresholds: Thresholds | Mapping[str, Any] | float | None = None,
) -> ValidationReport:
    """Check a table against a schema and/or a reference profile.

    Args:
        data: A DataFrame, Arrow table or a Profile of the table.
        schema: A Schema, or the path of a schema YAML.
        reference: A Profile (or table) to compare distributions with.
        thresholds: Drift thresholds: a Thresholds, a number for every column, a mapping
            {column: threshold} or a mapping of Thresholds fields.

    Raises:
        DataError: the data cannot be profiled or the arguments are invalid.
        SchemaFileError: the schema file cannot be read.
    """
    if schema is not None and not isinstance(schema, Schema):
        schema = Schema.from_yaml(schema if isinstance(schema, Path) else str(schema))
    profile = _as_profile(data)
    ref = None if reference is None else _as_profile(reference)
    limits = Thresholds.coerce(thresholds)
    anomalies: list[Anomaly] = []
    drift: dict[str, float] = {}
    if schema is not None:
        anomalies.extend(_check_schema(profile, schema, limits))
    if ref is not None:
        for name, column in profile.columns.items():
            if name not in ref.columns:
                continue
            expected = schema.columns.get(name) if schema is not None else None
            distance, threshold, what = _drift(column, ref.columns[name], expected, limits)
            if distance is None:
                continue
            drift[name] = distance
            if distance > threshold:
                anomalies.append(
                    Anomaly(
                        name,
                        "drift",
                        limits.drift_severity,
                        f"{what} to the reference is {distance:.4f}, above {threshold:g}",
                        distance,
                        threshold,
                    )
                )
        if schema is None:
            anomalies.extend(_check_against_reference(profile, ref))
    from conveyor.data.renames import suggest_renames

    anomalies = suggest_renames(anomalies, profile, ref, schema, limits)
    return ValidationReport(anomalies, profile, ref, schema, drift)


def _drift(
    column: ColumnProfile,
    reference: ColumnProfile,
    expected: ColumnSchema | None,
    limits: Thresholds,
) -> tuple[float | None, float, str]:
    kind = reference.kind
    if column.family != reference.family:
        return None, 0.0, ""
    threshold = limits.columns.get(column.name)
    if threshold is None and expected is not None:
        threshold = expected.drift_threshold
    if kind in ("numeric", "datetime"):
        value = numeric_drift(column, reference)
        return value, threshold if threshold is not None else limits.numeric, "Jensen-Shannon"
    if kind in ("categorical", "boolean"):
        value = categorical_drift(column, reference)
        limit = threshold if threshold is not None else limits.categorical
        return value, limit, "L-infinity distance"
    return None, 0.0, ""


def _check_against_reference(profile: Profile, reference: Profile) -> list[Anomaly]:
    """Structural checks when only a reference profile is given."""
    out = []
    for name in reference.columns:
        if name not in profile.columns:
            out.append(Anomaly(name, "missing_column", "error", "column is missing"))
    for name, column in profile.columns.items():
        ref = reference.columns.get(name)
        if ref is None:
            out.append(Anomaly(name, "new_column", "warning", "column is not in the reference"))
        elif column.family not in (ref.family, "null") and ref.family != "null":
            out.append(
                Anomaly(
                    name,
                    "type_change",
                    "error",
                    f"type changed from {ref.dtype} ({ref.kind}) to {column.dtype} ({column.kind})",
                )
            )
    return out


def _check_schema(profile: Profile, schema: Schema, limits: Thresholds) -> list[Anomaly]:
    out: list[Anomaly] = []
    rows = profile.row_count
    if schema.min_rows is not None and rows < schema.min_rows:
        out.append(
            Anomaly(
                "",
                "row_count",
                "error",
                f"{rows} rows, expected at least {schema.min_rows}",
                rows,
                schema.min_rows,
            )
        )
    if schema.max_rows is not None and rows > schema.max_rows:
        out.append(
            Anomaly(
                "",
                "row_count",
                "error",
                f"{rows} rows, expected at most {schema.max_rows}",
                rows,
                schema.max_rows,
            )
        )
    for name, expected in schema.columns.items():
        column = profile.columns.get(name)
        if column is None:
            out.append(
                Anomaly(
                    name,
                    "missing_column",
                    "error" if expected.required else "warning",
                    f"{'required ' if expected.required else ''}column is missing",
                )
            )
            continue
        out.extend(_check_column(column, expected))
    if not schema.allow_new_columns:
        for name in profile.columns:
            if name not in schema.columns:
                out.append(
                    Anomaly(
                        name,
                        "new_column",
                        limits.new_column_severity,
                        "column is not in the schema (add it, or set allow_new_columns)",
                    )
                )
    return out


def _check_column(column: ColumnProfile, expected: ColumnSchema) -> list[Anomaly]:
    out: list[Anomaly] = []
    name = column.name
    family = _FAMILY_OF_KIND.get(expected.kind, "string")
    if column.family not in (family, "null"):
        return [
            Anomaly(
                name,
                "type_change",
                "error",
                f"expected {expected.kind} ({expected.dtype}), found {column.kind} "
                f"({column.dtype})",
            )
        ]
    if (
        expected.dtype
        and column.family != "null"
        and logical_dtype(column.dtype) != logical_dtype(expected.dtype)
    ):
        out.append(
            Anomaly(
                name,
                "dtype_change",
                "warning",
                f"dtype changed from {expected.dtype} to {column.dtype}",
            )
        )
    fraction = column.null_fraction
    if fraction > expected.max_null_fraction:
        out.append(
            Anomaly(
                name,
                "null_fraction",
                "error",
                f"{fraction:.2%} nulls ({column.null_count} of {column.count}), at most "
                f"{expected.max_null_fraction:.2%} allowed",
                fraction,
                expected.max_null_fraction,
            )
        )
    if column.nan_count and not expected.allow_nan:
        out.append(
            Anomaly(
                name,
                "nan",
                "error",
                f"{column.nan_count} NaN values, none allowed",
                column.nan_count,
                0,
            )
        )
    if column.inf_count and not expected.allow_inf:
        out.append(
            Anomaly(
                name,
                "inf",
                "error",
                f"{column.inf_count} Inf values, none allowed",
                column.inf_count,
                0,
            )
        )
    if expected.min is not None and column.min is not None and column.min < expected.min:
        out.append(
            Anomaly(
                name,
                "out_of_range",
                "error",
                f"minimum {_fmt(column.min)} is below the allowed {_fmt(expected.min)}",
                column.min,
                expected.min,
            )
        )
    if expected.max is not None and column.max is not None and column.max > expected.max:
        out.append(
            Anomaly(
                name,
                "out_of_range",
                "error",
                f"maximum {_fmt(column.max)} is above the allowed {_fmt(expected.max)}",
                column.max,
                expected.max,
            )
        )
    if expected.domain is not None and column.valid_count:
        known = set(expected.domain)
        counts = column.frequencies()
        unseen = {k: v for k, v in counts.items() if k not in known}
        # Values the frequent-items sketch dropped are rare; count them as unseen only
        # when the sketch is exact (otherwise the estimate stays a lower bound).
        fraction = sum(unseen.values()) / column.valid_count
        if fraction > expected.max_unseen_fraction:
            examples = ", ".join(
                repr(k) for k, _ in sorted(unseen.items(), key=lambda kv: -kv[1])[:5]
            )
            out.append(
                Anomaly(
                    name,
                    "unseen_categories",
                    "error",
                    f"{fraction:.2%} of values are outside the domain (e.g. {examples}), at "
                    f"most {expected.max_unseen_fraction:.2%} allowed",
                    fraction,
                    expected.max_unseen_fraction,
                )
            )
    return out


# ---------------------------------------------------------------- pipeline step
@step(name="validate")
def validate(
    data: Any,
    schema: Any = None,
    reference: Any = None,
    thresholds: Any = None,
) -> ValidationReport:
    """Pipeline step: validate `data`; stop the run when there are errors.

    `schema` may be a Schema or a YAML path; `reference` a Profile, a table, or a dataset
    reference such as ``"customers@3"`` whose stored profile is used (stores from settings).
    The report is the step's output and, when the step fails, is logged as the artifact
    ``validation_report`` first, so the failed run still shows it.

    Raises:
        ValidationFailedError: anomalies of severity error were found.
    """
    from conveyor.core.context import current_context, log_artifact, log_metrics

    if isinstance(reference, str):
        reference = _load_reference(reference)
    report = validate_frame(data, schema=schema, reference=reference, thresholds=thresholds)
    context = current_context()
    if context is not None:
        log_metrics(
            {"validation.errors": len(report.errors), "validation.warnings": len(report.warnings)}
        )
        if not report.ok and context.save_artifact is not None:
            log_artifact("validation_report", report)
    if not report.ok:
        _record_failure(report, context)
        raise ValidationFailedError("Validation failed: " + report.summary(), report)
    return report


def _record_failure(report: ValidationReport, context: Any) -> None:
    """A validation_failed event in the stores of the run (or of the project)."""
    from conveyor.stores.defaults import default_urls
    from conveyor.stores.metadata import events as ev
    from conveyor.stores.metadata import open_metadata_store

    run_id = context.run_id if context is not None else None
    subject = getattr(context, "step_name", None) or "validate"
    ev.emit(
        open_metadata_store(default_urls()[0]).engine,
        ev.VALIDATION_FAILED,
        str(subject),
        f"Validation failed: {report.summary()}"[:1000],
        links={"run_id": run_id, "step_run_id": getattr(context, "step_run_id", None)},
        data={"errors": len(report.errors), "warnings": len(report.warnings)},
    )


def _load_reference(ref: str) -> Profile:
    from conveyor.data.datasets import get_dataset
    from conveyor.stores.defaults import default_stores

    metadata_store, artifact_store = default_stores()
    return get_dataset(ref, metadata_store=metadata_store).load_profile(artifact_store)


__all__ = [
    "Anomaly",
    "Thresholds",
    "ValidationReport",
    "categorical_drift",
    "js_divergence",
    "numeric_drift",
    "validate",
    "validate_frame",
]
