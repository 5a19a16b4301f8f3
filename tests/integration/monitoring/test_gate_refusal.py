"""The closed loop when the retrained candidate is worse: the alias must not move."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from conveyor.cli.demo import FRESH_DATA, TRAIN_DATA, make_retrain
from conveyor.config import Settings
from conveyor.data.datasets import register_dataset
from conveyor.execution.orchestrator import run_pipeline
from conveyor.execution.run import get_run
from conveyor.monitoring.generator import TARGET, ChurnGenerator
from conveyor.monitoring.monitor import Monitor
from conveyor.registry.registry import get_registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.triggers.scheduler import Scheduler
from conveyor.triggers.state import list_events


@pytest.mark.slow
def test_drift_retrain_that_fails_the_gate_leaves_the_champion_in_place(
    settings: Settings, tmp_path: Path
) -> None:
    store = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    registry = get_registry(store, artifacts)
    generator = ChurnGenerator(seed=7)
    stores = {"metadata_store": store, "artifact_store": artifacts}
    register_dataset(TRAIN_DATA, generator.batch(3000, drift=0.0, index=0), **stores)  # type: ignore[arg-type]
    retrain = make_retrain()
    first = run_pipeline(retrain, {"data": TRAIN_DATA}, settings=settings).output()
    assert first["promoted"] is True
    assert registry.resolve("churn@production").version == 1

    monitor = Monitor(
        "churn-prod",
        "churn@production",
        window="1h",
        metadata_store=store,
        artifact_store=artifacts,
    )
    monitor.save()
    scheduler = Scheduler([retrain], settings=settings, lease=None)
    scheduler.tick()  # registers the trigger: nothing before this counts
    drifted = generator.batch(3000, drift=1.0, index=1).drop(columns=[TARGET])
    now = time.time()
    report = monitor.run_frame(drifted, start=now - 60, end=now, html=False)
    assert report.drift_share >= 0.3

    # The fresh data the retraining reads has shuffled labels: the candidate learns noise.
    broken = generator.batch(3000, drift=1.0, index=2)
    broken[TARGET] = np.random.default_rng(0).permutation(broken[TARGET].to_numpy())
    register_dataset(FRESH_DATA, broken, **stores)  # type: ignore[arg-type]
    fired = scheduler.tick()
    assert [f.status for f in fired] == ["fired"]
    assert scheduler.wait_for_runs(180)
    scheduler.close(1)

    event = list_events(store.engine)[-1]
    assert event["status"] == "completed"  # a refused candidate is not a crash
    run = store.get_run(event["run_id"])
    assert run["status"] == "completed"
    assert run["trigger"]["kind"] == "drift"
    outcome = get_run(run["id"], settings=settings).output()
    assert outcome["promoted"] is False
    assert any("roc_auc" in reason for reason in outcome["reasons"])
    assert registry.resolve("churn@production").version == 1
    assert registry.resolve("churn").version == 2  # the candidate is registered, not promoted
