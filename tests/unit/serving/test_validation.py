"""Record validation: the column-wise fast path accepts exactly what the row-wise rules do
and, on a problem, the error still names the first offending record."""

from __future__ import annotations

import pytest

from conveyor.serving.validation import ColumnRule, RequestError, Validator

RULES = (
    ColumnRule("tenure", "int"),
    ColumnRule("charges", "float", nullable=True),
    ColumnRule("plan", "category", categories=frozenset({"basic", "pro"})),
    ColumnRule("active", "bool"),
    ColumnRule("note", "str", nullable=True),
)


def rows(n: int) -> list[dict[str, object]]:
    return [
        {"tenure": i, "charges": 10.5 + i, "plan": "pro" if i % 2 else "basic",
         "active": bool(i % 3), "note": None if i % 4 else "vip"}
        for i in range(n)
    ]  # fmt: skip


def test_valid_records_become_columns_in_signature_order() -> None:
    columns, n = Validator(RULES).records(rows(5))
    assert n == 5 and list(columns) == ["tenure", "charges", "plan", "active", "note"]
    assert columns["tenure"] == [0, 1, 2, 3, 4]
    assert columns["note"] == ["vip", None, None, None, "vip"]


def test_integral_floats_pass_an_int_column() -> None:
    data = rows(3)
    data[1]["tenure"] = 4.0
    columns, _ = Validator(RULES).records(data)
    assert columns["tenure"] == [0, 4.0, 2]


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("tenure", "7", "wrong_type"),
        ("tenure", 2.5, "wrong_type"),
        ("charges", "x", "wrong_type"),
        ("charges", True, "wrong_type"),
        ("plan", "enterprise", "unseen_category"),
        ("active", 1, "wrong_type"),
        ("tenure", None, "null"),
        ("note", 5, "wrong_type"),
    ],
)
def test_first_offending_record_is_named(column: str, value: object, problem: str) -> None:
    data = rows(1000)
    data[700][column] = value
    data[900][column] = value
    with pytest.raises(RequestError) as info:
        Validator(RULES).records(data)
    assert info.value.status == 422 and info.value.problem == problem
    assert info.value.field == f"records[700].{column}"


def test_missing_column_and_non_object_records() -> None:
    data = rows(10)
    del data[3]["plan"]
    with pytest.raises(RequestError) as info:
        Validator(RULES).records(data)
    assert info.value.problem == "missing" and info.value.field == "records[3].plan"
    with pytest.raises(RequestError) as info:
        Validator(RULES).records([*rows(2), [1, 2]])
    assert info.value.field == "records[2]"


def test_unseen_category_passes_when_configured() -> None:
    data = rows(4)
    data[2]["plan"] = "enterprise"
    columns, _ = Validator(RULES, unseen="pass").records(data)
    assert columns["plan"][2] == "enterprise"
