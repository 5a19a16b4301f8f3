"""evaluate() and Gate on real models and a real registry."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.config import Settings
from conveyor.evaluation.gate import Gate
from conveyor.evaluation.metrics import EvaluationReport, evaluate
from conveyor.exceptions import ModelError
from conveyor.registry import Registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.training.model import Model


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = X.iloc[:, :5].assign(label=y)
    frame["region"] = np.where(np.arange(len(frame)) % 2 == 0, "north", "south")
    return frame


def _fit(frame: pd.DataFrame, estimator: object) -> Model:
    X = frame.drop(columns=["label", "region"])
    fitted = make_pipeline(StandardScaler(), estimator).fit(X, frame["label"])
    return Model.from_fitted(fitted, frame.drop(columns="region"), target="label", profile=False)


@pytest.fixture(scope="module")
def good(cancer: pd.DataFrame) -> Model:
    return _fit(cancer, LogisticRegression())


@pytest.fixture(scope="module")
def bad(cancer: pd.DataFrame) -> Model:
    return _fit(cancer, DummyClassifier(strategy="prior"))


def test_binary_metrics_slices_and_ci(good: Model, cancer: pd.DataFrame) -> None:
    features = cancer.drop(columns="region")
    report = evaluate(
        good,
        cancer.drop(columns="region").assign(region=cancer["region"]),
        metrics=["roc_auc", "f1"],
        slices=["region"],
        bootstrap=100,
    )
    assert report.task == "binary" and report.primary == "roc_auc"
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(features["label"], good.predict_proba(features)[:, 1])
    assert report.metrics["roc_auc"] == pytest.approx(expected)
    assert report.ci["low"] <= report.metrics["roc_auc"] <= report.ci["high"]
    assert report.ci["resamples"] == 100
    assert set(report.slices["region"]) == {"north", "south"}
    assert report.slices["region"]["north"]["count"] == 285
    assert EvaluationReport.from_bytes(report.to_bytes()) == report


def test_multiclass_and_regression_sets() -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    clf = Model.from_fitted(LogisticRegression(max_iter=500).fit(X, y), X, profile=False)
    report = evaluate(clf, X.assign(y=y), target="y", bootstrap=0)
    assert report.task == "multiclass" and report.metrics["accuracy"] > 0.9
    assert "roc_auc" in report.metrics and report.ci == {}
    Xd, yd = load_diabetes(return_X_y=True, as_frame=True)
    reg = Model.from_fitted(LinearRegression().fit(Xd, yd), Xd, profile=False)
    report = evaluate(reg, Xd.assign(y=yd), target="y", bootstrap=20)
    assert report.task == "regression" and report.primary == "rmse"
    assert report.metrics["rmse"] == pytest.approx(math.sqrt(report.metrics["mse"]))


def test_bad_evaluation_input_is_named(good: Model, cancer: pd.DataFrame) -> None:
    with pytest.raises(ModelError, match=r"Unknown binary metric 'roc'.*Did you mean 'roc_auc'"):
        evaluate(good, cancer, metrics=["roc"])
    with pytest.raises(ModelError, match=r"Slice column 'regon'.*Did you mean 'region'"):
        evaluate(good, cancer, slices=["regon"])
    with pytest.raises(ModelError, match="label column 'target'"):
        evaluate(good, cancer, target="target")


@pytest.fixture
def registry(settings: Settings) -> Registry:
    return Registry(
        open_metadata_store(settings.db_url), open_artifact_store(settings.artifact_url)
    )


def _stores(registry: Registry) -> dict[str, object]:
    return {"metadata_store": registry.metadata_store, "artifact_store": registry.artifact_store}


def test_gate_against_champion_and_slices(
    registry: Registry, good: Model, bad: Model, cancer: pd.DataFrame
) -> None:
    good_report = evaluate(good, cancer, metrics=["roc_auc", "f1"], slices=["region"])
    bad_report = evaluate(bad, cancer, metrics=["roc_auc", "f1"], slices=["region"])
    gate = Gate(primary="roc_auc", min_value=0.8, max_regression=0.01, slice_max_regression=0.05)

    first = gate.check(good_report, champion="churn@production", **_stores(registry))
    assert first.passed and first.champion_version is None and first.id
    registry.register(good, "churn", report=good_report, decision=first, promote_to="production")

    decision = gate.check(bad_report, champion="churn@production", **_stores(registry))
    assert not decision.passed and decision.champion_version == 1
    kinds = {c["check"] for c in decision.checks if not c["passed"]}
    assert kinds == {"threshold", "champion", "slice"}
    assert any("roc_auc = 0.5000, must be at least 0.8000" in r for r in decision.reasons)
    assert any("region=north" in r for r in decision.reasons)
    version = registry.register(
        bad, "churn", report=bad_report, decision=decision, promote_to="production"
    )
    assert version.aliases == ()
    assert registry.resolve("churn@production").version == 1
    assert registry.resolve("churn/2").gate["passed"] is False

    again = gate.check(good_report, champion="churn@production", **_stores(registry))
    assert again.passed  # equal to the champion: no regression


def test_lower_is_better_metrics_and_missing_metric(registry: Registry) -> None:
    report = EvaluationReport(task="regression", primary="rmse", metrics={"rmse": 3.0, "r2": 0.4})
    decision = Gate(primary="rmse", min_value=2.5, thresholds={"r2": 0.3}).check(
        report, **_stores(registry)
    )
    assert not decision.passed
    assert decision.reasons == ["rmse = 3.0000, must be at most 2.5000."]
    with pytest.raises(ModelError, match=r"'roc_auc'.*Available metrics: r2, rmse"):
        Gate(primary="roc_auc").check(report, **_stores(registry))
