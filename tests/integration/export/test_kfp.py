"""The exported KFP pipeline run by the KFP SDK's local runner, stores on PostgreSQL.

`kfp.local` walks the exported pipeline spec itself: the exit handler, task dependencies,
the ParallelFor over the width task's output parameter, placeholder resolution (the
pipeline job id as the run key, output-parameter files) and the finish task's
``ALL_UPSTREAM_TASKS_COMPLETED`` trigger. Each task runs its container's command and
arguments as a local process in the project folder, which is what the image would run.

One check of the SDK is lifted: `SubprocessRunner` refuses any container component
("The SubprocessRunner only supports running Lightweight Python Components. You are
attempting to run a Container Component."), and its `DockerRunner` needs a Docker daemon,
which this machine does not have. Nothing else of kfp.local is replaced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    # kfp.local says that requests/limits have no effect locally, and warns on any image.
    pytest.mark.filterwarnings("ignore:Task .* have no effect in the current local runner"),
    pytest.mark.filterwarnings("ignore:You may be attemping to run a task"),
]

BIN = Path(sys.executable).parent
CONVEYOR = str(BIN / "conveyor")
IMAGE = "registry.example/ml-python:1"

PIPELINE = textwrap.dedent(
    """
    from conveyor import pipeline, step

    @step
    def load(n: int) -> list[int]:
        return list(range(n))

    @step(resources={"cpus": 1, "memory": "256MiB"})
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


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        args, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_kfp_local_runs_the_exported_pipeline_with_the_same_cache_and_lineage(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kfp import components, local
    from kfp.local import subprocess_task_handler

    project = tmp_path / "project"
    (project / "pipelines").mkdir(parents=True)
    (project / "pipelines" / "flow.py").write_text(PIPELINE)
    shared = tmp_path / "shared"
    (project / "conveyor.toml").write_text(
        f"[conveyor]\ndb_url = '{postgres_url}'\nartifact_url = 'file://{shared}'\n"
        "executor = 'inline'\n"
    )
    for name in [k for k in os.environ if k.startswith("CONVEYOR_")]:
        monkeypatch.delenv(name)
    env = dict(os.environ)
    spec = project / "flow-pipeline.yaml"
    _run(
        [CONVEYOR, "export", "kfp", "pipelines/flow.py:flow", "-o", str(spec), "--image", IMAGE],
        project,
        env,
    )

    # The tasks' processes inherit the working directory and PATH (`conveyor` is the
    # containers' command).
    monkeypatch.chdir(project)
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(
        subprocess_task_handler.SubprocessTaskHandler,
        "validate_not_container_component",
        lambda self, full_command: None,
    )
    local.init(
        runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp-root")
    )
    pipeline = components.load_component_from_file(str(spec))
    pipeline(n=3, scale=2.0)  # raises when a task fails

    runs = json.loads(_run([CONVEYOR, "runs", "list", "--json"], project, env))
    (run,) = runs
    assert run["status"] == "completed" and run["params"] == {"n": 3, "scale": 2.0}
    record = json.loads(_run([CONVEYOR, "runs", "show", run["id"], "--json"], project, env))
    assert record["tags"]["conveyor.orchestrator"] == "kfp"
    assert record["tags"]["kfp.pipeline_job"].startswith("flow-")  # the KFP job's name
    assert record["tags"]["conveyor.orchestrator_run"] == run["trigger"]["run"]
    names = sorted(s["name"] for s in record["steps"])
    assert names == ["load", "square[0]", "square[1]", "square[2]", "total"]
    assert all(s["status"] == "completed" and not s["cache_hit"] for s in record["steps"])

    local_run = json.loads(
        _run(
            [CONVEYOR, "run", "pipelines/flow.py:flow", "-p", "n=3", "-p", "scale=2.0", "--json"],
            project,
            env,
        )
    )
    assert local_run["status"] == "completed"
    assert len(local_run["steps"]) == 5
    assert all(s["cache_hit"] for s in local_run["steps"]), local_run["steps"]
