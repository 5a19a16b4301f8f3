"""Every component that changes something records its event, in the real stores."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from conveyor import pipeline, step
from conveyor.config import Settings
from conveyor.data.datasets import register_dataset
from conveyor.data.profile import Profile
from conveyor.data.schema import Schema
from conveyor.data.validate import validate
from conveyor.execution.orchestrator import run_pipeline
from conveyor.monitoring.generator import ChurnGenerator
from conveyor.monitoring.monitor import Monitor
from conveyor.registry.registry import get_registry
from conveyor.serving.servable import RegistrySource
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata.events import list_events
from conveyor.triggers import on_drift
from tests.unit.monitoring.test_monitor import fit, log, start_logger
from tests.unit.triggers.test_scheduler import add_monitor, add_report, make, one


def test_a_new_dataset_version_is_an_event_and_a_known_one_is_not(settings: Settings) -> None:
    metadata = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    frame = pd.DataFrame({"a": [1, 2, 3]})
    for _ in range(2):
        register_dataset("customers", frame, metadata_store=metadata, artifact_store=artifacts)
    register_dataset(
        "customers", frame.assign(a=[4, 5, 6]), metadata_store=metadata, artifact_store=artifacts
    )
    found = list_events(metadata.engine, kinds=["dataset_version_created"])
    assert [e.links["dataset_version"] for e in reversed(found)] == [
        "customers/1",
        "customers/2",
    ]
    assert found[0].data["row_count"] == 3


@step
def rows() -> pd.DataFrame:
    return pd.DataFrame({"height": [180, 170, 160]})


@pipeline
def checked(schema: str):
    return validate(rows(), schema=schema)


def test_failed_validation_in_a_run_is_an_event_linked_to_the_run(
    settings: Settings, tmp_path: Path
) -> None:
    schema = tmp_path / "schema.yaml"
    Schema.infer(Profile.from_frame(pd.DataFrame({"age": [30, 40, 50]}))).save(schema)
    run = run_pipeline(
        checked,
        {"schema": str(schema)},
        settings=settings,
        executor="inline",
        raise_on_failure=False,
    )
    assert run.status == "failed"
    engine = open_metadata_store(settings.db_url).engine
    (event,) = list_events(engine, kinds=["validation_failed"])
    assert event.links["run_id"] == run.id
    assert event.data["errors"] >= 1
    assert "age" in event.summary


def test_trigger_decisions_are_events(settings: Settings) -> None:
    @pipeline(triggers=[on_drift("churn-prod", share=0.3, cooldown=3600)])
    def retrain() -> int:
        return one()

    engine = open_metadata_store(settings.db_url).engine
    monitor = add_monitor(engine)
    scheduler, _ = make(settings, retrain, lease=None)
    t0 = 1_000_000.0
    first = add_report(engine, monitor, 1, share=0.4, created=t0)
    scheduler.tick(t0 + 1)
    scheduler.wait_for_runs(10)
    add_report(engine, monitor, 2, share=0.6, created=t0 + 20)
    scheduler.tick(t0 + 21)
    log = list(reversed(list_events(engine, kinds=["trigger_fired", "trigger_suppressed"])))
    assert [e.kind for e in log] == ["trigger_fired", "trigger_suppressed"]
    assert log[0].subject == "retrain"
    assert log[0].links["report_id"] == first
    assert "drift share 40%" in log[0].summary
    assert "cooldown" in log[1].summary


def test_a_drifted_window_and_a_served_version_are_events(settings: Settings) -> None:
    metadata = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    generator = ChurnGenerator(seed=1)
    registry = get_registry(metadata, artifacts)
    registry.register(fit(generator.batch(3000, drift=0.0)), "churn", promote_to="production")
    start = time.time() - 1
    logger = start_logger(artifacts)
    model = registry.load("churn@production")
    log(logger, model, "1", generator.batch(2000, drift=1.0, index=2), "b")
    logger.close()
    monitor = Monitor(
        "churn-prod",
        "churn@production",
        window="1h",
        metadata_store=metadata,
        artifact_store=artifacts,
    )
    (report,) = monitor.run_window(start, time.time() + 1)
    assert report.drift.drifted
    kinds = [e.kind for e in list_events(metadata.engine, subject="churn-prod")]
    assert set(kinds) >= {"monitor_report", "drift"}
    (drift,) = list_events(metadata.engine, kinds=["drift"])
    assert drift.links == {"report_id": report.id, "model_version": "churn/1"}
    assert set(drift.data["drifted"]) == set(report.drift.drifted)
    # Re-running the same window updates the report in place: no second event.
    monitor.run_window(start, time.time() + 1)
    assert len(list_events(metadata.engine, kinds=["drift"])) == 1

    source = RegistrySource("churn@production", registry)
    source.load(source.current_version())
    (loaded,) = list_events(metadata.engine, kinds=["server_loaded"])
    assert loaded.subject == "churn@production"
    assert loaded.links["model_version"] == "churn/1"


@pytest.fixture(autouse=True)
def _no_project_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_DB_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_ARTIFACT_URL", raising=False)
