"""`conveyor task`: one node per process, the same records and cache as a local run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.config import load_settings
from conveyor.execution.orchestrator import run_pipeline
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata.events import list_events
from tests.unit.export.flow_for_tests import flow

runner = CliRunner()
TARGET = "tests.unit.export.flow_for_tests:flow"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "conveyor.toml").write_text('[conveyor]\nexecutor = "inline"\n')
    monkeypatch.chdir(tmp_path)
    for name in ("CONVEYOR_DB_URL", "CONVEYOR_ARTIFACT_URL", "CONVEYOR_TEST_FAIL_ONCE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def task(*args: str) -> str:
    result = runner.invoke(app, ["task", *args])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def drive(key: str, params: dict[str, object] | None = None) -> str:
    """What an orchestrator does with the exported workflow, in its order."""
    run_id = task("start", TARGET, "--run-key", key, "--params-json", json.dumps(params or {}))
    task("run", TARGET, "--run-key", key, "--node", "load")
    indices = json.loads(task("width", TARGET, "--run-key", key, "--node", "square"))
    for index in indices:
        task("run", TARGET, "--run-key", key, "--node", "square", "--index", str(index))
    task("run", TARGET, "--run-key", key, "--node", "total")
    assert task("finish", TARGET, "--run-key", key) == "completed"
    return run_id


def test_an_orchestrated_run_records_what_a_local_run_does(project: Path) -> None:
    run_id = drive("airflow-run-1", {"n": 3, "scale": 2.0})
    settings = load_settings()
    store = open_metadata_store(settings.db_url)
    run = store.get_run(run_id)
    assert run["status"] == "completed" and run["params"] == {"n": 3, "scale": 2.0}
    assert run["pid"] is None
    assert run["tags"]["conveyor.orchestrator_run"] == "airflow-run-1"
    steps = {s["name"]: s for s in store.step_runs(run_id)}
    assert sorted(steps) == ["load", "square[0]", "square[1]", "square[2]", "total"]
    assert all(s["status"] == "completed" and not s["cache_hit"] for s in steps.values())
    from conveyor.execution.run import Run
    from conveyor.stores.artifacts import open_artifact_store

    loaded = Run(run, store, open_artifact_store(settings.artifact_url))
    assert loaded.output("output") == (0 + 1 + 4) * 2.0
    kinds = [
        e.kind for e in reversed(list_events(store.engine, kinds=["run_started", "run_finished"]))
    ]
    assert kinds == ["run_started", "run_finished"]

    # The same pipeline run locally afterwards is fully cached: the keys are the same.
    local = run_pipeline(flow, {"n": 3, "scale": 2.0}, settings=settings)
    assert all(s["cache_hit"] for s in local.steps())
    assert {s["cache_key"] for s in local.steps()} == {s["cache_key"] for s in steps.values()}


@pytest.mark.postgres
def test_an_orchestrated_run_on_postgres_is_cached_for_a_local_run(
    project: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_DB_URL", postgres_url)
    run_id = drive("kfp-pg-1", {"n": 2})
    settings = load_settings()
    store = open_metadata_store(settings.db_url)
    assert store.dialect == "postgresql"
    assert store.find_run_by_tag("conveyor.orchestrator_run", "kfp-pg-1") == run_id
    steps = {s["name"]: s for s in store.step_runs(run_id)}
    assert sorted(steps) == ["load", "square[0]", "square[1]", "total"]
    outputs = store.step_outputs(run_id)
    assert sorted(outputs) == sorted(steps) and set(outputs["load"]) == {"output"}
    local = run_pipeline(flow, {"n": 2}, settings=settings)
    assert all(s["cache_hit"] for s in local.steps())


def test_a_local_run_first_makes_every_task_a_cache_hit(project: Path) -> None:
    settings = load_settings()
    run_pipeline(flow, {}, settings=settings)
    run_id = drive("argo-7")
    steps = open_metadata_store(settings.db_url).step_runs(run_id)
    assert len(steps) == 6 and all(s["cache_hit"] for s in steps)


def test_an_orchestrator_retry_is_the_next_attempt_of_the_same_step_run(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_TEST_FAIL_ONCE", str(project / "failed-once"))
    key = "retry-1"
    task("start", TARGET, "--run-key", key)
    task("run", TARGET, "--run-key", key, "--node", "load")
    failed = runner.invoke(
        app, ["task", "run", TARGET, "--run-key", key, "--node", "square", "--index", "1"]
    )
    assert failed.exit_code == 1
    assert "transient failure" in failed.output and "Traceback" not in failed.output
    task("run", TARGET, "--run-key", key, "--node", "square", "--index", "1")
    store = open_metadata_store(load_settings().db_url)
    run_id = store.get_run(task("start", TARGET, "--run-key", key))["id"]  # start is idempotent
    (row,) = [s for s in store.step_runs(run_id) if s["name"] == "square[1]"]
    assert (row["status"], row["attempts"]) == ("completed", 2)
    # A task run again after it completed does nothing.
    again = task("run", TARGET, "--run-key", key, "--node", "square", "--index", "1")
    assert again.endswith("already")


def test_a_steps_own_retries_run_inside_its_task(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_TEST_FAIL_ONCE", str(project / "failed-once"))
    target = "tests.unit.export.flow_for_tests:retried"
    run_id = task("start", target, "--run-key", "own-retries")
    assert task("run", target, "--run-key", "own-retries", "--node", "flaky").endswith(
        ": completed"
    )
    (row,) = open_metadata_store(load_settings().db_url).step_runs(run_id)
    assert (row["status"], row["attempts"]) == ("completed", 2)


def test_finish_after_a_failure_records_the_run_failed(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_TEST_FAIL_ONCE", str(project / "failed-once"))
    key = "fails"
    run_id = task("start", TARGET, "--run-key", key)
    task("run", TARGET, "--run-key", key, "--node", "load")
    runner.invoke(
        app, ["task", "run", TARGET, "--run-key", key, "--node", "square", "--index", "1"]
    )
    result = runner.invoke(app, ["task", "finish", TARGET, "--run-key", key])
    assert result.exit_code == 1 and result.output.strip() == "failed"
    run = open_metadata_store(load_settings().db_url).get_run(run_id)
    assert run["status"] == "failed" and "square[1]" in run["error"]


def test_task_errors_are_one_line_with_the_fix(project: Path) -> None:
    cases = [
        (["run", TARGET, "--run-key", "nope", "--node", "load"], "conveyor task start"),
        (["start", TARGET, "--run-key", "k", "--params-json", "[1]"], "JSON object"),
        (["start", TARGET, "--run-key", "k", "--params-json", "{"], "is not JSON"),
        (["start", TARGET, "--run-key", "k", "--params-json", '{"m": 1}'], "'m'"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["task", *args])
        assert result.exit_code != 0, args
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    task("start", TARGET, "--run-key", "k2")
    for args, message in [
        (["run", TARGET, "--run-key", "k2", "--node", "lod"], "has no node 'lod'"),
        (["run", TARGET, "--run-key", "k2", "--node", "total"], "needs square"),
        (["run", TARGET, "--run-key", "k2", "--node", "square"], "--index"),
        (["width", TARGET, "--run-key", "k2", "--node", "load"], "not a dynamic map"),
    ]:
        result = runner.invoke(app, ["task", *args])
        assert result.exit_code == 1, args
        assert message in result.output, (args, result.output)


def test_task_process_overhead_is_recorded_in_the_step_run(project: Path) -> None:
    """A task in a fresh process, as an orchestrator starts it, records its step."""
    task("start", TARGET, "--run-key", "proc")
    started = time.time()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor.cli.main",
            "task",
            "run",
            TARGET,
            "--run-key",
            "proc",
            "--node",
            "load",
        ],
        cwd=project,
        check=True,
        capture_output=True,
        env={**_env(), "PYTHONPATH": _root()},
    )
    store = open_metadata_store(load_settings().db_url)
    run_id = store.get_run(task("start", TARGET, "--run-key", "proc"))["id"]
    (row,) = store.step_runs(run_id)
    assert row["name"] == "load" and row["status"] == "completed"
    assert row["started_at"] >= started


def _root() -> str:
    return str(Path(__file__).resolve().parents[3])


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}


def test_the_fast_entry_parses_exactly_the_exported_form() -> None:
    from conveyor.cli.entry import task_run_args

    parsed = task_run_args(
        ["task", "run", TARGET, "--run-key", "k", "--node", "square", "--index", "2"]
    )
    assert parsed == {
        "no_cache": False,
        "run_key": "k",
        "node": "square",
        "index": "2",
        "target": TARGET,
    }
    assert task_run_args(
        ["--db-url=sqlite:///x.db", "task", "run", TARGET, "--node=n", "--run-key=k", "--no-cache"]
    ) == {
        "db_url": "sqlite:///x.db",
        "no_cache": True,
        "node": "n",
        "run_key": "k",
        "target": TARGET,
    }
    for other in (
        ["task", "run", TARGET, "--run-key", "k"],  # no node
        ["task", "run", TARGET, "--run-key", "k", "--node", "n", "--help"],
        ["task", "run", "--run-key", "k", "--node", "n"],  # no target
        ["task", "start", TARGET, "--run-key", "k"],
        ["task", "run", TARGET, "--run-key", "k", "--node", "n", "--index", "x"],
        ["runs", "list"],
        [],
    ):
        assert task_run_args(other) is None, other


def test_the_fast_entry_runs_a_task_without_the_cli_framework(project: Path) -> None:
    task("start", TARGET, "--run-key", "fast")
    done = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "conveyor.cli.entry",
            "task",
            "run",
            TARGET,
            "--run-key",
            "fast",
            "--node",
            "load",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        env={**_env(), "PYTHONPATH": _root()},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("load of run ")
    assert done.stdout.strip().endswith(": completed")
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "typer" not in imported and "rich" not in imported
    # On an existing SQLite store the task path runs on the standard library's sqlite3.
    assert "sqlalchemy" not in imported
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "conveyor.cli.entry",
            "task",
            "run",
            TARGET,
            "--run-key",
            "nope",
            "--node",
            "load",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        env={**_env(), "PYTHONPATH": _root()},
        check=False,
    )
    assert again.returncode == 1
    assert again.stderr.startswith("error: No run was started") and "Traceback" not in again.stderr
