"""Signature inference, validation and coercion on real frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.exceptions import ModelError
from conveyor.training.signature import ColumnSpec, Signature


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": np.array([31, 45, 27], dtype=np.int64),
            "income": [1.5, np.nan, 3.0],
            "active": [True, False, True],
            "region": ["north", "south", "north"],
            "plan": pd.Categorical(["a", "b", "a"], categories=["a", "b", "c"]),
            "tier": pd.Categorical([1, 2, 1]),
            "seen": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]),
        }
    )


def test_from_frame_infers_dtypes_nullability_and_domains(frame: pd.DataFrame) -> None:
    sig = Signature.from_frame(frame)
    by_name = {c.name: c for c in sig.columns}
    assert sig.names == list(frame.columns)
    assert [by_name[n].dtype for n in sig.names] == [
        "int",
        "float",
        "bool",
        "str",
        "category",
        "category",
        "datetime",
    ]
    assert by_name["income"].nullable and not by_name["age"].nullable
    assert by_name["region"].categories == ["north", "south"]
    assert by_name["plan"].categories == ["a", "b", "c"]
    assert by_name["tier"].categories == ["1", "2"]
    assert Signature.from_dict(sig.to_dict()) == sig


def test_high_cardinality_strings_get_no_domain() -> None:
    df = pd.DataFrame({"id": [f"u{i}" for i in range(100)]})
    assert Signature.from_frame(df).columns[0].categories is None


def test_validate_accepts_json_decoded_rows(frame: pd.DataFrame) -> None:
    sig = Signature.from_frame(frame)
    rows = [
        {
            "age": 50,
            "income": 2,
            "active": False,
            "region": "south",
            "plan": "c",
            "tier": 2,
            "seen": "2024-05-01T00:00:00",
            "extra": "ignored",
        },
    ]
    assert sig.validate(pd.DataFrame(rows)) == []


def test_validate_reports_each_problem_kind(frame: pd.DataFrame) -> None:
    sig = Signature.from_frame(frame)
    bad = pd.DataFrame(
        [
            {
                "agee": 1,
                "income": 1.0,
                "active": "yes",
                "region": "west",
                "plan": "a",
                "tier": 1,
                "seen": None,
            }
        ]
    )
    problems = {(p.column, p.kind): p.message for p in sig.validate(bad)}
    assert set(problems) == {
        ("age", "missing_column"),
        ("active", "wrong_type"),
        ("region", "unseen_category"),
        ("seen", "null"),
    }
    assert "Did you mean 'agee'" in problems[("age", "missing_column")]
    assert "'west'" in problems[("region", "unseen_category")]
    assert "north" in problems[("region", "unseen_category")]
    passed = {(p.column, p.kind) for p in sig.validate(bad, unseen="pass")}
    assert ("region", "unseen_category") not in passed


def test_validate_rejects_fractional_ints_and_text_numbers(frame: pd.DataFrame) -> None:
    sig = Signature.from_frame(frame[["age", "income"]])
    problems = sig.validate(pd.DataFrame({"age": [1.5], "income": ["abc"]}))
    assert [(p.column, p.kind) for p in problems] == [
        ("age", "wrong_type"),
        ("income", "wrong_type"),
    ]


def test_coerce_restores_training_dtypes(frame: pd.DataFrame) -> None:
    sig = Signature.from_frame(frame)
    decoded = pd.DataFrame(frame.astype(object).to_dict(orient="records"))
    decoded["seen"] = ["2024-01-01", "2024-02-01", "2024-03-01"]
    decoded = decoded[list(reversed(decoded.columns))]
    out = sig.coerce(decoded)
    assert list(out.columns) == list(frame.columns)
    assert dict(out.dtypes) == dict(frame.dtypes)
    assert list(out["plan"].cat.categories) == ["a", "b", "c"]
    assert list(out["tier"].cat.categories) == [1, 2]
    pd.testing.assert_frame_equal(out, frame)


def test_coerce_names_missing_and_uncastable_columns(frame: pd.DataFrame) -> None:
    sig = Signature.from_frame(frame[["age", "income"]])
    with pytest.raises(ModelError, match="'income'"):
        sig.coerce(pd.DataFrame({"age": [1]}))
    with pytest.raises(ModelError, match=r"'age'.*int"):
        sig.coerce(pd.DataFrame({"age": ["x"], "income": [1.0]}))


def test_bad_frames_and_specs_are_refused() -> None:
    with pytest.raises(ModelError, match="strings"):
        Signature.from_frame(pd.DataFrame({0: [1]}))
    with pytest.raises(ModelError, match="DataFrame"):
        Signature.from_frame(np.zeros((2, 2)))  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="one of int, float"):
        ColumnSpec.from_dict({"name": "x", "dtype": "complex"})


def test_coerce_turns_an_unseen_category_into_a_missing_value() -> None:
    frame = pd.DataFrame({"plan": pd.Categorical(["basic", "pro", "basic"])})
    signature = Signature.from_frame(frame)
    out = signature.coerce(pd.DataFrame({"plan": ["pro", "enterprise", None]}))
    assert list(out["plan"].cat.categories) == ["basic", "pro"]
    assert out["plan"].iloc[0] == "pro"
    assert out["plan"].isna().tolist() == [False, True, True]
