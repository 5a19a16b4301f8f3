"""Prediction logging: segments in the artifact store, bounded queue, served requests logged."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from conveyor.exceptions import ServingError
from conveyor.serving.app import ServeOptions, create_app
from conveyor.serving.predlog import LogPolicy, PredictionLogger
from conveyor.serving.servable import FixedSource
from conveyor.stores.artifacts import LocalArtifactStore
from conveyor.training.model import Model

from .conftest import client_for, records, run


def _read(store: LocalArtifactStore, path: str) -> pd.DataFrame:
    return pq.read_table(io.BytesIO(store.read_file(path))).to_pandas()


def test_segments_roll_by_rows_and_hold_inputs_and_outputs(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    logger = PredictionLogger(store, LogPolicy(roll_rows=5, roll_seconds=60))
    logger.start()
    frame = pd.DataFrame({"x": np.arange(3.0), "c": ["a", "b", "c"]})
    for i in range(4):
        logger.submit(
            "churn",
            "7",
            frame=frame,
            preds=np.array([0, 1, 0]),
            proba=np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]),
            requests=[(f"r{i}a", 1), (f"r{i}b", 2)],
        )
    logger.close()
    assert logger.written_rows == 12 and logger.dropped_rows == 0
    paths = store.list_files("predictions/churn")
    assert len(paths) == 2  # 6 rows rolled at >= 5, then the remaining 6 on close
    assert all(p.endswith(".parquet") for p in paths)
    table = pd.concat([_read(store, p) for p in paths], ignore_index=True)
    assert list(table.columns) == [
        "x",
        "c",
        "_request_id",
        "_timestamp",
        "_model",
        "_model_version",
        "_prediction",
        "_probabilities",
    ]
    assert table["_request_id"].tolist()[:3] == ["r0a", "r0b", "r0b"]
    assert set(table["_model_version"]) == {"7"}
    assert table["_probabilities"].iloc[1].tolist() == [0.2, 0.8]
    assert str(table["_timestamp"].dtype).startswith("datetime64")


def test_a_full_queue_drops_and_counts_never_blocks(tmp_path: Path) -> None:
    dropped: list[int] = []
    logger = PredictionLogger(
        LocalArtifactStore(tmp_path), LogPolicy(max_queue=2), on_dropped=dropped.append
    )
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    # the writer thread is not started, so nothing drains the queue
    results = [
        logger.submit("m", "1", frame=frame, preds=np.zeros(2), proba=None, requests=[("r", 2)])
        for _ in range(5)
    ]
    assert results == [True, True, False, False, False]
    assert logger.dropped_rows == 6 and dropped == [2, 2, 2]


def test_a_version_change_starts_a_new_segment(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    logger = PredictionLogger(store, LogPolicy(roll_rows=1000))
    logger.start()
    frame = pd.DataFrame({"x": [1.0]})
    for version in ("1", "1", "2"):
        logger.submit("m", version, frame=frame, preds=np.zeros(1), proba=None, requests=[("r", 1)])
    logger.flush()
    logger.close()
    versions = [set(_read(store, p)["_model_version"]) for p in logger.segments]
    assert versions == [{"1"}, {"2"}]


def test_policy_is_validated() -> None:
    with pytest.raises(ServingError, match="roll_rows"):
        LogPolicy(roll_rows=0)


def test_served_predictions_are_logged(tmp_path: Path, lr_model: Model, cancer: Any) -> None:
    X, _ = cancer
    store = LocalArtifactStore(tmp_path)
    app = create_app(
        FixedSource(lr_model, "cancer"), ServeOptions(reload_interval=None), log_store=store
    )

    async def main() -> list[str]:
        async with client_for(app) as c:
            ids = []
            for i in range(3):
                r = await c.post(
                    "/predict",
                    json={"records": records(X, 2, start=2 * i)},
                    headers={"X-Request-ID": f"req-{i}"},
                )
                ids.append(r.json()["request_id"])
            return ids

    assert run(main()) == ["req-0", "req-1", "req-2"]
    # stopping the app flushed the buffer
    (path,) = store.list_files("predictions/cancer")
    table = _read(store, path)
    assert table["_request_id"].tolist() == ["req-0", "req-0", "req-1", "req-1", "req-2", "req-2"]
    assert np.allclose(table["mean radius"], X["mean radius"].iloc[:6])
    assert table["_prediction"].tolist() == lr_model.predict(X.iloc[:6]).tolist()
    assert app.metrics.predlog_rows._value.get() == 6


def test_two_loggers_in_one_process_never_overwrite_each_other(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    loggers = [PredictionLogger(store, LogPolicy(roll_rows=1, roll_seconds=60)) for _ in range(2)]
    frame = pd.DataFrame({"x": [1.0]})
    for logger in loggers:
        logger.start()
    for i in range(5):
        for n, logger in enumerate(loggers):
            logger.submit(
                "churn", "1", frame=frame, preds=np.array([n]), proba=None,
                requests=[(f"{n}-{i}", 1)],
            )  # fmt: skip
    for logger in loggers:
        logger.close()
    paths = store.list_files("predictions/churn")
    assert len(paths) == 10  # one segment per batch, none overwritten
    ids = sorted(_read(store, p)["_request_id"].iloc[0] for p in paths)
    assert ids == sorted(f"{n}-{i}" for n in range(2) for i in range(5))
