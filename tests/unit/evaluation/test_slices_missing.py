"""evaluate(slices=...) on slice columns with missing values (issue 18 item 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.evaluation.metrics import MISSING_SLICE, evaluate
from conveyor.training.model import Model


@pytest.fixture(scope="module")
def data() -> tuple[Model, pd.DataFrame]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = X.iloc[:, :5].assign(label=y)
    fitted = make_pipeline(StandardScaler(), LogisticRegression()).fit(X.iloc[:, :5], y)
    return Model.from_fitted(fitted, frame, target="label", profile=False), frame


def regions(n: int) -> list[object]:
    # north, south, None, NaN, north, south, None, NaN, ...
    cycle: list[object] = ["north", "south", None, np.nan]
    return [cycle[i % 4] for i in range(n)]


@pytest.mark.parametrize("dtype", [object, "string", "category"])
def test_missing_values_form_their_own_slice(
    data: tuple[Model, pd.DataFrame], dtype: object
) -> None:
    model, frame = data
    frame = frame.assign(region=pd.Series(regions(len(frame)), dtype=dtype))  # type: ignore[call-overload]
    report = evaluate(model, frame, metrics=["roc_auc", "accuracy"], slices=["region"], bootstrap=0)
    groups = report.slices["region"]
    assert list(groups) == ["north", "south", MISSING_SLICE]
    missing = frame["region"].isna().to_numpy()
    assert groups[MISSING_SLICE]["count"] == missing.sum()
    assert sum(g["count"] for g in groups.values()) == len(frame)
    rows = frame[missing]
    expected = (model.predict(rows.drop(columns=["label", "region"])) == rows["label"]).mean()
    assert groups[MISSING_SLICE]["accuracy"] == pytest.approx(expected)


def test_numeric_slice_with_nan_and_a_value_spelled_like_the_label(
    data: tuple[Model, pd.DataFrame],
) -> None:
    model, frame = data
    n = len(frame)
    numeric = frame.assign(bucket=[float(i % 3) if i % 5 else np.nan for i in range(n)])
    groups = evaluate(model, numeric, slices=["bucket"], bootstrap=0).slices["bucket"]
    assert list(groups) == ["0.0", "1.0", "2.0", MISSING_SLICE]
    assert groups[MISSING_SLICE]["count"] == sum(1 for i in range(n) if i % 5 == 0)
    spelled = frame.assign(tag=[MISSING_SLICE if i % 2 else None for i in range(n)])
    groups = evaluate(model, spelled, slices=["tag"], bootstrap=0).slices["tag"]
    assert groups[MISSING_SLICE]["count"] == n // 2
    assert groups[MISSING_SLICE + "*"]["count"] == n - n // 2
