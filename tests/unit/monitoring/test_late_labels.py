"""Labels that arrive after their window was reported update its performance (issue 18
item 7): `conveyor labels add` recomputes the windows, and with --no-refresh its hint
names the command that does."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.config import Settings
from conveyor.monitoring.generator import TARGET, ChurnGenerator
from conveyor.monitoring.monitor import Monitor
from conveyor.registry.registry import get_registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from tests.unit.monitoring.test_monitor import fit, log, start_logger

runner = CliRunner(env={"COLUMNS": "200"})


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


@pytest.fixture
def reported(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """A monitor whose one window is reported before any label arrived."""
    metadata = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    generator = ChurnGenerator(seed=6)
    model = fit(generator.batch(3000))
    get_registry(metadata, artifacts).register(model, "churn", promote_to="production")
    start = time.time() - 1
    traffic = generator.batch(1000, index=2)
    logger = start_logger(artifacts)
    log(logger, model, "1", traffic, "q")
    logger.close()
    end = time.time() + 1
    monkeypatch.setenv("CONVEYOR_DB_URL", settings.db_url)
    monkeypatch.setenv("CONVEYOR_ARTIFACT_URL", settings.artifact_url)
    monkeypatch.chdir(settings.root)
    done = runner.invoke(
        app,
        [
            "monitor",
            "run",
            "churn-prod",
            "--model",
            "churn@production",
            "--start",
            iso(start),
            "--end",
            iso(end),
        ],
    )
    assert done.exit_code == 0, done.output
    monitor = Monitor.get("churn-prod", metadata_store=metadata, artifact_store=artifacts)
    (first,) = monitor.reports()
    assert first.labeled_rows == 0 and first.performance == {}
    labels = pd.DataFrame(
        {
            "request_id": [f"q-{i - i % 10}" for i in range(600)],  # 600 of the 1000 rows
            "row": [i % 10 for i in range(600)],
            "label": traffic[TARGET].to_numpy()[:600],
        }
    )
    path = tmp_path / "labels.csv"
    labels.to_csv(path, index=False)
    return {"monitor": monitor, "first": first, "labels": path}


def test_labels_add_updates_the_reported_window(reported: dict[str, Any]) -> None:
    done = runner.invoke(app, ["labels", "add", "churn-prod", str(reported["labels"])])
    assert done.exit_code == 0, done.output
    assert "Stored 600 labels for churn-prod." in done.output
    assert "Updated 1 report(s)" in done.output and "roc_auc=" in done.output
    (report,) = reported["monitor"].reports()
    assert report.id == reported["first"].id  # updated in place
    assert report.labeled_rows == 600
    assert 0.5 < report.performance["roc_auc"] <= 1.0


def test_the_no_refresh_hint_gives_a_command_that_produces_the_figures(
    reported: dict[str, Any],
) -> None:
    done = runner.invoke(
        app, ["labels", "add", "churn-prod", str(reported["labels"]), "--no-refresh"]
    )
    assert done.exit_code == 0, done.output
    assert reported["monitor"].reports()[0].labeled_rows == 0
    match = re.search(r"`conveyor ([^`]+)`", done.output)
    assert match is not None, done.output
    hinted = runner.invoke(app, match.group(1).split())
    assert hinted.exit_code == 0, hinted.output
    (report,) = reported["monitor"].reports()
    assert report.id == reported["first"].id and report.labeled_rows == 600
    assert "roc_auc" in report.performance


def test_labels_for_unreported_windows_say_when_they_will_count(
    reported: dict[str, Any], tmp_path: Path
) -> None:
    other = tmp_path / "other.csv"
    pd.DataFrame({"request_id": ["nope-1"], "label": [1]}).to_csv(other, index=False)
    done = runner.invoke(app, ["labels", "add", "churn-prod", str(other)])
    assert done.exit_code == 0, done.output
    assert "None of these requests is in a reported window yet" in done.output
    assert "`conveyor monitor run churn-prod`" in done.output
