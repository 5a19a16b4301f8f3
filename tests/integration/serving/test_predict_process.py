"""A real `conveyor predict` process stopped mid-scoring leaves no file (issue 12, item 7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from conveyor.registry import Registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.training.model import Model

CONVEYOR = str(Path(sys.executable).parent / "conveyor")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_predict_leaves_no_partial_or_temporary_file(
    tmp_path: Path, signum: signal.Signals
) -> None:
    stores = tmp_path / "stores"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_DB_URL"] = f"sqlite:///{stores / 'conveyor.db'}"
    env["CONVEYOR_ARTIFACT_URL"] = str(stores / "artifacts")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=20_000), "b": rng.normal(size=20_000)})
    model = Model.from_fitted(
        LogisticRegression().fit(frame, (frame["a"] > 0).astype(int)), frame, profile=False
    )
    Registry(
        open_metadata_store(env["CONVEYOR_DB_URL"]),
        open_artifact_store(env["CONVEYOR_ARTIFACT_URL"]),
    ).register(model, "toy", promote_to="production")
    work = tmp_path / "work"
    work.mkdir()
    frame.to_parquet(work / "in.parquet")  # read in exact 2-row chunks: 10,000 of them
    process = subprocess.Popen(
        [CONVEYOR, "predict", "toy@production", "in.parquet", "out.csv", "--chunk-rows", "2"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.endswith(".part") for p in work.iterdir()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "scoring did not start within 60 s"
            time.sleep(0.01)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode != 0
    assert "Traceback" not in stderr
    assert stderr.strip().startswith("error: Scoring interrupted"), stderr
    assert sorted(p.name for p in work.iterdir()) == ["in.parquet"]
