"""Fresh data from the prediction log: `dataset_from_predictions`, `conveyor datasets
from-predictions`, `conveyor predictions show` and the dataset hop in `models lineage`,
on real log segments, a real SQLite store and a real training run."""

from __future__ import annotations

import json
import time
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.config import Settings
from conveyor.data.datasets import list_versions, register_dataset
from conveyor.exceptions import DataError
from conveyor.execution.orchestrator import run_pipeline
from conveyor.monitoring import dataset_from_predictions
from conveyor.monitoring.generator import TARGET, ChurnGenerator
from conveyor.monitoring.monitor import Monitor
from conveyor.registry.registry import get_registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from tests.unit.monitoring import fresh_pipeline_for_tests as flows
from tests.unit.monitoring.test_monitor import log, start_logger

runner = CliRunner()


def cli(settings: Settings, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app, ["--db-url", settings.db_url, "--artifact-url", settings.artifact_url, *args]
    )
    return result.exit_code, result.output


def labels(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Labels keyed the way `log` names requests: one request per 10 rows."""
    return pd.DataFrame(
        {
            "request_id": [f"{prefix}-{i - i % 10}" for i in range(len(frame))],
            "row": [i % 10 for i in range(len(frame))],
            "label": frame[TARGET].to_numpy(),
        }
    )


@pytest.fixture
def served(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """churn/1 trained by a pipeline on dataset churn-train, then served: 1,000 normal
    rows (all labeled) and 1,000 drifted rows (first 500 labeled), reported in a window."""
    monkeypatch.setenv("CONVEYOR_DB_URL", settings.db_url)
    monkeypatch.setenv("CONVEYOR_ARTIFACT_URL", settings.artifact_url)
    metadata = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    generator = ChurnGenerator(seed=3)
    stores = {"metadata_store": metadata, "artifact_store": artifacts}
    register_dataset("churn-train", generator.batch(3000, drift=0.0), **stores)  # type: ignore[arg-type]
    run = run_pipeline(flows.retrain, {}, settings=settings)
    model = get_registry(metadata, artifacts).load("churn@production")
    normal = generator.batch(1000, drift=0.0, index=1)
    drifted = generator.batch(1000, drift=1.0, index=2)
    start = time.time() - 1
    logger = start_logger(artifacts)
    log(logger, model, "1", normal, "a")
    log(logger, model, "1", drifted, "b")
    logger.close()
    end = time.time() + 1
    monitor = Monitor(
        "churn-prod", "churn@production", metadata_store=metadata, artifact_store=artifacts
    )
    monitor.add_labels(labels(normal, "a"))
    monitor.add_labels(labels(drifted, "b").iloc[:500])
    reports = monitor.run_window(start, end)
    return {
        "monitor": monitor,
        "normal": normal,
        "drifted": drifted,
        "report": reports[0],
        "run": run,
        "stores": stores,
        "start": start,
    }


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_labeled_predictions_become_a_dataset_version_with_window_lineage(
    served: dict[str, Any],
) -> None:
    monitor, stores = served["monitor"], served["stores"]
    version = dataset_from_predictions(monitor, labeled=True, **stores)
    assert (version.name, version.version, version.row_count) == ("churn-prod-fresh", 1, 1500)
    data = version.load(stores["artifact_store"])
    columns = [*monitor.registry.load("churn/1").signature.names, TARGET]
    assert list(data.columns) == columns
    expected = pd.concat([served["normal"][columns], served["drifted"][columns].iloc[:500]])
    pd.testing.assert_frame_equal(_sorted(data), _sorted(expected), check_dtype=False)
    assert data[TARGET].dtype.kind == "i"
    origin = version.origin
    assert origin is not None and origin["kind"] == "predictions"
    assert (origin["monitor"], origin["model"], origin["labeled"]) == (
        "churn-prod", "churn@production", True,
    )  # fmt: skip
    assert origin["rows"] == origin["labeled_rows"] == 1500 and origin["model_versions"] == [1]
    [window] = origin["windows"]
    assert window["report_id"] == served["report"].id
    assert (window["rows"], window["labeled_rows"], window["model_version"]) == (1500, 1500, 1)
    assert version.source_kind == "predictions" and "churn-prod" in version.source

    everything = dataset_from_predictions(monitor, name="all-rows", **stores)
    frame = everything.load(stores["artifact_store"])
    assert everything.row_count == 2000 and frame[TARGET].isna().sum() == 500
    assert everything.origin["labeled_rows"] == 1500  # type: ignore[index]

    # The same rows again: the existing version; nothing after `until`: a clear error.
    assert dataset_from_predictions(monitor, labeled=True, **stores).version == 1
    with pytest.raises(DataError, match="no labeled logged predictions of churn"):
        dataset_from_predictions(monitor, labeled=True, until=served["start"] - 60, **stores)
    assert len(list_versions("churn-prod-fresh", metadata_store=stores["metadata_store"])) == 1


def test_cli_from_predictions_predictions_show_and_lineage_hops(
    settings: Settings, served: dict[str, Any]
) -> None:
    code, out = cli(
        settings, "datasets", "from-predictions", "churn-prod", "--labeled", "--since", "1h",
        "--name", "fresh", "--json",
    )  # fmt: skip
    assert code == 0, out
    made = json.loads(out)
    assert made["ref"] == "fresh@1" and made["row_count"] == 1500
    assert made["origin"]["windows"][0]["report_id"] == served["report"].id
    code, out = cli(settings, "datasets", "from-predictions", "churn-prod", "--labeled")
    assert code == 0 and "1500 rows" in out and served["report"].id in out
    code, out = cli(settings, "datasets", "show", "fresh@1")
    assert code == 0 and "1500 logged predictions" in out and served["report"].id in out
    code, out = cli(settings, "datasets", "from-predictions", "churn-prod", "--since", "soon")
    assert code == 1 and "is not a time" in out and "Traceback" not in out
    code, out = cli(settings, "datasets", "from-predictions", "nope")
    assert code == 1 and "No monitor named 'nope'" in out

    # Retrain on the fresh version: the new model's lineage reaches the windows.
    run = run_pipeline(flows.retrain, {"data": "fresh"}, settings=settings)
    code, out = cli(settings, "models", "lineage", "churn/2", "--json")
    assert code == 0, out
    graph = json.loads(out)
    [read] = graph["data"]
    assert read["dataset"] == "fresh@1"
    assert read["origin"]["windows"][0]["report_id"] == served["report"].id
    code, out = cli(settings, "models", "lineage", "churn/2")
    assert "fresh@1" in out and served["report"].id in out and "churn-prod" in out

    code, out = cli(settings, "predictions", "show", "b-10", "--json")
    assert code == 0, out
    [answer] = json.loads(out)["answers"]
    assert (answer["model"], answer["version"], len(answer["rows"])) == ("churn", 1, 10)
    drifted = served["drifted"].iloc[10:20]
    assert [r["tenure_months"] for r in answer["rows"]] == pytest.approx(
        drifted["tenure_months"].tolist(), nan_ok=True
    )
    assert answer["lineage"]["run"]["id"] == served["run"].id
    assert answer["lineage"]["data"][0]["dataset"] == "churn-train@1"
    code, out = cli(settings, "predictions", "show", "b-10", "--model", "churn")
    assert code == 0 and "churn/1" in out and served["run"].id in out and "churn-train@1" in out
    code, out = cli(settings, "predictions", "show", "zzz")
    assert code == 1 and "No logged prediction has request id 'zzz'" in out
    assert run.status == "completed"
