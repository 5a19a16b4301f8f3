"""The closed loop end to end (the `conveyor demo` code path) and the scheduler process."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from conveyor.config import load_settings
from conveyor.registry.registry import get_registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.triggers.state import list_events

CONVEYOR = str(Path(sys.executable).with_name("conveyor"))


@pytest.mark.slow
def test_drift_retrains_promotes_reloads_and_links_every_hop(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    done = subprocess.run(
        [CONVEYOR, "demo", "--path", str(folder)],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FAILED" not in done.stdout
    settings = load_settings(root=folder, env={})
    store = open_metadata_store(settings.db_url)
    registry = get_registry(store, open_artifact_store(settings.artifact_url))
    holder = registry.resolve("churn@production")
    assert holder.version == 2
    events = list_events(store.engine)
    assert [e["status"] for e in events] == ["completed"]
    event = events[0]
    run = store.get_run(event["run_id"])
    assert run["trigger"]["event_id"] == event["id"]
    assert run["trigger"]["kind"] == "drift"
    assert holder.run_id == run["id"]
    # churn/2 was trained on the drifted window's labeled predictions (from-predictions)
    graph = registry.lineage("churn/2")
    [read] = [d for d in graph["data"] if "dataset" in d]
    assert read["dataset"] == "churn-fresh@1"
    assert read["origin"]["windows"][0]["report_id"] == event["report_id"]
    assert graph["trigger"]["event_id"] == event["id"]
    assert graph["trigger"]["report"]["id"] == event["report_id"]
    decision = holder.gate or {}
    assert decision["champion_basis"] == "holdout" and decision["champion_version"] == 1
    from conveyor.monitoring.monitor import Monitor

    reports = Monitor.get("churn-prod", metadata_store=store).reports(limit=10)
    by_id = {r.id: r for r in reports}
    drifted = by_id[event["report_id"]]
    assert drifted.model_version == 1 and drifted.drift_share >= 0.3
    newest = reports[0]
    assert newest.model_version == 2 and newest.drift_share < 0.3
    assert len(list((folder / "reports").glob("*.html"))) == 3


def read_lines(stream: object, out: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        out.put(line)


def test_scheduler_process_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text("[conveyor]\n")
    (tmp_path / "flows.py").write_text(
        textwrap.dedent(
            """
            from conveyor import pipeline, step

            @step
            def one() -> int:
                return 1

            @pipeline(schedule="* * * * *")
            def minutely() -> int:
                return one()
            """
        )
    )
    process = subprocess.Popen(
        [CONVEYOR, "scheduler", "-p", "flows.py:minutely", "--interval", "0.2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=read_lines, args=(process.stdout, lines), daemon=True)
    reader.start()
    seen = []
    try:
        while True:
            line = lines.get(timeout=30)
            seen.append(line)
            if line.strip() == "ready":
                break
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, "".join(seen)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(10)
        assert process.stdout is not None
        process.stdout.close()
    while not lines.empty():
        seen.append(lines.get())
    text = "".join(seen)
    assert "received SIGTERM; stopping" in text and "stopped" in text
    store = open_metadata_store(load_settings(root=tmp_path, env={}).db_url)
    import sqlalchemy as sa

    from conveyor.stores.metadata import tables_monitoring as tm

    with store.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(tm.scheduler_leases)).scalar() == 0
        assert c.execute(sa.select(sa.func.count()).select_from(tm.trigger_state)).scalar() == 1


@pytest.mark.slow
def test_demo_can_be_run_again_in_the_same_folder(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    for _ in range(2):
        done = subprocess.run(
            [CONVEYOR, "demo", "--path", str(folder)],
            check=False,
            capture_output=True,
            text=True,
            timeout=240,
            env={**os.environ, "COLUMNS": "200", "CONVEYOR_DB_URL": "sqlite:////nonexistent/x"},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "FAILED" not in done.stdout


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    done = subprocess.run(
        [CONVEYOR, "demo", "--path", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "not made by `conveyor demo`" in done.stderr
    assert (tmp_path / "mine.txt").read_text() == "precious"
