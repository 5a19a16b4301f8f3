"""Likely renames: a column that went missing while a new one appeared with the same
statistics is reported as "did you mean", on both anomalies.

Matching is by content, not by name: against a reference profile the new column's
distribution must be within the drift threshold of the missing one's (same distance as
drift validation) with a similar null fraction; against a schema alone it must fit every
constraint the missing column had (kind, logical dtype, range, domain, nulls). Name
similarity only breaks ties between several matching columns.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conveyor.data.profile import ColumnProfile, Profile
    from conveyor.data.schema import ColumnSchema, Schema
    from conveyor.data.validate import Anomaly, Thresholds

NULL_TOLERANCE = 0.05


def _reference_score(
    column: ColumnProfile, reference: ColumnProfile, limits: Thresholds
) -> float | None:
    """Distance between the two columns' distributions when they match, else None."""
    from conveyor.data.validate import categorical_drift, numeric_drift

    if column.family != reference.family:
        return None
    if abs(column.null_fraction - reference.null_fraction) > NULL_TOLERANCE:
        return None
    if reference.kind in ("numeric", "datetime"):
        distance, limit = numeric_drift(column, reference), limits.numeric
    elif reference.kind in ("categorical", "boolean"):
        distance, limit = categorical_drift(column, reference), limits.categorical
    else:
        return None
    if distance is None or distance > limit:
        return None
    return float(distance)


def _schema_score(column: ColumnProfile, expected: ColumnSchema) -> float | None:
    """0 when the column satisfies every constraint of `expected`, else None."""
    from conveyor.data.validate import _FAMILY_OF_KIND, logical_dtype

    if column.kind != expected.kind or column.family != _FAMILY_OF_KIND.get(expected.kind):
        return None
    if expected.dtype and logical_dtype(column.dtype) != logical_dtype(expected.dtype):
        return None
    if column.null_fraction > expected.max_null_fraction + 1e-12:
        return None
    if expected.min is not None and column.min is not None and column.min < expected.min:
        return None
    if expected.max is not None and column.max is not None and column.max > expected.max:
        return None
    if expected.domain is not None:
        seen = column.frequencies()
        total = sum(seen.values()) or 1
        unseen = sum(n for value, n in seen.items() if value not in expected.domain) / total
        if unseen > expected.max_unseen_fraction:
            return None
    return 0.0


def suggest_renames(
    anomalies: Sequence[Anomaly],
    profile: Profile,
    reference: Profile | None,
    schema: Schema | None,
    limits: Thresholds,
) -> list[Anomaly]:
    """`anomalies` with missing/new column pairs that look like a rename annotated."""
    missing = [a.column for a in anomalies if a.kind == "missing_column"]
    known = set(schema.columns) if schema is not None else set()
    if reference is not None:
        known |= set(reference.columns)
    new = [name for name in profile.columns if name not in known]
    if not missing or not new:
        return list(anomalies)
    pairs: list[tuple[float, float, str, str]] = []
    for gone in missing:
        for name in new:
            column = profile.columns[name]
            score = None
            if reference is not None and gone in reference.columns:
                score = _reference_score(column, reference.columns[gone], limits)
            elif schema is not None and gone in schema.columns:
                score = _schema_score(column, schema.columns[gone])
            if score is not None:
                likeness = difflib.SequenceMatcher(None, gone, name).ratio()
                pairs.append((score, -likeness, gone, name))
    renamed: dict[str, str] = {}
    for _score, _likeness, gone, name in sorted(pairs):
        if gone not in renamed and name not in renamed.values():
            renamed[gone] = name
    if not renamed:
        return list(anomalies)
    origin = {new_name: gone for gone, new_name in renamed.items()}
    out = []
    for anomaly in anomalies:
        note = None
        if anomaly.kind == "missing_column" and anomaly.column in renamed:
            note = (
                f"did you mean {renamed[anomaly.column]!r}? It is new and its statistics "
                "match this column's: likely renamed"
            )
        elif anomaly.kind == "new_column" and anomaly.column in origin:
            note = f"likely renamed from {origin[anomaly.column]!r} (missing, same statistics)"
        out.append(
            anomaly if note is None else replace(anomaly, message=f"{anomaly.message}; {note}")
        )
    return out


__all__ = ["suggest_renames"]
