"""Logical-type twins validate as equal; summaries list errors first, never cut (issue 18
item 5)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from conveyor import pipeline, step
from conveyor.config import Settings
from conveyor.data.profile import Profile
from conveyor.data.schema import Schema
from conveyor.data.validate import (
    SUMMARY_ITEMS,
    Anomaly,
    ValidationReport,
    logical_dtype,
    validate,
    validate_frame,
)
from conveyor.exceptions import RunFailedError, ValidationFailedError


def table(string: pa.DataType, binary: pa.DataType, listed: pa.DataType, unit: str) -> pa.Table:
    stamps = [dt.datetime(2026, 1, i + 1, tzinfo=dt.UTC) for i in range(4)]
    return pa.table(
        {
            "city": pa.array(["a", "b", "a", "c"], string),
            "blob": pa.array([b"x", b"y", b"z", b"w"], binary),
            "tags": pa.array([["a"], ["b", "c"], [], ["a"]], listed),
            "at": pa.array(stamps, pa.timestamp(unit, "UTC")),
            "n": pa.array([1, 2, 3, 4], pa.int64()),
        }
    )


def test_string_large_string_and_other_twins_are_no_dtype_change() -> None:
    small = table(pa.string(), pa.binary(), pa.list_(pa.string()), "ns")
    large = table(pa.large_string(), pa.large_binary(), pa.large_list(pa.large_string()), "us")
    schema = Schema.infer(Profile.from_frame(small))
    report = validate_frame(large, schema=schema)
    assert [a for a in report.anomalies if a.kind == "dtype_change"] == [], report.summary()
    # A real change of the logical type still warns.
    narrowed = large.set_column(4, "n", pa.array([1, 2, 3, 4], pa.int32()))
    changed = validate_frame(narrowed, schema=schema)
    assert [(a.column, a.kind) for a in changed.anomalies] == [("n", "dtype_change")]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("string", "large_string"),
        ("binary", "large_binary"),
        ("list<item: int64>", "large_list<element: int64>"),
        ("timestamp[ns, tz=UTC]", "timestamp[us, tz=UTC]"),
        ("date32[day]", "date64[ms]"),
        ("decimal128(10, 2)", "decimal256(10, 2)"),
        ("struct<a: string>", "struct<a: large_string>"),
    ],
)
def test_logical_dtype_twins(a: str, b: str) -> None:
    assert logical_dtype(a) == logical_dtype(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("int32", "int64"), ("string", "binary"), ("timestamp[ns]", "timestamp[ns, tz=UTC]")],
)
def test_logical_dtype_keeps_real_differences(a: str, b: str) -> None:
    assert logical_dtype(a) != logical_dtype(b)


def test_summary_puts_errors_first_and_never_truncates_them() -> None:
    profile = Profile.from_frame(pa.table({"x": [1]}))
    warnings = [Anomaly(f"w{i}", "new_column", "warning", f"warning {i}") for i in range(12)]
    errors = [Anomaly(f"e{i}", "missing_column", "error", f"error {i}") for i in range(8)]
    report = ValidationReport([*warnings, *errors], profile)
    assert [a.severity for a in report.anomalies] == ["error"] * 8 + ["warning"] * 12
    text = report.summary()
    assert all(f"error {i}" in text for i in range(8))
    assert "warning 0" not in text
    assert "and 12 more warning(s)" in text  # 8 errors already fill SUMMARY_ITEMS
    few = ValidationReport([*warnings, errors[0]], profile).summary()
    shown = [i for i in range(12) if f"warning {i}" in few]
    assert few.index("error 0") < few.index("warning 0")
    assert shown == list(range(SUMMARY_ITEMS - 1))
    assert f"and {12 - (SUMMARY_ITEMS - 1)} more warning(s)" in few
    with pytest.raises(ValidationFailedError) as info:
        validate.fn(
            pa.table({"x": [1]}), schema=Schema.infer(Profile.from_frame(pa.table({"y": [1]})))
        )
    assert "error: y: required column is missing" in str(info.value)


@step
def strings() -> pa.Table:
    # What a pipeline step hands on after a pandas or Parquet round trip: large_string.
    return pa.table({"city": pa.array(["a", "b", "c"], pa.large_string())})


@pipeline
def checked(schema: str):
    return validate(strings(), schema=schema)


def test_inside_a_pipeline_large_string_gives_no_warning(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "schema.yaml"
    Schema.infer(
        Profile.from_frame(pa.table({"city": pa.array(["a", "b", "c"], pa.string())}))
    ).save(path)
    run = checked.configure(settings=settings).run(schema=str(path))
    assert run.status == "completed"
    report = run.output()
    assert report.anomalies == [], report.summary()
    bad = tmp_path / "bad.yaml"
    Schema.infer(Profile.from_frame(pa.table({"town": pa.array(["a"])}))).save(bad)
    with pytest.raises(RunFailedError, match="required column is missing"):
        checked.configure(settings=settings).run(schema=str(bad))
