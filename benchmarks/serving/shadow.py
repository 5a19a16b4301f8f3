"""Shadow release cost: answer latency with a shadow version against without, same run.

    .venv/bin/python benchmarks/serving/shadow.py [--duration 10] [--concurrency 64]

LogisticRegression (StandardScaler pipeline) on breast-cancer data, registered as
bench-lr@production and a second fit as bench-lr@challenger. The server (one worker,
pinned to CPU 0) runs `conveyor serve bench-lr@production`, then the same with
`--shadow bench-lr@challenger`; the load generator (pinned to CPU 1) sends one-row
requests at the given concurrency. Reported: req/s and p50/p99 of both, and the p99 ratio
(target: shadow on within 10% of shadow off), plus how many shadow scorings were dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import CONVEYOR, free_port, load, pin, start, stop


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()

    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from conveyor.registry import Registry
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.metadata import open_metadata_store
    from conveyor.training.model import Model

    work = Path(tempfile.mkdtemp(prefix="conveyor-shadow-bench-"))
    env = dict(os.environ)
    env["CONVEYOR_DB_URL"] = f"sqlite:///{work / 'conveyor.db'}"
    env["CONVEYOR_ARTIFACT_URL"] = str(work / "artifacts")
    registry = Registry(
        open_metadata_store(env["CONVEYOR_DB_URL"]),
        open_artifact_store(env["CONVEYOR_ARTIFACT_URL"]),
    )
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    for alias, c in (("production", 1.0), ("challenger", 0.1)):
        fitted = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(X, y)
        registry.register(Model.from_fitted(fitted, X, profile=False), "bench-lr", promote_to=alias)
    body = json.dumps({"records": [{k: float(v) for k, v in X.iloc[0].items()}]}).encode()
    body_file = work / "body.json"
    body_file.write_bytes(body)
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
        f"concurrency {args.concurrency}, {args.duration:.0f} s per run",
        flush=True,
    )
    rows = {}
    for label, extra in (("shadow off", []), ("shadow on", ["--shadow", "bench-lr@challenger"])):
        port = free_port()
        cmd = [*pin(0), CONVEYOR, "serve", "bench-lr@production", "--port", str(port), *extra]
        proc, _ = start(cmd, env, work, port, body)
        try:
            time.sleep(1.0)  # benchmark only: let the challenger load before measuring
            result = load(port, body_file, args.concurrency, args.duration)
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        finally:
            stop(proc)
        dropped = next(
            (
                float(line.split()[-1])
                for line in metrics.splitlines()
                if line.startswith("conveyor_serving_shadow_dropped_total")
            ),
            0.0,
        )
        rows[label] = result
        print(
            f"{label:10s} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.1f} ms  "
            f"p99 {result['p99_ms']:6.1f} ms  errors {result['errors']:.0f}  "
            f"shadow dropped {dropped:.0f}",
            flush=True,
        )
    off, on = rows["shadow off"], rows["shadow on"]
    print(
        f"ratio: p99 x{on['p99_ms'] / off['p99_ms']:.2f} of shadow off (target <= 1.10), "
        f"throughput x{on['rps'] / off['rps']:.2f}"
    )


if __name__ == "__main__":
    main()
