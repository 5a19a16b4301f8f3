"""Serving benchmark: conveyor's server vs a minimal FastAPI app, and batch scoring.

Online: for LogisticRegression (StandardScaler pipeline) and RandomForest (100 trees)
trained on scikit-learn's breast-cancer data, each server runs as its own process with one
worker pinned to CPU 0 (when the machine has 2+ CPUs) and the load generator runs pinned to
CPU 1, one-row requests at the given concurrency. Reported: requests/s, p50/p99, errors,
time from process start to the first answered /predict, idle RSS, and the ratios to the
baseline. The load generator's own ceiling (against a trivial server) is printed first.

Batch: `score_file` on N rows (breast-cancer rows repeated) vs `model.predict` on the same
frame in memory in one process; peak memory of the scoring process for N/4 and N rows.

    .venv/bin/python benchmarks/serving/run.py [--duration 10] [--only lr] [--batch-rows 1000000]

`--batch-rows 0` skips the batch part. The conveyor server is started twice: the first
start after registration loads the model through skops and writes the serving cache (its
time is printed as "first start"); the measured server is the restart, which reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PY = sys.executable
CONVEYOR = str(Path(sys.executable).parent / "conveyor")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin(cpu: int) -> list[str]:
    if (os.cpu_count() or 1) >= 2 and Path("/usr/bin/taskset").exists():
        return ["taskset", "-c", str(cpu)]
    return []


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start(
    cmd: list[str], env: dict[str, str], cwd: Path, port: int, body: bytes
) -> tuple[subprocess.Popen[bytes], float]:
    """Start a server; return it and the seconds until its first answered /predict."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}/predict"
    with httpx.Client(timeout=5) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode())  # type: ignore[union-attr]
            try:
                r = client.post(url, content=body, headers={"content-type": "application/json"})
                if r.status_code == 200:
                    return proc, time.perf_counter() - t0
            except httpx.TransportError:
                pass
            time.sleep(0.01)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def load(port: int, body_file: Path, concurrency: int, duration: float) -> dict[str, float]:
    out = subprocess.run(
        [
            *pin(1),
            PY,
            str(HERE / "loadgen.py"),
            "--url",
            f"http://127.0.0.1:{port}/predict",
            "--body-file",
            str(body_file),
            "--concurrency",
            str(concurrency),
            "--duration",
            str(duration),
            "--warmup",
            "2",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def online(
    args: argparse.Namespace, work: Path, env: dict[str, str], models: dict[str, Any], X: Any
) -> None:
    record = {k: float(v) for k, v in X.iloc[0].items()}
    body = json.dumps({"records": [record]}).encode()
    body_file = work / "body.json"
    body_file.write_bytes(body)

    port = free_port()
    echo = subprocess.Popen([*pin(0), PY, str(HERE / "loadgen.py"), "--echo-server", str(port)])
    try:
        time.sleep(0.5)  # benchmark only: the echo server has no readiness endpoint
        ceiling = load(port, body_file, args.concurrency, args.duration / 2)
    finally:
        echo.terminate()
        echo.wait()
    print(f"load generator ceiling (trivial server): {ceiling['rps']:.0f} req/s")

    for kind in args.only:
        import joblib

        path = work / f"{kind}.joblib"
        joblib.dump(models[kind].obj, path)
        rows = {}
        for server in ("baseline", "conveyor"):
            port = free_port()
            if server == "baseline":
                cmd = [
                    *pin(0),
                    PY,
                    "-m",
                    "uvicorn",
                    "benchmarks.serving.baseline_app:app",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ]
                senv = dict(env, BASELINE_MODEL=str(path), PYTHONPATH=str(ROOT))
            else:
                cmd = [
                    *pin(0),
                    CONVEYOR,
                    "serve",
                    f"bench-{kind}@production",
                    "--port",
                    str(port),
                    *args.serve_args,
                ]
                senv = env
                # The first start after registration loads through skops and writes the
                # serving cache; restarts (the usual case) read it. Both are reported.
                cold, cold_s = start(cmd, senv, work, port, body)
                stop(cold)
            proc, startup = start(cmd, senv, work, port, body)
            try:
                time.sleep(1.0)  # benchmark only: let the server settle before reading RSS
                idle = rss_mb(proc.pid)
                result = load(port, body_file, args.concurrency, args.duration)
            finally:
                stop(proc)
            result.update(startup_s=startup, idle_rss_mb=idle)
            if server == "conveyor":
                result.update(cold_startup_s=cold_s)
            rows[server] = result
            print(
                f"{kind:3s} {server:9s} {result['rps']:8.0f} req/s  "
                f"p50 {result['p50_ms']:6.1f} ms  "
                f"p99 {result['p99_ms']:6.1f} ms  errors {result['errors']:.0f}  "
                f"start {startup:5.2f} s  idle RSS {idle:5.0f} MB"
                + (f"  (first start {cold_s:4.2f} s)" if server == "conveyor" else ""),
                flush=True,
            )
        b, c = rows["baseline"], rows["conveyor"]
        print(
            f"{kind:3s} ratio: throughput x{c['rps'] / b['rps']:.2f}, p99 "
            f"{c['p99_ms'] / b['p99_ms']:.2f} of baseline, startup "
            f"{c['startup_s'] / b['startup_s']:.2f} of baseline",
            flush=True,
        )


def _peak_child(code: str, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    out = subprocess.run(
        [PY, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


SCORE = """
import json, resource, sys
from conveyor.serving.batch import score_file
s = score_file("bench-{kind}@production", "{src}", "{dst}", chunk_rows={chunk}, workers={workers})
self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
out = {{"seconds": s.seconds, "rows": s.rows_scored, "peak_mb": self, "worker_peak_mb": kids}}
print(json.dumps(out))
"""

DIRECT = """
import json, resource, time
import pandas as pd
from conveyor.registry import load_model
model = load_model("bench-{kind}@production")
frame = pd.read_parquet("{src}")
t = time.perf_counter(); model.predict_proba(frame); seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": seconds, "peak_mb": peak}}))
"""


def batch(args: argparse.Namespace, work: Path, env: dict[str, str], X: Any) -> None:
    import pandas as pd

    for n in (args.batch_rows // 4, args.batch_rows):
        reps = -(-n // len(X))
        pd.concat([X] * reps, ignore_index=True).iloc[:n].to_parquet(
            work / f"in-{n}.parquet", row_group_size=args.chunk_rows
        )
    for kind in args.only:
        n = args.batch_rows
        src = work / f"in-{n}.parquet"
        direct = _peak_child(DIRECT.format(kind=kind, src=src), env, work)
        print(
            f"{kind:3s} batch: conveyor Model.predict_proba on {n:,} rows in memory: "
            f"{n / direct['seconds']:,.0f} rows/s (peak {direct['peak_mb']:.0f} MB)",
            flush=True,
        )
        for workers in args.batch_workers:
            peaks = []
            for rows in (n // 4, n):
                res = _peak_child(
                    SCORE.format(
                        kind=kind,
                        src=work / f"in-{rows}.parquet",
                        dst=work / "out.parquet",
                        chunk=args.chunk_rows,
                        workers=workers,
                    ),
                    env,
                    work,
                )
                peaks.append(res)
            res = peaks[-1]
            print(
                f"{kind:3s} batch: score_file workers={workers}: {n / res['seconds']:,.0f} rows/s "
                f"(x{direct['seconds'] / res['seconds']:.2f} of in-memory predict, file I/O "
                f"included); peak RSS parent {peaks[0]['peak_mb']:.0f} -> {res['peak_mb']:.0f} MB, "
                f"worker {peaks[0]['worker_peak_mb']:.0f} -> {res['worker_peak_mb']:.0f} MB "
                f"for {n // 4:,} -> {n:,} rows",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--only", nargs="+", default=["lr", "rf"])
    parser.add_argument("--batch-rows", type=int, default=1_000_000, help="0: no batch part")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--batch-workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-online", action="store_true")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--serve-args", nargs=argparse.REMAINDER, default=[])
    args = parser.parse_args()

    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from conveyor.registry import Registry
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.metadata import open_metadata_store
    from conveyor.training.model import Model

    work = Path(tempfile.mkdtemp(prefix="conveyor-serving-bench-"))
    env = dict(os.environ)
    env["CONVEYOR_DB_URL"] = f"sqlite:///{work / 'conveyor.db'}"
    env["CONVEYOR_ARTIFACT_URL"] = str(work / "artifacts")
    registry = Registry(
        open_metadata_store(env["CONVEYOR_DB_URL"]),
        open_artifact_store(env["CONVEYOR_ARTIFACT_URL"]),
    )
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    estimators = {
        "lr": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        "rf": RandomForestClassifier(n_estimators=100, random_state=0),
    }
    models = {}
    for kind in args.only:
        models[kind] = Model.from_fitted(estimators[kind].fit(X, y), X, profile=False)
        registry.register(models[kind], f"bench-{kind}", promote_to="production")
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"concurrency {args.concurrency}, {args.duration:.0f} s per run",
        flush=True,
    )
    if not args.skip_online:
        online(args, work, env, models, X)
    if not args.skip_batch and args.batch_rows > 0:
        batch(args, work, env, X)
    _ = resource


if __name__ == "__main__":
    main()
