"""A window below the minimum row count gets the verdict "insufficient data": no feature
tested, nothing drifted, said in the report, its summary, JSON and HTML."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.data.profile import Profile
from conveyor.exceptions import ConfigError
from conveyor.monitoring.drift import DriftOptions, compare_profiles
from conveyor.monitoring.report import MonitorReport, build_report


def _frames(n: int) -> tuple[Profile, Profile]:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(size=5000), "c": rng.choice(["a", "b"], 5000)})
    # A shifted window: with enough rows every feature drifts.
    current = pd.DataFrame({"x": rng.normal(3.0, 1, size=n), "c": ["b"] * n})
    return Profile.from_frame(reference), Profile.from_frame(current)


def test_small_windows_are_insufficient_data_large_ones_get_a_verdict() -> None:
    reference, small = _frames(40)
    result = compare_profiles(reference, small, options=DriftOptions(min_rows=50))
    assert result.verdict == "insufficient data" and result.insufficient is not None
    assert "40 rows" in result.insufficient and "min_rows=50" in result.insufficient
    assert result.features == [] and not result.dataset_drift and result.drift_share == 0.0
    assert set(result.skipped) == {"x", "c"}
    # The same rows with a lower minimum: a real verdict (the shift is large).
    lowered = compare_profiles(reference, small, options=DriftOptions(min_rows=10))
    assert lowered.verdict == "drift" and lowered.insufficient is None
    _, large = _frames(500)
    assert compare_profiles(reference, large).verdict == "drift"  # default min_rows=100
    _, default_small = _frames(99)
    assert compare_profiles(reference, default_small).verdict == "insufficient data"
    with pytest.raises(ConfigError, match="'min_rows' parameter of DriftOptions"):
        DriftOptions(min_rows=-1)


def test_the_report_says_insufficient_data_everywhere() -> None:
    reference, small = _frames(30)
    options = DriftOptions(min_rows=50)
    report = build_report(
        monitor="m",
        model_name="churn",
        model_version=1,
        window_start=0.0,
        window_end=3600.0,
        reference=reference,
        current=small,
        features=["x", "c"],
        target=None,
        options=options,
    )
    assert "insufficient data (30 rows in the window" in report.summary()
    data = report.to_dict()
    assert data["drift"]["verdict"] == "insufficient data"
    again = MonitorReport.from_dict(data)
    assert again.drift.verdict == "insufficient data" and again.drift.insufficient
    assert DriftOptions.from_dict(data["drift"]["options"]).min_rows == 50
    assert "insufficient data" in report.to_html()
