"""Fair gates (champion scored on the candidate's holdout), pos_label, and the champion
alias as a cache input of the gate step; real models, a real SQLite registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.datasets import load_breast_cancer
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import recall_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.config import Settings
from conveyor.evaluation.gate import Gate
from conveyor.evaluation.metrics import EvaluationReport, evaluate
from conveyor.exceptions import ModelError, PipelineDefinitionError
from conveyor.execution.orchestrator import run_pipeline
from conveyor.registry import Registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata import tables_registry as r
from conveyor.training.model import Model
from tests.unit.evaluation import gate_pipeline_for_tests as flows


@pytest.fixture(scope="module")
def credit() -> pd.DataFrame:
    """Binary task with string classes; the positive (risky) class is "bad"."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X.iloc[:, :5].assign(risk=np.where(y == 0, "bad", "good"))


def _fit(frame: pd.DataFrame, estimator: object) -> Model:
    fitted = make_pipeline(StandardScaler(), estimator).fit(
        frame.drop(columns="risk"), frame["risk"]
    )
    return Model.from_fitted(fitted, frame, target="risk", profile=False)


@pytest.fixture
def registry(settings: Settings) -> Registry:
    return Registry(
        open_metadata_store(settings.db_url), open_artifact_store(settings.artifact_url)
    )


def _stores(registry: Registry) -> dict[str, object]:
    return {"metadata_store": registry.metadata_store, "artifact_store": registry.artifact_store}


def test_pos_label_scores_the_class_asked_for(credit: pd.DataFrame) -> None:
    model = _fit(credit, LogisticRegression(C=0.05))
    features = credit.drop(columns="risk")
    proba = model.predict_proba(features)
    bad = list(model.classes_).index("bad")
    report = evaluate(model, credit, metrics=["roc_auc", "recall", "log_loss"], pos_label="bad")
    assert report.pos_label == "bad"
    assert report.metrics["roc_auc"] == pytest.approx(
        roc_auc_score(credit["risk"] == "bad", proba[:, bad])
    )
    expected = recall_score(credit["risk"], model.predict(features), pos_label="bad")
    assert report.metrics["recall"] == pytest.approx(expected)
    default = evaluate(model, credit, metrics=["recall", "log_loss"], bootstrap=0)
    assert default.pos_label == "good"  # classes_[1]
    assert default.metrics["recall"] != pytest.approx(report.metrics["recall"])
    assert default.metrics["log_loss"] == pytest.approx(report.metrics["log_loss"])
    assert EvaluationReport.from_bytes(report.to_bytes()).pos_label == "bad"
    with pytest.raises(ModelError, match=r"pos_label 'bda' is not a class.*Did you mean 'bad'"):
        evaluate(model, credit, pos_label="bda")


def test_pos_label_is_refused_outside_binary_tasks() -> None:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    clf = Model.from_fitted(LogisticRegression(max_iter=300).fit(X, y), X, profile=False)
    with pytest.raises(ModelError, match="pos_label applies to binary"):
        evaluate(clf, X.assign(y=y), target="y", pos_label=1)


def test_gate_scores_the_champion_on_the_candidates_holdout(
    settings: Settings, registry: Registry, credit: pd.DataFrame
) -> None:
    train, holdout = credit.iloc[::2], credit.iloc[1::2]
    champion = _fit(train, DummyClassifier(strategy="prior"))
    # The champion's stored report flatters it (other rows): a gate reading it would refuse.
    flattering = {"task": "binary", "primary": "roc_auc", "metrics": {"roc_auc": 0.999}}
    registry.register(champion, "credit", report=flattering, promote_to="production")
    candidate = _fit(train, LogisticRegression(C=0.05))
    report = evaluate(candidate, holdout, metrics=["roc_auc", "f1"], pos_label="bad")
    gate = Gate(primary="roc_auc", max_regression=0.01)

    fair = gate.check(report, "credit@production", **_stores(registry))
    on_holdout = evaluate(champion, holdout, metrics=["roc_auc", "f1"], pos_label="bad", log=False)
    assert fair.passed and fair.champion_basis == "holdout" and fair.rows == len(holdout)
    assert fair.champion_metrics == pytest.approx(on_holdout.metrics)
    assert fair.candidate_metrics == pytest.approx(report.metrics)
    check = next(c for c in fair.checks if c["check"] == "champion")
    assert check["champion_value"] == pytest.approx(on_holdout.metrics["roc_auc"])
    with registry.engine.connect() as c:
        stored = c.execute(
            sa.select(r.gate_decisions.c.decision).where(r.gate_decisions.c.id == fair.id)
        ).scalar_one()
    assert stored["champion_basis"] == "holdout"
    assert stored["champion_metrics"]["roc_auc"] == pytest.approx(on_holdout.metrics["roc_auc"])
    assert stored["candidate_metrics"]["roc_auc"] == pytest.approx(report.metrics["roc_auc"])

    registry.register(candidate, "credit", report=report, decision=fair, promote_to="production")
    shown = CliRunner().invoke(
        app,
        [
            *("--db-url", settings.db_url, "--artifact-url", settings.artifact_url),
            *("models", "show", "credit/2"),
        ],
    )
    assert shown.exit_code == 0, shown.output
    assert f"vs champion credit@production (version 1) on the same {len(holdout)} holdout" in (
        " ".join(shown.output.split())
    )
    registry.rollback("credit", "production")

    legacy = Gate(primary="roc_auc", max_regression=0.01, champion_on="stored")
    unfair = legacy.check(report, "credit@production", **_stores(registry))
    assert not unfair.passed and unfair.champion_basis == "stored"
    assert "vs champion credit@production 0.9990" in unfair.reasons[0]

    # A report read back from a store keeps no rows: said so, or scored with data=.
    reloaded = EvaluationReport.from_bytes(report.to_bytes())
    fallback = gate.check(reloaded, "credit@production", **_stores(registry))
    assert fallback.champion_basis == "stored" and "pass data=holdout" in fallback.notes[0]
    explicit = gate.check(reloaded, "credit@production", data=holdout, **_stores(registry))
    assert explicit.champion_basis == "holdout" and explicit.passed
    assert explicit.champion_metrics == pytest.approx(on_holdout.metrics)
    with pytest.raises(ModelError, match="'champion_on' parameter of Gate"):
        Gate(primary="roc_auc", champion_on="newest")


def test_a_champion_that_cannot_score_the_holdout_is_an_error(
    registry: Registry, credit: pd.DataFrame
) -> None:
    champion = _fit(credit, LogisticRegression(C=0.05))
    registry.register(champion, "credit", promote_to="production")
    narrow = credit.drop(columns=[credit.columns[0]])
    candidate = _fit(narrow, LogisticRegression(C=0.05))
    report = evaluate(candidate, narrow, metrics=["roc_auc"], bootstrap=0)
    with pytest.raises(ModelError, match=r"credit/1 could not be scored.*champion_on='stored'"):
        Gate(primary="roc_auc").check(report, "credit@production", **_stores(registry))


def test_moving_the_champion_alias_reruns_the_gate_step(
    settings: Settings, registry: Registry
) -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = X.iloc[:, :5].assign(label=y)
    for c in (0.01, 1.0):
        fitted = make_pipeline(StandardScaler(), LogisticRegression(C=c)).fit(
            frame.drop(columns="label"), frame["label"]
        )
        registry.register(Model.from_fitted(fitted, frame, target="label", profile=False), "churn")
    registry.promote("churn", 1, "production")

    def gate_step() -> tuple[bool, dict]:  # type: ignore[type-arg]
        result = run_pipeline(flows.gating, {}, settings=settings)
        row = next(s for s in result.steps() if s["name"] == "gate_latest")
        return row["cache_hit"], result.output()

    hit, out = gate_step()
    assert not hit and out["champion_version"] == 1
    hit, out = gate_step()
    assert hit and out["champion_version"] == 1
    registry.promote("churn", 2, "production")
    hit, out = gate_step()
    assert not hit and out["champion_version"] == 2  # a new champion: the gate ran again
    hit, _ = gate_step()
    assert hit
    registry.rollback("churn", "production")
    hit, out = gate_step()
    assert hit and out["champion_version"] == 1  # back to v1: v1's decision is reused


def test_models_setting_is_validated() -> None:
    from conveyor import step

    with pytest.raises(PipelineDefinitionError, match="'models' parameter of step"):

        @step(models="churn@production")
        def wrong(x: int) -> int:
            return x
