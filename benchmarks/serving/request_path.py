"""Where a request's CPU goes: conveyor's ASGI app in process, against the baseline's work.

No HTTP server and no load generator: the ASGI app is called directly, one request at a
time (as a c1 client does), so the figure is the app's own CPU per request (process CPU
time over the loop, the model thread and the prediction-log thread included). The
baseline is what `baseline_app.py` does per request after FastAPI has parsed the body:
``pd.DataFrame(records)`` and ``model.predict``; and the same through FastAPI's ASGI app
(`baseline_app.app`) in process. Variants are interleaved, best and median of the rounds
reported with the load average. ``--profile FILE`` writes cProfile statistics of the
conveyor app (the event loop thread and the model thread, one file each, ``FILE.loop``
and ``FILE.model``) and prints the top entries.

    .venv/bin/python benchmarks/serving/request_path.py [--requests 3000] [--rows 1]
        [--rounds 5] [--no-log] [--no-batching] [--profile /tmp/serve.prof]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))


def _scope(path: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
    }


async def _drive(app: Any, body: bytes, n: int) -> float:
    """CPU seconds per request for `n` sequential requests through the ASGI app."""
    scope = _scope("/predict", body)
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    cpu = time.process_time()
    for _ in range(n):
        await app(scope, receive, send)
    used = (time.process_time() - cpu) / n
    if set(status) != {200}:
        raise RuntimeError(f"unexpected statuses {sorted(set(status))}")
    return used


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-log", action="store_true")
    parser.add_argument("--no-batching", action="store_true")
    parser.add_argument("--model", choices=["lr", "rf"], default="lr")
    parser.add_argument("--profile")
    args = parser.parse_args()

    import pandas as pd
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from conveyor.serving.app import ServeOptions, create_app
    from conveyor.serving.batching import BatchPolicy
    from conveyor.serving.servable import FixedSource
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.training.model import Model

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    est = (
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        if args.model == "lr"
        else RandomForestClassifier(n_estimators=100, random_state=0)
    ).fit(X, y)
    model = Model.from_fitted(est, X, profile=False)
    records = [{k: float(v) for k, v in X.iloc[i].items()} for i in range(args.rows)]
    body = orjson.dumps({"records": records})

    work = Path(tempfile.mkdtemp(prefix="conveyor-request-path-"))
    store = None if args.no_log else open_artifact_store(str(work / "artifacts"))
    options = ServeOptions(reload_interval=None, batching=BatchPolicy(enabled=not args.no_batching))
    app = create_app(FixedSource(model, "bench"), options, log_store=store)

    import joblib

    joblib.dump(est, work / "model.joblib")
    os.environ["BASELINE_MODEL"] = str(work / "model.joblib")
    from benchmarks.serving import baseline_app

    def plain(n: int) -> float:
        cpu = time.process_time()
        for _ in range(n):
            doc = orjson.loads(body)
            frame = pd.DataFrame(doc["records"])
            orjson.dumps({"predictions": est.predict(frame).tolist()})
        return (time.process_time() - cpu) / n

    async def run() -> None:
        async with app.running():
            await app.wait_ready(30)
            await _drive(app, body, 200)  # warm-up
            await _drive(baseline_app.app, body, 200)
            plain(200)
            results: dict[str, list[float]] = {"conveyor": [], "fastapi": [], "plain": []}
            for rnd in range(args.rounds):
                order = ["conveyor", "fastapi", "plain"]
                if rnd % 2:
                    order.reverse()
                for name in order:
                    if name == "conveyor":
                        value = await _drive(app, body, args.requests)
                    elif name == "fastapi":
                        value = await _drive(baseline_app.app, body, args.requests)
                    else:
                        value = plain(args.requests)
                    results[name].append(value)
            print(
                f"{args.model}, {args.rows}-row requests, log {'off' if args.no_log else 'on'}, "
                f"batching {'off' if args.no_batching else 'on'}; load average "
                f"{os.getloadavg()[0]:.2f}"
            )
            base = statistics.median(results["fastapi"])
            for name, values in results.items():
                med = statistics.median(values)
                print(
                    f"  {name:9s} CPU per request: median {med * 1e6:7.0f} us, best "
                    f"{min(values) * 1e6:7.0f} us  (x{med / base:.2f} of FastAPI in process)"
                )
            if args.profile:
                assert app._executor is not None
                model_prof = cProfile.Profile()
                app._executor.submit(model_prof.enable).result()
                loop_prof = cProfile.Profile()
                loop_prof.enable()
                await _drive(app, body, args.requests)
                loop_prof.disable()
                app._executor.submit(model_prof.disable).result()
                for prof, suffix in ((loop_prof, "loop"), (model_prof, "model")):
                    prof.dump_stats(f"{args.profile}.{suffix}")
                    print(f"--- {suffix} thread, by own time")
                    pstats.Stats(prof).sort_stats("tottime").print_stats(25)

    asyncio.run(run())


if __name__ == "__main__":
    main()
