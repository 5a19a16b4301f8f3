"""The decay baseline comes from register_model(..., report=) and is never missing silently.

Issue 18 item 2: on_decay read its baseline only from metrics given to Model.from_fitted, so
a version registered with `report=evaluate(...)` never fired, and nothing said so.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from conveyor import pipeline, step
from conveyor.config import Settings
from conveyor.evaluation.metrics import evaluate
from conveyor.monitoring.generator import TARGET, ChurnGenerator
from conveyor.monitoring.monitor import Monitor
from conveyor.registry.registry import get_registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.training.model import Model
from conveyor.triggers import list_events, on_decay
from conveyor.triggers.scheduler import Scheduler
from tests.unit.monitoring.test_monitor import start_logger

NUMERIC = ["tenure_months", "monthly_charges", "support_calls"]


def fit_bare(frame: pd.DataFrame) -> Model:
    """A model wrapped without metrics (the common case when a report is registered)."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    estimator = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500))
    estimator.fit(frame[NUMERIC], frame[TARGET])
    return Model.from_fitted(estimator, frame[[*NUMERIC, TARGET]], target=TARGET)


@step
def one() -> int:
    return 1


@pytest.fixture
def world(settings: Settings) -> dict[str, Any]:
    metadata = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    registry = get_registry(metadata, artifacts)
    generator = ChurnGenerator(seed=3)
    train = generator.batch(4000)
    holdout = generator.batch(2000, index=5)
    reported = fit_bare(train)
    report = evaluate(reported, holdout[[*NUMERIC, TARGET]], metrics=["roc_auc", "f1"], bootstrap=0)
    registry.register(reported, "scored", report=report, promote_to="production")
    registry.register(fit_bare(train), "bare", promote_to="production")

    start = time.time() - 1
    traffic = generator.batch(1000, index=7)
    # Labels that contradict the model: performance in the window collapses.
    labels = pd.DataFrame(
        {
            "request_id": [f"r-{i - i % 10}" for i in range(1000)],
            "row": [i % 10 for i in range(1000)],
            "label": 1 - traffic[TARGET].to_numpy(),
        }
    )
    logger = start_logger(artifacts)
    monitors = {}
    for name in ("scored", "bare"):
        model = registry.load(f"{name}@production")
        log_name = name
        features = traffic[[*NUMERIC, TARGET]]
        _log_as(logger, model, log_name, features)
        monitors[name] = Monitor(
            f"{name}-prod",
            f"{name}@production",
            window="1h",
            metadata_store=metadata,
            artifact_store=artifacts,
        )
    logger.close()
    end = time.time() + 1
    for monitor in monitors.values():
        monitor.add_labels(labels)
    return {
        "settings": settings,
        "metadata": metadata,
        "monitors": monitors,
        "report": report,
        "window": (start, end),
    }


def _log_as(logger: Any, model: Model, name: str, frame: pd.DataFrame) -> None:
    features = frame[model.signature.names]
    proba = model.predict_proba(features)
    requests = [(f"r-{j}", 10) for j in range(0, len(features), 10)]
    logger.submit(
        name, "1", frame=features, preds=model.predict(features), proba=proba, requests=requests
    )
    logger.flush()


def test_reports_use_the_registered_evaluation_report_as_baseline(world: dict[str, Any]) -> None:
    start, end = world["window"]
    scored = world["monitors"]["scored"].run_window(start, end)[0]
    assert scored.reference_metrics == pytest.approx(world["report"].metrics)
    assert scored.baseline_source == "evaluation report"
    assert scored.baseline_note is None
    assert scored.performance["roc_auc"] < 0.5  # the contradicting labels arrived

    bare = world["monitors"]["bare"].run_window(start, end)[0]
    assert bare.reference_metrics == {} and bare.baseline_source is None
    assert bare.baseline_note is not None and "bare/1" in bare.baseline_note
    assert "no decay baseline" in bare.summary()
    assert "No decay baseline" in bare.to_html()
    assert "no decay baseline" in world["monitors"]["bare"].reports()[0].to_dict()["baseline_note"]


def test_on_decay_fires_from_the_report_baseline_and_says_when_there_is_none(
    world: dict[str, Any],
) -> None:
    @pipeline(
        triggers=[
            on_decay("scored-prod", "roc_auc", drop=0.05, cooldown=0, min_rows=50),
            on_decay("bare-prod", "roc_auc", drop=0.05, cooldown=0, min_rows=50),
        ]
    )
    def retrain() -> int:
        return one()

    calls: list[dict[str, Any]] = []
    scheduler = Scheduler(
        [retrain],
        settings=world["settings"],
        lease=None,
        launcher=lambda p, params, trigger: calls.append(dict(trigger)),
    )
    scheduler.tick(time.time() - 10)  # registers the triggers' cursors
    start, end = world["window"]
    for monitor in world["monitors"].values():
        monitor.run_window(start, end)
    out = scheduler.tick()
    assert scheduler.wait_for_runs(30)
    scheduler.close(1)
    assert sorted(f.status for f in out) == ["fired", "suppressed"]
    assert len(calls) == 1 and calls[0]["details"]["baseline"] == pytest.approx(
        world["report"].metrics["roc_auc"]
    )
    events = {e["trigger_key"].split(":")[1]: e for e in list_events(world["metadata"].engine)}
    suppressed = [e for e in list_events(world["metadata"].engine) if e["status"] == "suppressed"]
    assert len(suppressed) == 1 and "no decay baseline for roc_auc" in suppressed[0]["reason"]
    assert "bare/1 was registered with no metrics" in suppressed[0]["reason"]
    assert events  # both triggers decided something


def test_monitor_list_shows_the_baseline_or_its_absence(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.cli.main import app

    settings: Settings = world["settings"]
    monkeypatch.setenv("CONVEYOR_DB_URL", settings.db_url)
    monkeypatch.setenv("CONVEYOR_ARTIFACT_URL", settings.artifact_url)
    monkeypatch.chdir(settings.root)
    for monitor in world["monitors"].values():
        monitor.save()
    result = CliRunner().invoke(app, ["monitor", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines() if "-prod" in line}
    assert "f1, roc_auc (evaluation report)" in lines["scored-prod"]
    assert "none: on_decay cannot fire" in lines["bare-prod"]
