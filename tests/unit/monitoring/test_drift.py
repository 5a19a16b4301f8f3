"""Drift tests on Profiles: accuracy on known shifts, test choice, FDR, report output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conveyor.data.profile import Profile
from conveyor.exceptions import ConfigError
from conveyor.monitoring.drift import DriftOptions, compare_profiles
from conveyor.monitoring.generator import SHIFTED_COLUMNS, drift_benchmark_frames
from conveyor.monitoring.report import MonitorReport, build_report


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flags_every_shifted_column_and_at_most_one_other(seed: int) -> None:
    reference, current = drift_benchmark_frames(50_000, 20_000, seed=seed)
    result = compare_profiles(Profile.from_frame(reference), Profile.from_frame(current))
    flagged = set(result.drifted)
    assert set(SHIFTED_COLUMNS) <= flagged
    assert len(flagged - set(SHIFTED_COLUMNS)) <= 1
    assert {f.method for f in result.features} == {"wasserstein", "jensenshannon"}
    assert result.drift_share == pytest.approx(len(flagged) / 25)


def test_same_distribution_is_not_drift() -> None:
    reference, current = drift_benchmark_frames(50_000, 20_000, seed=5, shift=False)
    result = compare_profiles(Profile.from_frame(reference), Profile.from_frame(current))
    assert result.drifted == []
    assert not result.dataset_drift


def test_small_windows_use_ks_and_chi_square_with_bh_adjusted_p_values() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame(
        {"x": rng.normal(size=20_000), "c": rng.choice(["a", "b", "c"], 20_000)}
    )
    current = pd.DataFrame(
        {"x": rng.normal(0.5, 1, size=500), "c": rng.choice(["a", "b", "c"], 500)}
    )
    result = compare_profiles(Profile.from_frame(reference), Profile.from_frame(current))
    by_name = {f.name: f for f in result.features}
    assert by_name["x"].method == "ks" and by_name["x"].drifted
    assert by_name["c"].method == "chi2" and not by_name["c"].drifted
    for feature in result.features:
        assert feature.q_value >= feature.p_value
    assert result.dataset_drift  # 1 of 2 features >= the default share 0.5


def test_method_and_threshold_overrides() -> None:
    rng = np.random.default_rng(1)
    reference = pd.DataFrame({"x": rng.normal(size=20_000), "y": rng.normal(size=20_000)})
    current = pd.DataFrame({"x": rng.normal(0.2, 1, 20_000), "y": rng.normal(0.2, 1, 20_000)})
    options = DriftOptions(numeric_method="psi", feature_thresholds={"y": 10.0})
    result = compare_profiles(
        Profile.from_frame(reference), Profile.from_frame(current), None, options
    )
    assert [f.method for f in result.features] == ["psi", "psi"]
    assert result["x"].statistic > 0.02
    assert result["x"].threshold == 0.2 and result["y"].threshold == 10.0
    assert not result["y"].drifted
    with pytest.raises(ConfigError, match="'numeric_method' parameter of DriftOptions"):
        DriftOptions(numeric_method="magic")  # type: ignore[arg-type]


def test_columns_that_cannot_be_tested_are_listed_as_skipped() -> None:
    reference = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0] * 100, "when": pd.date_range("2024", periods=300)}
    )
    current = pd.DataFrame({"x": [1.0, 2.0] * 100})
    result = compare_profiles(
        Profile.from_frame(reference), Profile.from_frame(current), ["x", "when", "nope"]
    )
    assert set(result.skipped) == {"when", "nope"}


def test_report_json_roundtrip_and_self_contained_html() -> None:
    reference, current = drift_benchmark_frames(20_000, 5_000, seed=3)
    current.loc[:499, "num_05"] = None
    current.loc[:199, "num_06"] = 1e9
    report = build_report(
        monitor="m",
        model_name="churn",
        model_version=3,
        window_start=0.0,
        window_end=3600.0,
        reference=Profile.from_frame(reference),
        current=Profile.from_frame(current),
        features=list(reference.columns),
        performance_metrics={"roc_auc": 0.8},
        reference_metrics={"roc_auc": 0.85},
    )
    checks = {(q["column"], q["check"]) for q in report.quality}
    assert ("cat_01", "unseen_categories") in checks
    assert ("num_06", "out_of_range") in checks
    assert ("num_05", "null_fraction") in checks
    data = json.loads(report.to_json())
    again = MonitorReport.from_dict(data)
    assert again.drift.drifted == report.drift.drifted
    assert again.to_dict()["drift"] == report.to_dict()["drift"]
    html = report.to_html()
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
    assert html.count("<svg") == len(report.drift.features)
    assert "num_00" in html and "roc_auc" in html
