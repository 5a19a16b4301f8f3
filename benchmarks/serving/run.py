"""Serving benchmark: conveyor's server vs a minimal FastAPI app, and batch scoring.

Online: for LogisticRegression (StandardScaler pipeline) and RandomForest (100 trees)
trained on scikit-learn's breast-cancer data, each server runs as its own process with one
worker pinned to CPU 0 (when the machine has 2+ CPUs) and the load generator runs pinned to
CPU 1. The baseline (`baseline_app.py`: FastAPI + uvicorn calling `model.predict` on the
same estimator) is measured in the same run, rounds interleaved (the order flips every
round) and medians taken. Scenarios, each against the baseline:

- ``c1``: one-row requests, one client at a time (LR): req/s and p99;
- ``c4x100``: 100-row requests at concurrency 4 (LR): req/s;
- ``c64``: one-row requests at concurrency 64 (LR and RF): req/s (micro-batching pays);
- ``cpu``: server CPU per request (user + system from /proc/PID/stat deltas over the load
  run, warm-up included, divided by every answered request) of conveyor with batching
  off (``--no-batching``), at c1 and c64, one-row LR;
- ``pss``: idle PSS (/proc/PID/smaps_rollup) after the first answer and a second's rest;
- ``start``: process start to the first answered /predict, a restart (serving cache
  existing; the first start after registration is printed apart, as "first start").

The load generator's own ceiling (against a trivial server) and the load average are
printed first; the load average is printed again with every round.

Batch: `score_file` on N rows (breast-cancer rows repeated) vs `model.predict` on the same
frame in memory in one process; peak memory of the scoring process for N/4 and N rows.

    .venv/bin/python benchmarks/serving/run.py [--duration 5] [--rounds 3] [--only lr rf]
        [--batch-rows 0] [--serve-args ...]

`--batch-rows 0` skips the batch part.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
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


def pss_mb(pid: int) -> float:
    """Proportional set size (shared pages split among their users), in MiB."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return float("nan")


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)


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


def load(
    port: int,
    body_file: Path,
    concurrency: int,
    duration: float,
    warmup: float = 2.0,
    pid: int | None = None,
) -> dict[str, float]:
    """Run the load generator; with `pid`, also the server's CPU ms per request."""
    before = cpu_seconds(pid) if pid is not None else 0.0
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
            str(warmup),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout)
    if pid is not None:
        used = cpu_seconds(pid) - before
        result["cpu_ms"] = 1000 * used / max(result["all_requests"], 1)
    return result


# Scenarios: name -> (body, concurrency). Which run for which model and server is below.
SCENARIOS = {"c1": ("one", 1), "c4x100": ("hundred", 4), "c64": ("one", 64)}
PLAN = {
    # (kind, server) -> scenarios
    ("lr", "baseline"): ["c1", "c4x100", "c64"],
    ("lr", "conveyor"): ["c1", "c4x100", "c64"],
    ("lr", "nobatch"): ["c1", "c64"],
    ("rf", "baseline"): ["c1", "c64"],
    ("rf", "conveyor"): ["c1", "c64"],
}


def _server_cmd(
    args: argparse.Namespace, kind: str, server: str, port: int, model_path: Path
) -> tuple[list[str], dict[str, str] | None]:
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
        return cmd, {"BASELINE_MODEL": str(model_path), "PYTHONPATH": str(ROOT)}
    cmd = [*pin(0), CONVEYOR, "serve", f"bench-{kind}@production", "--port", str(port)]
    if server == "nobatch":
        cmd.append("--no-batching")
    return [*cmd, *args.serve_args], None


def _adder(samples: dict[tuple[str, str], list[float]]) -> Any:
    def add(server: str, metric: str, value: float) -> None:
        samples.setdefault((server, metric), []).append(value)

    return add


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def online(
    args: argparse.Namespace, work: Path, env: dict[str, str], models: dict[str, Any], X: Any
) -> None:
    bodies: dict[str, Path] = {}
    for name, n in (("one", 1), ("hundred", 100)):
        records = [{k: float(v) for k, v in X.iloc[i].items()} for i in range(n)]
        bodies[name] = work / f"body-{name}.json"
        bodies[name].write_bytes(json.dumps({"records": records}).encode())
    one = bodies["one"].read_bytes()

    port = free_port()
    echo = subprocess.Popen([*pin(0), PY, str(HERE / "loadgen.py"), "--echo-server", str(port)])
    try:
        time.sleep(0.5)  # benchmark only: the echo server has no readiness endpoint
        ceiling = load(port, bodies["one"], 64, args.duration / 2)
    finally:
        echo.terminate()
        echo.wait()
    print(f"load generator ceiling (trivial server, c64): {ceiling['rps']:.0f} req/s")

    import joblib

    for kind in args.only:
        path = work / f"{kind}.joblib"
        joblib.dump(models[kind].obj, path)
        servers = [s for (k, s) in PLAN if k == kind]
        # The first start after registration loads through skops and writes the serving
        # cache; restarts (the usual case, measured below) read it.
        port = free_port()
        cmd, _ = _server_cmd(args, kind, "conveyor", port, path)
        cold, cold_s = start(cmd, env, work, port, one)
        stop(cold)
        print(f"{kind} conveyor first start (writes the serving cache): {cold_s:.2f} s")
        # samples[(server, metric)] -> values over rounds
        samples: dict[tuple[str, str], list[float]] = {}
        add = _adder(samples)

        for rnd in range(args.rounds):
            order = servers if rnd % 2 == 0 else servers[::-1]
            print(f"{kind} round {rnd + 1}: load average {os.getloadavg()[0]:.2f}", flush=True)
            for server in order:
                port = free_port()
                cmd, extra = _server_cmd(args, kind, server, port, path)
                senv = dict(env, **extra) if extra else env
                proc, startup = start(cmd, senv, work, port, one)
                try:
                    time.sleep(1.0)  # benchmark only: let the server settle before PSS
                    add(server, "start", startup)
                    add(server, "pss", pss_mb(proc.pid))
                    add(server, "rss", rss_mb(proc.pid))
                    cpu0 = cpu_seconds(proc.pid)
                    line = [f"  {server:8s} start {startup:4.2f} s pss {pss_mb(proc.pid):4.0f}"]
                    for scenario in PLAN[(kind, server)]:
                        body, conc = SCENARIOS[scenario]
                        r = load(port, bodies[body], conc, args.duration, args.warmup, proc.pid)
                        for metric in ("rps", "p50_ms", "p99_ms", "cpu_ms", "errors"):
                            add(server, f"{scenario}.{metric}", r[metric])
                        line.append(
                            f"{scenario} {r['rps']:.0f}/s p99 {r['p99_ms']:.1f} ms "
                            f"cpu {r['cpu_ms']:.2f} ms"
                        )
                    add(server, "cpu_total_s", cpu_seconds(proc.pid) - cpu0)
                finally:
                    stop(proc)
                print(" | ".join(line), flush=True)
        _report(kind, servers, samples)


def _report(kind: str, servers: list[str], samples: dict[tuple[str, str], list[float]]) -> None:
    def m(server: str, metric: str) -> float:
        return _median(samples.get((server, metric), []))

    print(f"\n{kind}: medians over rounds (load average now {os.getloadavg()[0]:.2f})")
    print(
        f"{'server':9s} {'scenario':8s} {'req/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} "
        f"{'cpu ms/req':>10s} {'errors':>6s}"
    )
    for server in servers:
        for scenario in PLAN[(kind, server)]:
            print(
                f"{server:9s} {scenario:8s} {m(server, scenario + '.rps'):8.0f} "
                f"{m(server, scenario + '.p50_ms'):7.1f} {m(server, scenario + '.p99_ms'):7.1f} "
                f"{m(server, scenario + '.cpu_ms'):10.2f} {m(server, scenario + '.errors'):6.0f}"
            )
        print(
            f"{server:9s} start {m(server, 'start'):.2f} s, idle PSS {m(server, 'pss'):.0f} "
            f"MiB (RSS {m(server, 'rss'):.0f} MiB), server CPU over all scenarios "
            f"{m(server, 'cpu_total_s'):.1f} s"
        )

    def ratio(a: str, b: str, metric: str) -> float:
        return m(a, metric) / m(b, metric)

    checks: list[tuple[str, float, str, float]] = []  # (what, value, op, bound)
    if kind == "lr":
        checks += [
            ("c1 one-row throughput", ratio("conveyor", "baseline", "c1.rps"), ">=", 0.9),
            ("c1 one-row p99", ratio("conveyor", "baseline", "c1.p99_ms"), "<=", 1.2),
            ("c4 100-row throughput", ratio("conveyor", "baseline", "c4x100.rps"), ">=", 0.9),
            ("CPU/request, batching off, c1", ratio("nobatch", "baseline", "c1.cpu_ms"), "<=", 1.3),
            (
                "CPU/request, batching off, c64",
                ratio("nobatch", "baseline", "c64.cpu_ms"),
                "<=",
                1.3,
            ),
            ("c64 one-row throughput", ratio("conveyor", "baseline", "c64.rps"), ">=", 2.5),
        ]
    else:
        checks += [
            ("c1 one-row throughput", ratio("conveyor", "baseline", "c1.rps"), ">=", 0.9),
            ("c64 one-row throughput", ratio("conveyor", "baseline", "c64.rps"), ">=", 20.0),
        ]
    checks += [
        ("idle PSS", ratio("conveyor", "baseline", "pss"), "<=", 1.15),
        ("start-up (restart)", ratio("conveyor", "baseline", "start"), "<=", 1.2),
    ]
    print(f"{kind}: conveyor / baseline (target)")
    for what, value, op, bound in checks:
        ok = value >= bound if op == ">=" else value <= bound
        print(f"  {what:32s} x{value:6.2f}  ({op} {bound})  {'met' if ok else 'NOT met'}")
    print(flush=True)


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
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
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
        f"{args.rounds} rounds, {args.duration:.0f} s per scenario",
        flush=True,
    )
    if not args.skip_online:
        online(args, work, env, models, X)
    if not args.skip_batch and args.batch_rows > 0:
        batch(args, work, env, X)


if __name__ == "__main__":
    main()
