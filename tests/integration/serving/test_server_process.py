"""End to end against real `conveyor serve` processes on free 127.0.0.1 ports."""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest

from conveyor.stores.artifacts import open_artifact_store

CONVEYOR = str(Path(sys.executable).parent / "conveyor")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], headers: Any = None) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{url}/readyz", headers=headers, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("server not ready within 60 s")


@pytest.fixture
def server(project: Any) -> Iterator[tuple[str, subprocess.Popen[bytes], Any]]:
    root, env, _ = project
    port = free_port()
    proc = subprocess.Popen(
        [CONVEYOR, "serve", "cancer@production", "--port", str(port), "--reload-interval", "0.2"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        yield url, proc, project
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> bytes:
    """Interrupt the server (if still running) and return its stderr."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def _row(cancer: pd.DataFrame, i: int) -> dict[str, float]:
    return {k: float(v) for k, v in cancer.drop(columns="target").iloc[i].items()}


@pytest.mark.slow
def test_serve_reload_under_load_and_crash_safe_logs(server: Any, cancer: pd.DataFrame) -> None:
    url, proc, (_, env, registry) = server
    with httpx.Client(base_url=url, timeout=10) as client:
        r = client.post("/predict", json={"records": [_row(cancer, 0), _row(cancer, 1)]})
        assert r.status_code == 200 and r.json()["version"] == "1"
        assert client.post("/predict", content=b"{nope").status_code == 400
        r = client.post(
            "/v2/models/cancer/infer",
            json={
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, 30],
                        "datatype": "FP64",
                        "data": list(_row(cancer, 0).values()),
                    }
                ]
            },
        )
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [0]

    failures: list[str] = []
    versions: list[str] = []
    stop = threading.Event()

    def hammer(i: int) -> None:
        body = {"records": [_row(cancer, i)]}
        with httpx.Client(base_url=url, timeout=10) as c:
            while not stop.is_set():
                try:
                    resp = c.post("/predict", json=body)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if resp.status_code != 200:
                    failures.append(resp.text)
                else:
                    versions.append(resp.json()["version"])

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(versions) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    registry.promote("cancer", 2, "production", reason="test hot reload")
    while "2" not in versions[-50:] and time.monotonic() < deadline:
        time.sleep(0.01)
    n = len(versions)
    while len(versions) < n + 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert versions[0] == "1" and versions[-1] == "2"
    metrics = httpx.get(f"{url}/metrics").text
    assert "conveyor_serving_model_reloads_total 1.0" in metrics
    assert 'conveyor_serving_model_info{model="cancer",version="2"} 1.0' in metrics

    # Segments roll every 5 s; wait for one, then kill -9 mid-stream.
    store = open_artifact_store(env["CONVEYOR_ARTIFACT_URL"])
    deadline = time.monotonic() + 20
    while not store.list_files("predictions/cancer") and time.monotonic() < deadline:
        httpx.post(f"{url}/predict", json={"records": [_row(cancer, 3)]})
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    segments = store.list_files("predictions/cancer")
    assert segments
    logged = pd.concat(
        [pq.read_table(io.BytesIO(store.read_file(p))).to_pandas() for p in segments]
    )
    assert set(logged["_model_version"]) <= {"1", "2"}
    assert logged["_request_id"].notna().all()
    assert not list((Path(env["CONVEYOR_ARTIFACT_URL"]) / "files").rglob("*.part"))


def test_refuses_a_public_address_without_a_token(project: Any) -> None:
    root, env, _ = project
    result = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [CONVEYOR, "serve", "cancer@production", "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Refusing to bind '0.0.0.0' without a token" in result.stderr


@pytest.mark.slow
def test_token_protects_a_public_bind(project: Any, cancer: pd.DataFrame) -> None:
    root, env, _ = project
    token = root / "token"
    token.write_text("t0ken-for-tests\n")
    token.chmod(0o600)
    port = free_port()
    proc = subprocess.Popen(
        [
            CONVEYOR,
            "serve",
            "cancer@production",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--token-file",
            str(token),
            "--no-log-predictions",
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    good = {"Authorization": "Bearer t0ken-for-tests"}
    try:
        wait_ready(url, proc, headers=good)
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/readyz").status_code == 401
        body = {"records": [_row(cancer, 0)]}
        assert httpx.post(f"{url}/predict", json=body).status_code == 401
        assert httpx.post(f"{url}/predict", json=body, headers=good).status_code == 200
    finally:
        err = stop(proc)
    assert b"t0ken-for-tests" not in err


@pytest.mark.slow
def test_predict_command_scores_a_file(project: Any, cancer: pd.DataFrame) -> None:
    root, env, _ = project
    cancer.drop(columns="target").to_parquet(root / "in.parquet")
    result = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [
            CONVEYOR,
            "predict",
            "cancer@production",
            "in.parquet",
            "out.parquet",
            "--chunk-rows",
            "200",
            "--json",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert '"rows_scored": 569' in result.stdout
    scored = pd.read_parquet(root / "out.parquet")
    assert len(scored) == 569 and scored["_row"].is_monotonic_increasing


@pytest.mark.slow
def test_predict_command_on_a_dask_executor_matches_one_process(
    project: Any, cancer: pd.DataFrame
) -> None:
    root, env, _ = project
    cancer.drop(columns="target").to_parquet(root / "in.parquet")
    outputs = []
    for name, extra in (("single", []), ("dask", ["--executor", "dask-local:2"])):
        result = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
            [
                *(CONVEYOR, "predict", "cancer@production", "in.parquet", f"{name}.parquet"),
                *("--chunk-rows", "100", "--json", *extra),
            ],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr
        outputs.append(pd.read_parquet(root / f"{name}.parquet"))
    assert len(outputs[0]) == 569
    pd.testing.assert_frame_equal(outputs[1], outputs[0])


def test_store_flags_reach_the_scoring_code(project: Any, cancer: pd.DataFrame) -> None:
    root, env, _ = project
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    cancer.drop(columns="target").to_parquet(elsewhere / "in.parquet")
    flags = ["--db-url", env["CONVEYOR_DB_URL"], "--artifact-url", env["CONVEYOR_ARTIFACT_URL"]]
    plain = {k: v for k, v in env.items() if not k.startswith("CONVEYOR_")}
    result = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [CONVEYOR, *flags, "predict", "cancer@production", "in.parquet", "out.parquet", "--json"],
        cwd=elsewhere,
        env=plain,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert '"rows_scored": 569' in result.stdout
    assert not (elsewhere / ".conveyor").exists()
