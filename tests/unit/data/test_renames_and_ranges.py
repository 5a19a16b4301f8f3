"""Validation: a renamed column is reported as a likely rename ("did you mean"), and the
inferred range of a column never seen negative does not widen below zero."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.data.profile import Profile
from conveyor.data.schema import Schema
from conveyor.data.validate import validate_frame


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)

    def make(n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "income": rng.lognormal(10, 0.5, n),
                "age": rng.integers(18, 90, n),
                "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]),
            }
        )

    return make(5000), make(3000)


def _by(report, kind: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {a.column: a.message for a in report.anomalies if a.kind == kind}


def test_a_renamed_column_is_a_likely_rename_against_a_reference(frames) -> None:  # type: ignore[no-untyped-def]
    reference, current = frames
    renamed = current.rename(columns={"income": "annual_income", "region": "area"})
    report = validate_frame(renamed, reference=Profile.from_frame(reference))
    missing, new = _by(report, "missing_column"), _by(report, "new_column")
    assert "did you mean 'annual_income'?" in missing["income"]
    assert "did you mean 'area'?" in missing["region"]
    assert "likely renamed from 'income'" in new["annual_income"]
    assert "likely renamed from 'region'" in new["area"]
    assert "did you mean 'annual_income'" in report.summary()


def test_a_new_column_with_other_statistics_is_not_suggested(frames) -> None:  # type: ignore[no-untyped-def]
    reference, current = frames
    other = current.drop(columns="income").assign(
        balance=np.random.default_rng(1).normal(-500, 5, len(current))
    )
    report = validate_frame(other, reference=Profile.from_frame(reference))
    assert "did you mean" not in _by(report, "missing_column")["income"]
    assert "likely renamed" not in _by(report, "new_column")["balance"]


def test_a_renamed_column_is_a_likely_rename_against_a_schema(frames) -> None:  # type: ignore[no-untyped-def]
    reference, current = frames
    schema = Schema.infer(Profile.from_frame(reference))
    decoy = current.rename(columns={"age": "years"}).assign(
        weight=np.random.default_rng(2).normal(70, 10, len(current))
    )
    report = validate_frame(decoy, schema=schema)
    message = _by(report, "missing_column")["age"]
    assert "did you mean 'years'?" in message  # weight fits no constraint of age (floats)
    assert not report.ok


def test_non_negative_columns_never_widen_below_zero() -> None:
    frame = pd.DataFrame(
        {
            "calls": [0, 1, 2, 3, 10],
            "amount": [5.0, 20.0, 50.0, 80.0, 105.0],
            "balance": [-5.0, 0.0, 1.0, 2.0, 5.0],
        }
    )
    schema = Schema.infer(Profile.from_frame(frame), range_margin=0.1)
    assert schema.columns["calls"].min == 0.0 and schema.columns["calls"].max == 11.0
    assert schema.columns["amount"].min == 0.0  # 5 - 10% of 100 would be -5
    assert schema.columns["amount"].max == pytest.approx(115.0)
    assert schema.columns["balance"].min == pytest.approx(-6.0)  # negative already: widens
    report = validate_frame(pd.DataFrame({**frame, "amount": [-1.0, *frame["amount"][1:]]}), schema)
    assert any(a.column == "amount" and a.kind == "out_of_range" for a in report.anomalies)
