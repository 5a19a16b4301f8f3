"""`conveyor scheduler --once` waits for the runs it started (issue 18 item 1)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

from conveyor.config import load_settings
from conveyor.data.datasets import register_dataset
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.triggers.state import list_events

CONVEYOR = str(Path(sys.executable).with_name("conveyor"))

FLOWS = """
import time

from conveyor import pipeline, step
from conveyor.triggers import on_new_data


@step
def slow(n: int) -> int:
    time.sleep(1.0)  # longer than --grace: the run outlives the scheduler's grace period
    return n


@step
def total(a: int, b: int) -> int:
    return a + b


@pipeline(triggers=[on_new_data("customers")])
def retrain() -> int:
    # The second layer is submitted to the run's executor after the first finished,
    # i.e. after --grace: it fails if the scheduler closed its pool under the run.
    return total(slow(1), slow(2))
"""


def scheduler_once(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            CONVEYOR,
            "scheduler",
            "--once",
            "--grace",
            "0.1",
            "--no-monitors",
            "-p",
            "flows.py:retrain",
        ],
        cwd=root,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_once_waits_for_the_run_it_fired_and_stores_the_event_completed(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text("[conveyor]\n")
    (tmp_path / "flows.py").write_text(textwrap.dedent(FLOWS))
    settings = load_settings(root=tmp_path, env={})
    store = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    frame = pd.DataFrame({"x": [1, 2, 3]})
    register_dataset("customers", frame, metadata_store=store, artifact_store=artifacts)

    first = scheduler_once(tmp_path)  # registers the trigger's cursor: nothing retroactive
    assert first.returncode == 0, first.stdout + first.stderr
    assert list_events(store.engine) == []

    register_dataset(
        "customers", pd.DataFrame({"x": [4, 5]}), metadata_store=store, artifact_store=artifacts
    )
    done = scheduler_once(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    events = list_events(store.engine)
    assert [e["status"] for e in events] == ["completed"], done.stdout + done.stderr
    run = store.get_run(events[0]["run_id"])
    assert run["status"] == "completed"
    assert f"completed: retrain run {run['id']}" in done.stdout
    assert "cannot schedule new futures" not in done.stdout + done.stderr
