"""The Dask executor: same results, cache and lineage as local runs; resources; failures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import pipeline, step
from conveyor.config import Settings
from conveyor.exceptions import ConfigError, RunFailedError
from conveyor.execution.dask import (
    DaskExecutor,
    check_artifact_store,
    dask_resources,
    parse_memory,
)
from conveyor.execution.orchestrator import run_pipeline
from conveyor.stores.metadata import open_metadata_store
from tests.conftest import make_settings

from . import dask_steps as d

pytestmark = pytest.mark.slow
DASK = str(Path(sys.executable).with_name("dask"))


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskExecutor]:
    executor = DaskExecutor(n_workers=2)
    yield executor
    executor.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def hits(run) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    return {row["name"]: bool(row["cache_hit"]) for row in run.steps()}


def test_fan_out_on_dask_matches_local(settings: Settings, cluster: DaskExecutor) -> None:
    run = run_pipeline(d.fan, {"n": 8}, settings=settings, executor=cluster)
    assert run.output() == sum(i * i for i in range(8))
    assert run.record["executor"] == "dask-local:2"
    pids = {row["host"] for row in run.steps()}
    assert pids == {socket.gethostname()}


def test_dask_then_local_is_fully_cached_and_vice_versa(
    tmp_path: Path, cluster: DaskExecutor
) -> None:
    first = make_settings(tmp_path / "a")
    run_pipeline(d.fan, {"n": 5}, settings=first, executor=cluster)
    local = run_pipeline(d.fan, {"n": 5}, settings=first, executor="threads")
    assert all(hits(local).values())
    second = make_settings(tmp_path / "b")
    run_pipeline(d.fan, {"n": 5}, settings=second, executor="threads")
    remote = run_pipeline(d.fan, {"n": 5}, settings=second, executor=cluster)
    assert all(hits(remote).values())


def test_metadata_is_identical_apart_from_executor_and_host(
    tmp_path: Path, cluster: DaskExecutor
) -> None:
    def recorded(settings: Settings, executor: object) -> tuple[list, list]:  # type: ignore[type-arg]
        run = run_pipeline(d.fan, {"n": 4}, settings=settings, executor=executor)  # type: ignore[arg-type]
        store = open_metadata_store(settings.db_url)
        keep = ("name", "step", "status", "attempts", "cache_key", "cache_hit", "params")
        steps = sorted(tuple((k, json.dumps(r[k])) for k in keep) for r in run.steps())
        artifacts = sorted(
            (
                a["edge_name"],
                a["content_hash"],
                a["type_name"],
                a["materializer"],
                a["size"],
                json.dumps(a["summary"], sort_keys=True),
            )
            for a in store.artifacts_of_run(run.id)
        )
        return steps, artifacts

    on_dask = recorded(make_settings(tmp_path / "dask"), cluster)
    on_threads = recorded(make_settings(tmp_path / "threads"), "threads")
    assert on_dask == on_threads


def test_closure_step_from_a_notebook_runs_on_dask(
    settings: Settings, cluster: DaskExecutor
) -> None:
    offset = 100

    @step
    def shifted(x: int) -> int:
        return x + offset

    @pipeline
    def p():
        return shifted(d.source(1))

    assert run_pipeline(p, settings=settings, executor=cluster).output() == 101


def test_unshippable_step_gets_a_clear_error(settings: Settings, cluster: DaskExecutor) -> None:
    lock = threading.Lock()

    @step
    def locked(x: int) -> int:
        with lock:
            return x

    @pipeline
    def p():
        return locked(d.source(1))

    with pytest.raises(RunFailedError, match="Cannot ship 'locked' to Dask workers"):
        run_pipeline(p, settings=settings, executor=cluster)


def test_step_asking_for_resources_no_worker_has_fails_clearly(
    settings: Settings, cluster: DaskExecutor
) -> None:
    with pytest.raises(RunFailedError, match="No Dask worker offers the resources"):
        run_pipeline(d.too_big_pipeline, settings=settings, executor=cluster)


def test_resources_route_the_step_to_the_worker_that_has_them(settings: Settings) -> None:
    executor = DaskExecutor(n_workers=1)
    address = executor.client.scheduler.address
    gpu_worker = subprocess.Popen(
        [
            DASK,
            "worker",
            address,
            "--no-nanny",
            "--nthreads",
            "1",
            "--resources",
            "GPU=1",
            "--no-dashboard",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        executor.client.wait_for_workers(2, timeout=60)
        run = run_pipeline(d.gpu_pipeline, settings=settings, executor=executor)
        assert run.output() == gpu_worker.pid
    finally:
        gpu_worker.terminate()
        gpu_worker.wait(timeout=30)
        executor.shutdown()


def test_fsspec_object_store_shared_by_in_process_workers(tmp_path: Path) -> None:
    settings = make_settings(tmp_path).with_overrides(
        artifact_url=f"memory://conveyor-dask-{uuid.uuid4().hex}"
    )
    executor = DaskExecutor(n_workers=2, processes=False)
    try:
        run = run_pipeline(d.fan, {"n": 6}, settings=settings, executor=executor)
        assert run.output() == sum(i * i for i in range(6))
        again = run_pipeline(d.fan, {"n": 6}, settings=settings, executor="threads")
        assert all(hits(again).values())
    finally:
        executor.shutdown()


def test_local_folder_store_is_refused_for_workers_on_other_hosts() -> None:
    info = {"workers": {"tcp://10.1.2.3:40000": {}, "tcp://127.0.0.1:40001": {}}}
    with pytest.raises(ConfigError, match=r"other hosts \(10\.1\.2\.3\).*CONVEYOR_ARTIFACT_URL"):
        check_artifact_store("/data/artifacts", info)
    check_artifact_store("s3://bucket/conveyor", info)  # shared storage is fine
    check_artifact_store("/data/artifacts", {"workers": {"tcp://127.0.0.1:1": {}}})


def test_resource_translation() -> None:
    assert dask_resources({"cpus": 2, "gpus": 1, "memory": "8GiB"}) == {
        "CPU": 2.0,
        "GPU": 1.0,
        "MEMORY": 8 * 2**30,
    }
    assert parse_memory("512MB") == 512e6
    with pytest.raises(ConfigError, match="8GiB"):
        parse_memory("lots")


def test_killing_a_worker_mid_step_reruns_it_elsewhere(settings: Settings, tmp_path: Path) -> None:
    executor = DaskExecutor(n_workers=2)
    folder = tmp_path / "marks"
    folder.mkdir()
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["run"] = run_pipeline(
                d.killable, {"folder": str(folder)}, settings=settings, executor=executor
            )
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not list(folder.glob("attempt-*")):
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.02)
        pid = int(next(folder.glob("attempt-*")).name.split("-")[1])
        os.kill(pid, signal.SIGKILL)
        thread.join(timeout=120)
        assert not thread.is_alive()
        assert "error" not in result, result.get("error")
        run = result["run"]
        assert run.output() == 2  # type: ignore[attr-defined]
        assert run.status == "completed"  # type: ignore[attr-defined]
    finally:
        executor.shutdown()


def test_killing_the_scheduler_fails_the_run_and_rerun_resumes(tmp_path: Path) -> None:
    project = tmp_path
    (project / "conveyor.toml").write_text("[conveyor]\n")
    (project / "flow.py").write_text(
        "from tests.integration.dask_steps import gated_pipeline as demo\n"
    )
    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["PYTHONPATH"] = str(repo)

    def start_cluster(port: int) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
        scheduler = subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        worker = subprocess.Popen(
            [DASK, "worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1", "--no-dashboard"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=project,
        )
        return scheduler, worker

    port = free_port()
    scheduler, worker = start_cluster(port)
    gate = project / "gate"
    conveyor = str(Path(sys.executable).with_name("conveyor"))
    try:
        run = subprocess.Popen(
            [
                conveyor,
                "run",
                "flow.py:demo",
                "-q",
                "--executor",
                f"dask://127.0.0.1:{port}",
                "-p",
                f"gate={gate}",
            ],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 90
        while not Path(str(gate) + ".entered").exists():
            assert time.monotonic() < deadline, "the gated step never started"
            assert run.poll() is None, run.communicate()
            time.sleep(0.05)
        scheduler.send_signal(signal.SIGKILL)
        scheduler.wait(timeout=30)
        _, err = run.communicate(timeout=120)
        assert run.returncode != 0
        assert "Dask scheduler" in err
    finally:
        for process in (scheduler, worker):
            process.kill()
            process.wait(timeout=30)
    Path(str(gate) + ".open").touch()
    port = free_port()
    scheduler, worker = start_cluster(port)
    try:
        again = subprocess.run(
            [
                conveyor,
                "run",
                "flow.py:demo",
                "--json",
                "--executor",
                f"dask://127.0.0.1:{port}",
                "-p",
                f"gate={gate}",
            ],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert again.returncode == 0, again.stderr
        steps = {s["name"]: s["cache_hit"] for s in json.loads(again.stdout)["steps"]}
        assert steps == {"source": True, "gated": False}
    finally:
        for process in (scheduler, worker):
            process.terminate()
            process.wait(timeout=30)


def test_tuning_trials_run_in_parallel_on_dask(
    settings: Settings, cluster: DaskExecutor, tmp_path: Path
) -> None:
    import functools

    from conveyor.training.tuning import tune

    result = tune(
        functools.partial(d.quadratic, str(tmp_path)),
        {"x": ("float", -5.0, 5.0)},
        n_trials=12,
        parallel=2,
        executor=cluster,
        study_name="dask-study",
        metadata_store=open_metadata_store(settings.db_url),
    )
    assert len(result.trials) == 12
    assert abs(result.best_params["x"] - 2.0) < 2.0
    pids = {int(p.name.split("-")[1]) for p in tmp_path.glob("pid-*")}
    workers = set(cluster.client.run(os.getpid).values())
    assert pids and pids <= workers and os.getpid() not in pids
