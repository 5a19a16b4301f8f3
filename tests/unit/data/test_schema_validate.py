"""Schema inference and YAML, validation anomalies, reports and the pipeline step."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conveyor.data.profile import Profile
from conveyor.data.schema import Schema
from conveyor.data.validate import ValidationReport, validate, validate_frame
from conveyor.exceptions import SchemaFileError, ValidationFailedError


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 20_000
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.normal(50_000, 10_000, n),
            "country": rng.choice(["DE", "FR", "US"], n),
        }
    )


def kinds(report: ValidationReport) -> set[tuple[str, str, str]]:
    return {(a.column, a.kind, a.severity) for a in report.anomalies}


def test_infer_and_yaml_round_trip(good: pd.DataFrame) -> None:
    schema = Schema.infer(Profile.from_frame(good), range_margin=0.0)
    assert schema.columns["country"].domain == ("DE", "FR", "US")
    assert schema.columns["age"].min == 18 and schema.columns["age"].max == 89
    assert Schema.from_yaml(schema.to_yaml()) == schema
    assert Schema.from_bytes(schema.to_bytes()) == schema
    padded = Schema.infer(Profile.from_frame(good)).columns["age"]
    assert (padded.min, padded.max) == (10.0, 97.0)


def test_clean_batch_passes(good: pd.DataFrame) -> None:
    reference = Profile.from_frame(good)
    report = validate_frame(
        good.sample(frac=0.5, random_state=0), Schema.infer(reference), reference
    )
    assert report.ok, report.summary()


def test_every_anomaly_kind_is_reported(good: pd.DataFrame) -> None:
    reference = Profile.from_frame(good)
    schema = Schema.infer(reference, row_count_tolerance=0.1)
    bad = good.drop(columns=["income"]).copy()
    bad["age"] = bad["age"].astype(float)
    bad.loc[:100, "age"] = np.nan
    bad.loc[200, "age"] = 150
    bad.loc[300, "age"] = np.inf
    bad.loc[:2000, "country"] = "XX"
    bad["extra"] = 1
    report = validate_frame(bad.iloc[:15_000], schema, reference)
    found = kinds(report)
    assert ("income", "missing_column", "error") in found
    assert ("extra", "new_column", "warning") in found
    assert ("age", "dtype_change", "warning") in found
    assert ("age", "null_fraction", "error") in found
    assert ("age", "out_of_range", "error") in found
    assert ("age", "inf", "error") in found
    assert ("country", "unseen_categories", "error") in found
    assert ("", "row_count", "error") in found
    assert ("country", "drift", "error") in found
    assert not report.ok


def test_type_change_and_nan(good: pd.DataFrame) -> None:
    import pyarrow as pa

    schema = Schema.infer(Profile.from_frame(good))
    changed = good.assign(age=good["age"].astype(str))
    assert ("age", "type_change", "error") in kinds(validate_frame(changed, schema))
    table = pa.Table.from_pandas(good, preserve_index=False)
    income = table["income"].to_numpy().copy()
    income[5] = np.nan
    with_nan = table.set_column(1, "income", pa.array(income, from_pandas=False))
    assert ("income", "nan", "error") in kinds(validate_frame(with_nan, schema))


def test_numeric_drift_threshold_per_column(good: pd.DataFrame) -> None:
    reference = Profile.from_frame(good)
    shifted = good.assign(income=good["income"] + 15_000)
    report = validate_frame(shifted, reference=reference)
    assert ("income", "drift", "error") in kinds(report)
    assert report.drift["age"] < 0.05
    relaxed = validate_frame(shifted, reference=reference, thresholds={"income": 0.99})
    assert relaxed.ok


def test_reports_render(good: pd.DataFrame) -> None:
    reference = Profile.from_frame(good)
    report = validate_frame(good.assign(age=good["age"] + 100), Schema.infer(reference), reference)
    page = report.to_html()
    assert page.startswith("<!doctype html>") and "<svg" in page and "out_of_range" in page
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # self-contained
    assert json.loads(report.to_json())["errors"] == len(report.errors)
    restored = ValidationReport.from_bytes(report.to_bytes())
    assert restored.to_dict() == report.to_dict()


def test_validate_step_raises_with_report(good: pd.DataFrame) -> None:
    schema = Schema.infer(Profile.from_frame(good))
    assert validate(good, schema=schema).ok
    with pytest.raises(ValidationFailedError) as info:
        validate(good.assign(age=-1), schema=schema)
    assert isinstance(info.value.report, ValidationReport)
    assert "age" in str(info.value)


def test_schema_typo_names_line_key_and_suggestion(tmp_path) -> None:
    text = "version: 1\ncolumns:\n  age:\n    kind: numeric\n    max_nul_fraction: 0.1\n"
    path = tmp_path / "schema.yaml"
    path.write_text(text)
    with pytest.raises(SchemaFileError) as info:
        Schema.from_yaml(path)
    message = str(info.value)
    assert "line 5" in message and "'max_nul_fraction'" in message
    assert "Did you mean 'max_null_fraction'?" in message
    with pytest.raises(SchemaFileError, match=r"line 1: unknown key 'colums'.*'columns'"):
        Schema.from_yaml("colums: {}\n")
    with pytest.raises(SchemaFileError, match=r"kind 'numerc'.*Did you mean 'numeric'"):
        Schema.from_yaml("columns:\n  a:\n    kind: numerc\n")
