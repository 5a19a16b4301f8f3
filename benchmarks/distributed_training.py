"""Issue 15: distributed training on Dask.

1. XGBoost hist on 2,000,000 x 50 (float32, 4 Parquet partitions of a DatasetRef): a
   LocalCluster of 2 workers x 1 thread against 1 worker x 1 thread, same run (target:
   speed-up >= 1.6x); and conveyor's `fit_xgboost` against calling `xgboost.dask`
   directly on the same cluster with the same partitions (target: overhead <= 10%).
2. PyTorch DDP: time per optimizer step of `run_ddp` on 2 Dask workers against plain
   `torch.distributed` + DDP in two gloo processes, same model, batch and data (target:
   overhead <= 10%). Both are timed by the same clock inside the loss function (rank 0,
   wall and process CPU, from step 20 to the last of 400 steps), so start-up (imports,
   rendezvous) is not counted for either; the runs alternate (ABBA) and medians are taken.

Usage: python benchmarks/distributed_training.py [--rows N] [--rounds R] [--repeat K]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from conveyor.data.partitioned import DatasetRef
from conveyor.stores.artifacts import open_artifact_store
from conveyor.training import distributed as cd

FEATURES = 50
WARMUP = 20
PARAMS = {"max_depth": 6, "learning_rate": 0.1, "max_bin": 256}


def make_data(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    logit = X[:, :10] @ rng.normal(size=10).astype(np.float32)
    y = (logit + rng.normal(size=rows).astype(np.float32) > 0).astype(np.int8)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(FEATURES)]).assign(label=y)


def direct_xgboost(client, ref: DatasetRef, rounds: int, workers: list[str]) -> None:  # type: ignore[no-untyped-def]
    """The baseline: xgboost.dask on the same partitions, read by plain pyarrow."""
    import dask.dataframe as dd
    import pyarrow.parquet as pq
    import xgboost.dask as xd

    root = ref.artifact_url

    def read(content_hash: str):  # type: ignore[no-untyped-def]
        return pq.read_table(f"{root}/objects/{content_hash[:2]}/{content_hash}").to_pandas()

    futures = [
        client.submit(read, p.content_hash, workers=[workers[i % len(workers)]], pure=False)
        for i, p in enumerate(ref.partitions)
    ]
    frame = dd.from_delayed(futures, meta=ref.read_partition(0).iloc[:0], verify_meta=False)
    columns = [c for c in frame.columns if c != "label"]
    dtrain = xd.DaskQuantileDMatrix(client, frame[columns], frame["label"])
    params = {"tree_method": "hist", "objective": "binary:logistic", **PARAMS}
    xd.train(
        client,
        params,
        dtrain,
        num_boost_round=rounds,
        evals=[(dtrain, "train")],
        verbose_eval=False,
    )


def bench_xgboost(ref: DatasetRef, warm: DatasetRef, rounds: int, repeat: int) -> None:
    import distributed

    results: dict[str, list[float]] = {}
    for n in (2, 1):
        cluster = distributed.LocalCluster(
            n_workers=n, threads_per_worker=1, dashboard_address=":0", silence_logs=40
        )
        client = distributed.Client(cluster)
        workers = sorted(client.scheduler_info()["workers"])

        def ours(client=client, n=n):  # type: ignore[no-untyped-def]
            cd.fit_xgboost(
                ref,
                target="label",
                params=PARAMS,
                num_boost_round=rounds,
                workers=n,
                client=client,
                profile=False,
            )

        def theirs(client=client, workers=workers):  # type: ignore[no-untyped-def]
            direct_xgboost(client, ref, rounds, workers)

        # Warm-up on a small dataset: imports and connections on the workers, for both.
        cd.fit_xgboost(warm, target="label", num_boost_round=2, workers=n, client=client)
        direct_xgboost(client, warm, 2, workers)
        for _ in range(repeat):
            for name, run in ((f"conveyor-{n}", ours), (f"direct-{n}", theirs)):
                start = time.perf_counter()
                run()
                results.setdefault(name, []).append(time.perf_counter() - start)
                print(f"    {name}: {results[name][-1]:.2f} s", flush=True)
        client.close()
        cluster.close()
    for name, times in results.items():
        print(f"  {name:12s} best {min(times):7.2f} s  median {statistics.median(times):7.2f} s")
    speedup = min(results["conveyor-1"]) / min(results["conveyor-2"])
    overhead = min(results["conveyor-2"]) / min(results["direct-2"]) - 1
    direct_speedup = min(results["direct-1"]) / min(results["direct-2"])
    print(f"XGBoost speed-up 2 workers vs 1 (conveyor, best): {speedup:.2f}x (target >= 1.6x)")
    print(f"XGBoost speed-up 2 workers vs 1 (xgboost.dask direct, best): {direct_speedup:.2f}x")
    print(f"conveyor overhead over xgboost.dask, 2 workers (best): {overhead:+.1%} (target <= 10%)")


# ---------------------------------------------------------------------------- DDP
def ddp_loss(model, X, y):  # type: ignore[no-untyped-def]
    import torch

    return torch.nn.functional.binary_cross_entropy_with_logits(model(X).squeeze(1), y)


def mlp():  # type: ignore[no-untyped-def]
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 1),
    )


class StepClock:
    """The DDP loss, stamping (wall, process CPU) at every call on rank 0; after the last
    expected call the stamps go to `out`. The same clock runs in conveyor's ranks and in
    the plain baseline, so both are timed over the same steady-state steps."""

    def __init__(self, out: str, total: int, rank: int | None = None) -> None:
        self.out, self.total, self.rank = out, total, rank
        self.stamps: list[tuple[float, float]] = []

    def __call__(self, model, X, y):  # type: ignore[no-untyped-def]
        rank = self.rank
        if rank is None:
            info = cd.current_rank()
            rank = info.rank if info is not None else 0
        if rank == 0:
            self.stamps.append((time.perf_counter(), time.process_time()))
            if len(self.stamps) == self.total:
                with open(self.out, "w") as handle:
                    handle.write(repr(self.stamps))
        return ddp_loss(model, X, y)


def per_step(out: str) -> tuple[float, float]:
    """(wall, CPU) seconds per step from call WARMUP to the last call."""
    import ast

    with open(out) as handle:
        stamps = ast.literal_eval(handle.read())
    (w0, c0), (w1, c1) = stamps[WARMUP], stamps[-1]
    steps = len(stamps) - 1 - WARMUP
    return (w1 - w0) / steps, (c1 - c0) / steps


def _plain_rank(rank: int, port: int, steps: int, batch: int, out: str) -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    model = DistributedDataParallel(mlp())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(rank)
    X = torch.randn(100 * batch, FEATURES, generator=generator)
    y = (X[:, 0] > 0).float()
    clock = StepClock(out, steps, rank)
    for step in range(steps):
        row = (step % 100) * batch
        xb, yb = X[row : row + batch], y[row : row + batch]
        optimizer.zero_grad(set_to_none=True)
        loss = clock(model, xb, yb)
        loss.backward()
        optimizer.step()
    dist.destroy_process_group()


def plain_step_time(steps: int, batch: int) -> tuple[float, float]:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tempfile.mktemp()
    mp.spawn(_plain_rank, args=(port, steps, batch, out), nprocs=2, join=True)
    return per_step(out)


def bench_ddp(repeat: int, batch: int = 256, epochs: int = 4) -> None:
    """Interleaved (ABBA) conveyor / plain runs; per-step wall and CPU from the in-loop clock."""
    import distributed

    store = open_artifact_store(tempfile.mkdtemp(prefix="conveyor-bench-ddp-"))
    rows_per_epoch = 2 * batch * 100  # 100 steps per epoch on each of 2 ranks
    frame = make_data(rows_per_epoch).assign(label=lambda d: d["label"].astype(np.float32))
    ref = DatasetRef.write(frame, partitions=2, artifact_store=store)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=":0", silence_logs=40
    )
    client = distributed.Client(cluster)
    client.run(lambda: __import__("torch").set_num_threads(1))
    total = epochs * 100

    def ours() -> tuple[float, float]:
        out = tempfile.mktemp()
        cd.run_ddp(
            StepClock(out, total),
            ref,
            model=mlp,
            target="label",
            epochs=epochs,
            batch_size=batch,
            workers=2,
            client=client,
            checkpoint_every=100,
        )
        return per_step(out)

    # Warm-up: torch imports and the first process group on the workers are not per step.
    cd.run_ddp(ddp_loss, ref, model=mlp, target="label", workers=2, client=client)
    plain_step_time(WARMUP + 10, batch)
    runs: dict[str, list[tuple[float, float]]] = {"conveyor": [], "plain": []}
    ratios = []
    for rep in range(repeat):
        order = [("conveyor", ours), ("plain", lambda: plain_step_time(total, batch))]
        for name, run in order if rep % 2 == 0 else order[::-1]:
            runs[name].append(run())
        (cw, cc), (pw, pc) = runs["conveyor"][-1], runs["plain"][-1]
        ratios.append(cw / pw)
        print(
            f"    rep {rep}: conveyor {cw * 1e3:.2f} ms (CPU {cc * 1e3:.2f}), plain "
            f"{pw * 1e3:.2f} ms (CPU {pc * 1e3:.2f}), ratio {cw / pw:.3f}, "
            f"load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    client.close()
    cluster.close()
    for name, values in runs.items():
        walls, cpus = [w for w, _ in values], [c for _, c in values]
        print(
            f"  {name:9s} per step: median {statistics.median(walls) * 1e3:6.2f} ms, best "
            f"{min(walls) * 1e3:6.2f} ms; rank-0 process CPU median "
            f"{statistics.median(cpus) * 1e3:6.2f} ms"
        )
    median_c = statistics.median(w for w, _ in runs["conveyor"])
    median_p = statistics.median(w for w, _ in runs["plain"])
    print(
        f"DDP overhead per step: median/median {median_c / median_p - 1:+.1%}, median of "
        f"per-repetition ratios {statistics.median(ratios) - 1:+.1%} (target <= 10%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["xgboost", "ddp"], default=None)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    if args.only != "ddp":
        run_xgboost(args)
    if args.only != "xgboost":
        print("PyTorch DDP (gloo, 2 ranks), MLP 50-256-256-1, batch 256 per rank", flush=True)
        bench_ddp(args.repeat)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


def run_xgboost(args: argparse.Namespace) -> None:
    store = open_artifact_store(tempfile.mkdtemp(prefix="conveyor-bench-xgb-"))
    ref = DatasetRef.write(make_data(args.rows), partitions=4, artifact_store=store)
    warm = DatasetRef.write(make_data(20_000), partitions=4, artifact_store=store)
    print(
        f"XGBoost hist, {args.rows} x {FEATURES}, {args.rounds} rounds, repeat {args.repeat}",
        flush=True,
    )
    bench_xgboost(ref, warm, args.rounds, args.repeat)


if __name__ == "__main__":
    main()
