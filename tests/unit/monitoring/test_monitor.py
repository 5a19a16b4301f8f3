"""Monitor over real prediction-log segments, with a registered model and labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from conveyor.config import Settings
from conveyor.exceptions import NotFoundError
from conveyor.monitoring.generator import TARGET, ChurnGenerator
from conveyor.monitoring.monitor import Monitor, parse_window
from conveyor.registry.registry import get_registry
from conveyor.serving.predlog import LogPolicy, PredictionLogger
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.training.model import Model


def fit(frame: pd.DataFrame) -> Model:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    numeric = ["tenure_months", "monthly_charges", "support_calls"]
    categorical = ["contract", "region"]
    features = frame[[*numeric, *categorical, TARGET]]
    prep = ColumnTransformer(
        [
            ("n", SimpleImputer(), numeric),
            ("c", OneHotEncoder(handle_unknown="ignore"), categorical),
        ]
    )
    estimator = make_pipeline(prep, LogisticRegression(max_iter=500))
    estimator.fit(features.drop(columns=[TARGET]), features[TARGET])
    return Model.from_fitted(estimator, features, {"roc_auc": 0.8}, target=TARGET)


@pytest.fixture
def stores(settings: Settings) -> tuple[Any, Any]:
    return open_metadata_store(settings.db_url), open_artifact_store(settings.artifact_url)


def log(
    logger: PredictionLogger, model: Model, version: str, frame: pd.DataFrame, prefix: str
) -> None:
    """Write segments as the server does: one request per 10 rows."""
    features = frame[model.signature.names]
    for i in range(0, len(features), 500):
        part = features.iloc[i : i + 500].reset_index(drop=True)
        proba = model.predict_proba(part)
        requests = [(f"{prefix}-{j}", 10) for j in range(i, i + len(part), 10)]
        logger.submit(
            "churn", version, frame=part, preds=model.predict(part), proba=proba, requests=requests
        )
    logger.flush()


def start_logger(store: Any) -> PredictionLogger:
    logger = PredictionLogger(store, LogPolicy(roll_rows=1_000_000, roll_seconds=60))
    logger.start()
    return logger


def test_window_reports_per_version_with_labels_and_in_place_updates(
    stores: tuple[Any, Any],
) -> None:
    import time

    metadata, artifacts = stores
    generator = ChurnGenerator(seed=1)
    registry = get_registry(metadata, artifacts)
    v1 = fit(generator.batch(4000, drift=0.0))
    registry.register(v1, "churn", promote_to="production")
    v2 = fit(generator.batch(4000, drift=1.0, index=9))
    registry.register(v2, "churn")

    start = time.time() - 1
    normal = generator.batch(2000, drift=0.0, index=1)
    shifted = generator.batch(2000, drift=1.0, index=2)
    logger = start_logger(artifacts)
    log(logger, v1, "1", normal, "a")
    log(logger, v1, "1", shifted, "b")
    log(logger, v2, "2", shifted, "c")
    logger.close()
    end = time.time() + 1

    monitor = Monitor(
        "churn-prod",
        "churn@production",
        window="1h",
        metadata_store=metadata,
        artifact_store=artifacts,
    )
    reports = monitor.run_window(start, end)
    assert [(r.model_version, r.rows) for r in reports] == [(1, 4000), (2, 2000)]
    first, second = reports
    assert {"monthly_charges", "contract", "region"} <= set(first.drift.drifted)
    assert second.drift.drifted == [] or len(second.drift.drifted) <= 1
    assert first.performance == {} and first.reference_metrics == {"roc_auc": 0.8}
    assert any(q["check"] == "unseen_categories" for q in first.quality)
    assert artifacts.read_file(first.html_path).startswith(b"<!doctype html>")

    labels = pd.DataFrame(
        {
            "request_id": [f"a-{i - i % 10}" for i in range(2000)],
            "row": [i % 10 for i in range(2000)],
            "label": normal[TARGET].to_numpy(),
        }
    )
    assert monitor.add_labels(labels) == 2000
    assert monitor.add_labels(labels.iloc[:10]) == 10  # the same keys again: replaced
    again = monitor.run_window(start, end)
    assert again[0].id == first.id  # recomputed in place
    assert again[0].labeled_rows == 2000
    assert 0.6 < again[0].performance["roc_auc"] < 1.0
    stored = monitor.reports(limit=5)
    assert [r.id for r in stored] == [again[1].id, again[0].id]
    assert stored[1].labeled_rows == 2000

    reloaded = Monitor.get("churn-prod", metadata_store=metadata, artifact_store=artifacts)
    assert reloaded.window == 3600 and reloaded.model == "churn@production"
    with pytest.raises(NotFoundError, match="churn-prod"):
        Monitor.get("churn-prd", metadata_store=metadata)
    assert [row["name"] for row in Monitor.list_all(metadata)] == ["churn-prod"]


def test_run_due_reports_each_closed_window_once(stores: tuple[Any, Any]) -> None:
    metadata, artifacts = stores
    generator = ChurnGenerator(seed=2)
    registry = get_registry(metadata, artifacts)
    model = fit(generator.batch(3000))
    registry.register(model, "churn", promote_to="production")
    logger = start_logger(artifacts)
    log(logger, model, "1", generator.batch(1000, index=1), "x")
    logger.close()
    monitor = Monitor(
        "m", "churn@production", window="1m", metadata_store=metadata, artifact_store=artifacts
    )
    import time

    now = time.time()
    _, window_end = monitor.window_bounds(now)
    reports = monitor.run_due(window_end + 1, max_windows=3)
    assert [r.rows for r in reports] == [1000]
    assert monitor.run_due(window_end + 2) == []
    assert monitor.due_windows(window_end + 61) == [(window_end, window_end + 60)]


def test_window_lengths_parse_and_bad_ones_say_the_form() -> None:
    assert parse_window("1h") == 3600 and parse_window("15m") == 900 and parse_window(30) == 30
    from conveyor.exceptions import ConfigError

    with pytest.raises(ConfigError, match="30s, 15m, 1h, 1d"):
        parse_window("an hour")
    assert np.isfinite(parse_window("0.5s"))
