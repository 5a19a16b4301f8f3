"""First `conveyor serve` of a never-served version (issue 17, target 3b), against a bare
FastAPI app that joblib-loads the same estimator, in the same run.

Every round registers a new version (a LogisticRegression pipeline fitted with another C,
so its bytes and hash are new) and promotes it; then `conveyor serve bench@production`
starts and the time from process start to its first answered /predict is measured, and
so is `benchmarks/serving/baseline_app.py` (FastAPI + uvicorn, `joblib.load`) with the
same fitted estimator. Rounds alternate the order; medians of wall time and of the server
process's CPU time at its first answer are printed with the load average. Both servers
run pinned to CPU 0, as in run.py (whose helpers this script uses). Target: at most 1.2x.

    .venv/bin/python benchmarks/serving/first_start.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import CONVEYOR, PY, ROOT, cpu_seconds, free_port, pin, start, stop  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from conveyor.registry import Registry
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.metadata import open_metadata_store
    from conveyor.training.model import Model

    work = Path(tempfile.mkdtemp(prefix="conveyor-first-start-"))
    env = dict(os.environ)
    env["CONVEYOR_DB_URL"] = f"sqlite:///{work / 'conveyor.db'}"
    env["CONVEYOR_ARTIFACT_URL"] = str(work / "artifacts")
    registry = Registry(
        open_metadata_store(env["CONVEYOR_DB_URL"]),
        open_artifact_store(env["CONVEYOR_ARTIFACT_URL"]),
    )
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    body = json.dumps({"records": [{k: float(v) for k, v in X.iloc[0].items()}]}).encode()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)

    wall: dict[str, list[float]] = {"conveyor": [], "baseline": []}
    cpu: dict[str, list[float]] = {"conveyor": [], "baseline": []}
    for rnd in range(args.rounds):
        fitted = make_pipeline(StandardScaler(), LogisticRegression(C=0.1 + rnd, max_iter=5000))
        fitted.fit(X, y)
        version = registry.register(
            Model.from_fitted(fitted, X, profile=False), "bench", promote_to="production"
        )
        path = work / f"v{version.version}.joblib"
        joblib.dump(fitted, path)
        order = ["conveyor", "baseline"] if rnd % 2 == 0 else ["baseline", "conveyor"]
        line = [f"round {rnd + 1} (version {version.version}, load {os.getloadavg()[0]:.1f}):"]
        for server in order:
            port = free_port()
            if server == "conveyor":
                cmd = [*pin(0), CONVEYOR, "serve", "bench@production", "--port", str(port)]
                senv = env
            else:
                cmd = [*pin(0), PY, "-m", "uvicorn", "benchmarks.serving.baseline_app:app"]
                cmd += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
                senv = dict(env, BASELINE_MODEL=str(path), PYTHONPATH=str(ROOT))
            proc, seconds = start(cmd, senv, work, port, body)
            try:
                used = cpu_seconds(proc.pid)
            finally:
                stop(proc)
            wall[server].append(seconds)
            cpu[server].append(used)
            line.append(f"{server} {seconds:.2f} s (cpu {used:.2f} s)")
        print(" ".join(line), flush=True)

    print(f"first start to first answer, median of {args.rounds}:")
    for label, figures in (("wall", wall), ("cpu", cpu)):
        a, b = statistics.median(figures["conveyor"]), statistics.median(figures["baseline"])
        verdict = "met" if a / b <= 1.2 else "NOT met"
        print(
            f"  {label:4} conveyor {a:.2f} s vs baseline {b:.2f} s -> {a / b:.2f}x "
            f"[target <= 1.2x: {verdict}]"
        )
    print(f"after: load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
