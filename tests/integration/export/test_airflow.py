"""The exported DAG run by a real Airflow (`airflow dags test`), stores on PostgreSQL.

Airflow lives in its own virtualenv (`make test` creates .venv-airflow from
tests/integration/export/airflow-requirements.txt); its tasks call this checkout's
`conveyor`. Afterwards the same pipeline run locally is fully cached.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import IN_CI

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[3]
CONVEYOR = str(Path(sys.executable).with_name("conveyor"))

PIPELINE = textwrap.dedent(
    """
    from conveyor import pipeline, step

    @step
    def load(n: int) -> list[int]:
        return list(range(n))

    @step(resources={"pool": "default_pool"})
    def square(x: int) -> int:
        return x * x

    @step
    def total(xs: list[int], scale: float) -> float:
        return sum(xs) * scale

    @pipeline
    def flow(n: int = 3, scale: float = 1.0):
        return total(square.map(load(n)), scale=scale)
    """
)


def _airflow() -> Path:
    path = Path(os.environ.get("CONVEYOR_TEST_AIRFLOW", REPO / ".venv-airflow/bin/airflow"))
    if not path.is_file():
        message = f"Airflow is not installed at {path} (make test installs it)"
        if IN_CI:
            pytest.fail(message + "; CI must provide it.")
        pytest.skip(message)
    return path


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(
        args, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_airflow_runs_the_exported_dag_with_the_same_cache_and_lineage(
    tmp_path: Path, postgres_url: str
) -> None:
    airflow = _airflow()
    project = tmp_path / "project"
    (project / "pipelines").mkdir(parents=True)
    (project / "pipelines" / "flow.py").write_text(PIPELINE)
    shared = tmp_path / "shared"
    (project / "conveyor.toml").write_text(
        f"[conveyor]\ndb_url = '{postgres_url}'\nartifact_url = 'file://{shared}'\n"
        "executor = 'inline'\n"
    )
    dags = tmp_path / "dags"
    dags.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "AIRFLOW_"))}
    _run(
        [CONVEYOR, "export", "airflow", "pipelines/flow.py:flow", "-o", str(dags / "flow.py")],
        project,
        env,
    )

    # Parsing the DAG imports Airflow only: neither conveyor nor the project's code.
    probe = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('conveyor', 'pipelines')]; "
        "assert not bad, bad"
    )
    airflow_env = {
        **env,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "CONVEYOR_BIN": CONVEYOR,
    }
    _run(
        [str(airflow.with_name("python")), "-c", probe, str(dags / "flow.py")], project, airflow_env
    )
    _run([str(airflow), "db", "migrate"], tmp_path, airflow_env)
    _run([str(airflow), "dags", "test", "flow"], tmp_path, airflow_env)

    runs = json.loads(_run([CONVEYOR, "runs", "list", "--json"], project, env))
    (run,) = runs
    assert run["status"] == "completed"
    shown = _run([CONVEYOR, "runs", "show", run["id"], "--json"], project, env)
    record = json.loads(shown)
    assert record["tags"]["conveyor.orchestrator"] == "airflow"
    assert record["tags"]["conveyor.orchestrator_run"].startswith("manual__")
    assert record["tags"]["airflow.dag_id"] == "flow"
    names = sorted(s["name"] for s in record["steps"])
    assert names == ["load", "square[0]", "square[1]", "square[2]", "total"]
    assert all(s["status"] == "completed" for s in record["steps"])
    text = _run([CONVEYOR, "runs", "show", run["id"]], project, env)
    assert "conveyor.orchestrator_run=manual__" in text.replace("\n", "")

    local = json.loads(_run([CONVEYOR, "run", "pipelines/flow.py:flow", "--json"], project, env))
    assert local["status"] == "completed"
    assert all(s["cache_hit"] for s in local["steps"]), local["steps"]
    assert len(local["steps"]) == 5
