"""Whole `conveyor run` processes: kill -9 mid-step, concurrent runs, code fingerprints."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

CONVEYOR = str(Path(sys.executable).with_name("conveyor"))

FLOW = textwrap.dedent(
    """
    import time
    from pathlib import Path

    from conveyor import pipeline, step
    import helpers

    @step
    def first(n: int) -> int:
        return helpers.transform(n)

    @step
    def gated(x: int, gate: str) -> int:
        if gate:
            Path(gate + ".entered").touch()
            while not Path(gate + ".open").exists():  # the step's work: wait for a signal
                time.sleep(0.01)
        return x + 1

    @step
    def last(x: int) -> int:
        return x * 10

    @pipeline
    def demo(n: int = 1, gate: str = "", width: int = 1):
        value = gated(first(n), gate=gate)
        for _ in range(width):
            value = last(value)
        return value
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "conveyor.toml").write_text("[conveyor]\n")
    (tmp_path / "flow.py").write_text(FLOW)
    (tmp_path / "helpers.py").write_text("def transform(n):\n    return n + 1\n")
    return tmp_path


def env_for(db_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    if db_url:
        env["CONVEYOR_DB_URL"] = db_url
    return env


def cli(project: Path, *args: str, db_url: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CONVEYOR, *args],
        cwd=project,
        env=env_for(db_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_json(project: Path, *params: str, db_url: str | None = None) -> dict:  # type: ignore[type-arg]
    args = ["run", "flow.py:demo", "--json"]
    for param in params:
        args += ["-p", param]
    result = cli(project, *args, db_url=db_url)
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


def wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {seconds} s")
        time.sleep(0.02)


def test_kill_9_mid_step_leaves_consistent_stores_and_rerun_resumes(project: Path) -> None:
    gate = project / "gate"
    process = subprocess.Popen(
        [CONVEYOR, "run", "flow.py:demo", "-q", "-p", f"gate={gate}"],
        cwd=project,
        env=env_for(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(Path(str(gate) + ".entered"))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    runs = json.loads(cli(project, "runs", "list", "--json").stdout)
    assert [r["status"] for r in runs] == ["interrupted"]
    shown = json.loads(cli(project, "runs", "show", runs[0]["id"], "--json").stdout)
    assert {s["name"]: s["status"] for s in shown["steps"]} == {
        "first": "completed",
        "gated": "interrupted",
    }
    # Every blob under a real key has exactly the bytes its name promises.
    objects = project / ".conveyor" / "artifacts" / "objects"
    blobs = [p for p in objects.rglob("*") if p.is_file()]
    assert blobs
    for blob in blobs:
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    Path(str(gate) + ".open").touch()
    resumed = run_json(project, f"gate={gate}")
    assert resumed["status"] == "completed"
    assert {s["name"]: s["cache_hit"] for s in resumed["steps"]} == {
        "first": True,
        "gated": False,
        "last": False,
    }


def _concurrent_runs(project: Path, db_url: str | None) -> None:
    processes = [
        subprocess.Popen(
            [CONVEYOR, "run", "flow.py:demo", "-q", "-p", f"n={i}", "-p", "width=15"],
            cwd=project,
            env=env_for(db_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    results = [p.communicate(timeout=180) for p in processes]
    for process, (out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err + out
        assert "locked" not in err
    runs = json.loads(cli(project, "runs", "list", "--json", db_url=db_url).stdout)
    assert sorted(r["params"]["n"] for r in runs) == [0, 1, 2, 3]
    assert {r["status"] for r in runs} == {"completed"}
    for run in runs:
        shown = json.loads(cli(project, "runs", "show", run["id"], "--json", db_url=db_url).stdout)
        assert len(shown["steps"]) == 17


def test_four_concurrent_runs_on_one_sqlite_store(project: Path) -> None:
    _concurrent_runs(project, None)


@pytest.mark.postgres
def test_four_concurrent_runs_on_one_postgres_store(project: Path, postgres_url: str) -> None:
    _concurrent_runs(project, postgres_url)


def test_changing_a_helper_in_another_module_reruns_the_step(project: Path) -> None:
    first = run_json(project)
    assert first["status"] == "completed"
    cached = run_json(project)
    assert all(s["cache_hit"] for s in cached["steps"])
    (project / "helpers.py").write_text("def transform(n):\n    return n + 2\n")
    changed = run_json(project)
    hits = {s["name"]: s["cache_hit"] for s in changed["steps"]}
    assert hits == {"first": False, "gated": False, "last": False}
    # A comment-only change in an unrelated file keeps the cache.
    (project / "unrelated.py").write_text("# nothing\n")
    again = run_json(project)
    assert all(s["cache_hit"] for s in again["steps"])


def test_whole_process_run_with_no_cache_flag(project: Path) -> None:
    run_json(project)
    result = cli(project, "run", "flow.py:demo", "--no-cache", "--json")
    assert result.returncode == 0
    assert not any(s["cache_hit"] for s in json.loads(result.stdout)["steps"])


def test_scaffolded_project_tests_pass(tmp_path: Path) -> None:
    target = tmp_path / "proj"
    assert cli(tmp_path, "init", str(target)).returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=target,
        env=env_for(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_sigterm_marks_the_run_interrupted_at_once(project: Path) -> None:
    gate = project / "gate-term"
    process = subprocess.Popen(
        [CONVEYOR, "run", "flow.py:demo", "-q", "-p", f"gate={gate}"],
        cwd=project,
        env=env_for(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(Path(str(gate) + ".entered"))
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted" in err and "resume from cache" in err
    runs = json.loads(cli(project, "runs", "list", "--json").stdout)
    assert runs[0]["status"] == "interrupted"
    assert "SIGTERM" in runs[0]["error"]  # recorded by the run itself, not reconstructed later
