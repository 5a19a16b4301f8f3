"""Model cards built from a real run: dataset read, evaluation with slices, gate, lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.config import Settings, load_settings
from conveyor.data.datasets import register_dataset
from conveyor.exceptions import NotFoundError
from conveyor.execution.orchestrator import run_pipeline
from conveyor.registry import Registry
from conveyor.registry.card import build_card
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from tests.unit.registry.card_pipeline_for_tests import FEATURES, card_training

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    (tmp_path / "conveyor.toml").write_text('[conveyor]\nexecutor = "inline"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_DB_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_ARTIFACT_URL", raising=False)
    settings = load_settings()
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = X[FEATURES].assign(label=y)
    frame["size"] = pd.cut(frame["mean radius"], [0, 12, 16, 100], labels=["s", "m", "l"])
    frame["size"] = frame["size"].astype(str)
    register_dataset(
        "biopsies",
        frame,
        metadata_store=open_metadata_store(settings.db_url),
        artifact_store=open_artifact_store(settings.artifact_url),
    )
    return settings


def test_card_holds_what_the_stores_know(project: Settings) -> None:
    run = run_pipeline(card_training, {"c": 0.5}, settings=project)
    registry = Registry(
        open_metadata_store(project.db_url), open_artifact_store(project.artifact_url)
    )
    card = build_card(registry, "cancer@production")
    assert card.model["ref"] == "cancer/1" and card.model["aliases"] == ["production"]
    assert card.intended_use == "Flags biopsies for a second reading; not a diagnosis."
    (data,) = card.training_data
    assert data["dataset"] == "biopsies@1" and data["rows"] == 569
    assert {c["name"] for c in data["columns"]} >= {"mean radius", "label", "size"}
    radius = next(c for c in data["columns"] if c["name"] == "mean radius")
    assert radius["min"] == pytest.approx(6.981) and radius["null_share"] == 0.0
    assert [c["name"] for c in card.signature["columns"]] == FEATURES
    assert card.evaluation is not None
    assert set(card.evaluation["metrics"]) == {"roc_auc", "accuracy"}
    assert card.evaluation["ci"]["low"] <= card.evaluation["metrics"]["roc_auc"]
    assert set(card.evaluation["slices"]["size"]) == {"s", "m", "l"}
    assert card.gate is not None and card.gate["passed"] is True
    assert "sklearn" in card.libraries
    assert card.lineage["run_id"] == run.id
    assert card.lineage["pipeline"] == "card_training"
    assert card.lineage["step"] == "train_and_register"
    assert card.lineage["params"] == {"c": 0.5}

    markdown = card.to_markdown()
    for expected in (
        "# Model card: cancer/1",
        "Flags biopsies",
        "`biopsies@1`: 569 rows",
        "| roc_auc |",
        "95% CI",
        "Slices by `size`",
        "The gate passed this version",
        f"Run `{run.id}` of pipeline `card_training`",
    ):
        assert expected in markdown, expected
    html = card.to_html()
    assert html.startswith("<!doctype html>") and "Flags biopsies" in html
    assert "<script" not in html
    assert json.loads(card.to_json())["model"]["ref"] == "cancer/1"


def test_card_says_what_is_missing_for_a_bare_registration(project: Settings) -> None:
    from sklearn.linear_model import LogisticRegression

    from conveyor.training.model import Model

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    registry = Registry(
        open_metadata_store(project.db_url), open_artifact_store(project.artifact_url)
    )
    fitted = LogisticRegression(max_iter=2000).fit(X.iloc[:, :3], y)
    registry.register(Model.from_fitted(fitted, X.iloc[:, :3], profile=False), "bare")
    markdown = build_card(registry, "bare").to_markdown()
    assert "No description was registered" in markdown
    assert "No evaluation report" in markdown
    assert "No gate decided this version" in markdown
    assert "Registered outside a pipeline run" in markdown
    with pytest.raises(NotFoundError):
        build_card(registry, "nope")


def test_cli_card_markdown_html_json_and_errors(project: Settings, tmp_path: Path) -> None:
    run_pipeline(card_training, {}, settings=project)
    result = runner.invoke(app, ["models", "card", "cancer/1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# Model card: cancer/1")
    result = runner.invoke(app, ["models", "card", "cancer@production", "--json"])
    assert json.loads(result.output)["gate"]["passed"] is True
    target = tmp_path / "card.html"
    result = runner.invoke(app, ["models", "card", "cancer/1", "--html", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "<h2>Training data</h2>" in target.read_text()
    assert list(tmp_path.glob("*.part")) == []
    result = runner.invoke(app, ["models", "card", "cancer/9"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    result = runner.invoke(
        app, ["models", "card", "cancer/1", "-o", str(tmp_path / "missing" / "c.md")]
    )
    assert result.exit_code == 1 and "does not exist" in result.output
