"""A long-running scheduler never starts a run with code that changed on disk: it decides
nothing, says to restart, and the restarted scheduler runs the new code."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from conveyor.config import load_settings
from conveyor.data.datasets import register_dataset
from conveyor.execution.loader import load_pipeline
from conveyor.execution.run import get_run
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.triggers import list_events
from conveyor.triggers.scheduler import STALE, Scheduler

CONVEYOR = str(Path(sys.executable).with_name("conveyor"))

HELPER = "def version() -> int:\n    return {n}\n"
FLOWS = textwrap.dedent(
    """
    import pandas as pd

    from conveyor import on_new_data, pipeline, step
    from conveyor.data.datasets import dataset
    from stale_helpers import version

    @step(cache=False)
    def answer(frame: pd.DataFrame) -> int:
        return version()

    @pipeline(triggers=[on_new_data("events", min_rows=1)])
    def retrain() -> int:
        return answer(dataset("events"))
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "conveyor.toml").write_text("[conveyor]\n")
    (tmp_path / "stale_helpers.py").write_text(HELPER.format(n=1))
    (tmp_path / "stale_flows.py").write_text(FLOWS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_DB_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_ARTIFACT_URL", raising=False)
    yield tmp_path
    for name in ("stale_flows", "stale_helpers"):
        sys.modules.pop(name, None)


def _edit(path: Path, text: str) -> None:
    before = path.stat().st_mtime_ns
    path.write_text(text)
    if path.stat().st_mtime_ns == before:  # coarse clocks: make the edit visible
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def test_edited_code_is_refused_until_a_restart_runs_it(project: Path) -> None:
    settings = load_settings(root=project, env={})
    store = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    scheduler = Scheduler(
        [load_pipeline("stale_flows.py:retrain", project)], settings=settings, lease=None
    )
    assert scheduler.tick() == []  # registers the trigger
    # Touching a file without changing it is not an edit.
    os.utime(project / "stale_helpers.py", ns=(time.time_ns(), time.time_ns()))
    assert scheduler.code.changed() == []

    _edit(project / "stale_helpers.py", HELPER.format(n=2))  # a helper, not the pipeline file
    register_dataset("events", pd.DataFrame({"x": [1, 2, 3]}), metadata_store=store,
                     artifact_store=artifacts)  # fmt: skip
    [result] = scheduler.tick()
    assert result.status == STALE and result.event_id is None
    assert "stale_helpers.py" in result.reason and "restart the scheduler" in result.reason
    assert list_events(store.engine) == []  # nothing decided: the occurrence waits
    scheduler.close(1)

    done = subprocess.run(
        [CONVEYOR, "scheduler", "--once", "--no-monitors", "-p", "stale_flows.py:retrain"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [event] = list_events(store.engine)
    assert event["status"] == "completed"
    assert get_run(event["run_id"], settings=settings).output() == 2  # the new code ran
