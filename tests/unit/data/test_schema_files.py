"""Schema YAML from careless hands: one-line SchemaFileErrors, never a traceback (issue 12,
item 10), and a property-based fuzz of `Schema.from_yaml`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.data.schema import ColumnSchema, Schema
from conveyor.exceptions import DataError, SchemaFileError

GOOD = """\
version: 1
row_count: {min: 1, max: 100}
columns:
  age: {kind: numeric, dtype: int64, min: 18, max: 99}
  country: {kind: categorical, dtype: string, domain: [DE, FR]}
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("columns: [1, 2, 3]\n", r"line 1: columns must be a mapping of column name"),
        ("columns: 5\n", "columns must be a mapping"),
        (
            "row_count: {min: abc}\n",
            r"row_count\.min must be a whole number >= 0 or null; got 'abc'",
        ),
        ("row_count: {min: 1.5}\n", r"row_count\.min must be a whole number"),
        ("row_count: {max: true}\n", r"row_count\.max must be a whole number"),
        ("row_count: {min: -1}\n", r"row_count\.min must be a whole number >= 0"),
        ("row_count: 7\n", "row_count must be a mapping"),
        ("row_count: {min: 10, max: 2}\n", r"row_count min \(10\) is above its max \(2\)"),
        (
            "columns:\n  age: {kind: numeric, min: 10, max: 2}\n",
            r"line 2: column 'age' has min 10 above its max 2",
        ),
        ("columns:\n  age: {kind: numeric, min: .nan}\n", "min must be a number or null"),
        ("columns:\n  age: {kind: numeric, max: .inf}\n", None),  # +inf is a bound
        ("columns:\n  age: {kind: numeric, min: [1]}\n", "min must be a number"),
        ("columns:\n  age: {kind: numeric, required: 'no'}\n", "required must be true or false"),
        (
            "columns:\n  age: {kind: numeric, max_null_fraction: 2}\n",
            "max_null_fraction must be a number between 0 and 1",
        ),
        ("columns:\n  c: {kind: categorical, domain: abc}\n", "domain must be a list"),
        ("columns:\n  c: {kind: categorical, domain: [[a]]}\n", "domain must be a list"),
        ("columns:\n  c: {kind: categoric}\n", "Did you mean 'categorical'"),
        ("columns:\n  c: {kind: 5}\n", "has kind 5; expected one of"),
        ("columns:\n  c: {kind: numeric, dtype: [x]}\n", "dtype must be a string"),
        ("columns:\n  1: {kind: numeric}\n", "column names must be non-empty strings; got 1"),
        ("columns:\n  c: 3\n", "line 2: column 'c' must be a mapping of settings"),
        ("version: true\n", "schema version True is not supported"),
        ("columns: {a: {kind: numeric}\n", r"not valid YAML: line 2, column 1"),
        ("? [a, b]\n: 1\n", "not valid YAML: line 1, column 3: found unhashable key"),
        ("- a\n- b\n", "must be a mapping with a 'columns' key"),
        ("", "must be a mapping"),
        ("a: !!python/object:os.system x\n", "not valid YAML"),
    ],
)
def test_bad_schema_yaml_is_one_clear_line(text: str, message: str | None) -> None:
    if message is None:
        assert math.isinf(Schema.from_yaml(text).columns["age"].max or 0)
        return
    with pytest.raises(SchemaFileError, match=message) as caught:
        Schema.from_yaml(text)
    assert "\n" not in str(caught.value)


def test_a_good_schema_still_loads_and_round_trips() -> None:
    schema = Schema.from_yaml(GOOD)
    assert (schema.min_rows, schema.max_rows) == (1, 100)
    assert schema.columns["age"] == ColumnSchema(kind="numeric", dtype="int64", min=18, max=99)
    assert schema.columns["country"].domain == ("DE", "FR")
    assert Schema.from_yaml(schema.to_yaml()) == schema


def test_min_above_max_is_refused_from_python_too() -> None:
    with pytest.raises(DataError, match="above its max"):
        ColumnSchema(kind="numeric", min=5, max=1)
    with pytest.raises(DataError, match="min_rows"):
        Schema({}, min_rows=10, max_rows=1)


def test_a_schema_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_bytes(GOOD.encode("utf-16"))
    with pytest.raises(SchemaFileError, match="is not UTF-8 text"):
        Schema.from_yaml(path)


def test_cli_validate_with_a_bad_schema_exits_1_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("age,country\n20,DE\n30,FR\n")
    schema = tmp_path / "schema.yaml"
    schema.write_text("columns: [1, 2, 3]\n")
    result = CliRunner().invoke(
        app,
        [
            "--db-url",
            f"sqlite:///{tmp_path / 'c.db'}",
            "--artifact-url",
            str(tmp_path / "a"),
            "data",
            "validate",
            str(data),
            "--schema",
            str(schema),
        ],
    )
    err = result.stderr if result.stderr_bytes else result.output
    assert result.exit_code == 1, result.output
    assert "columns must be a mapping" in err and "Traceback" not in result.output + err
    assert len(err.strip().splitlines()) == 1


# -- fuzz -------------------------------------------------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_COLUMN_KEYS = [
    "kind", "dtype", "required", "max_null_fraction", "min", "max", "allow_nan",
    "allow_inf", "domain", "max_unseen_fraction", "drift_threshold",
]  # fmt: skip
_COLUMN = st.dictionaries(
    st.sampled_from(_COLUMN_KEYS) | st.text(max_size=6),
    st.sampled_from(["numeric", "categorical", "boolean", "datetime", "text"]) | _VALUES,
    max_size=6,
)
_DOCUMENT = st.dictionaries(
    st.sampled_from(["version", "row_count", "columns", "allow_new_columns"]) | st.text(max_size=6),
    st.one_of(
        _VALUES,
        st.dictionaries(st.sampled_from(["min", "max"]), _SCALARS, max_size=2),
        st.dictionaries(st.text(max_size=8) | st.integers(), _COLUMN | _VALUES, max_size=4),
    ),
    max_size=5,
)


def _check(text: str) -> None:
    try:
        schema = Schema.from_yaml(text)
    except SchemaFileError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    # Whatever was accepted is consistent and survives a round trip.
    if schema.min_rows is not None and schema.max_rows is not None:
        assert schema.min_rows <= schema.max_rows
    for column in schema.columns.values():
        assert 0.0 <= column.max_null_fraction <= 1.0
        assert 0.0 <= column.max_unseen_fraction <= 1.0
        if column.min is not None and column.max is not None:
            assert column.min <= column.max
    assert Schema.from_yaml(schema.to_yaml()).to_dict() == schema.to_dict()


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=150)
@given(_DOCUMENT)
def test_fuzz_structured_schema_documents(document: dict[str, Any]) -> None:
    _check(yaml.safe_dump(document, allow_unicode=True))


@settings(max_examples=150)
@given(st.text(max_size=200).filter(lambda t: "\n" in t or not t.endswith((".yaml", ".yml"))))
def test_fuzz_arbitrary_text(text: str) -> None:
    _check(text)
