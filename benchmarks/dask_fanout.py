"""Issue 8: 200-way fan-out of steps that each sleep 0.2 s, on a 4-worker LocalCluster,
against the threads executor with one thread (target: at least 3.5x faster), plus the
per-step overhead of a 50-step chain of trivial steps on Dask beside the local executor's
figure from the same run (target: under 15 ms per step)."""

from __future__ import annotations

import time

from _common import fresh_settings

from conveyor import pipeline, step
from conveyor.execution.dask import DaskExecutor
from conveyor.execution.orchestrator import run_pipeline

WIDTH, NAP, CHAIN = 200, 0.2, 50


@step
def items(n: int) -> list[int]:
    return list(range(n))


@step
def nap(x: int, salt: int = 0) -> int:
    time.sleep(NAP)  # the workload: an I/O-bound step
    return x


@step
def count(xs: list[int]) -> int:
    return len(xs)


@step
def inc(x: int) -> int:
    return x + 1


@pipeline
def fanout(n: int = WIDTH, salt: int = 0):
    return count(nap.map(items(n), salt=salt))


@pipeline
def chain(start: int = 0):
    value = inc(start)
    for _ in range(CHAIN - 1):
        value = inc(value)
    return value


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def main() -> None:
    settings = fresh_settings()
    cluster = DaskExecutor(n_workers=4)
    try:
        run_pipeline(chain, {"start": -1}, settings=settings, executor=cluster)  # warm-up
        dask_fan = timed(
            lambda: run_pipeline(fanout, {"salt": 1}, settings=settings, executor=cluster)
        )
        dask_chain = min(
            timed(
                lambda s=s: run_pipeline(chain, {"start": s}, settings=settings, executor=cluster)
            )
            for s in range(3)
        )
    finally:
        cluster.shutdown()
    threads_fan = timed(
        lambda: run_pipeline(fanout, {"salt": 2}, settings=settings, executor="threads:1")
    )
    local_chain = min(
        timed(lambda s=s: run_pipeline(chain, {"start": 100 + s}, settings=settings))
        for s in range(3)
    )
    ideal = WIDTH * NAP / 4
    print(
        f"{WIDTH} x {NAP}s fan-out: dask-local:4 {dask_fan:.2f} s (ideal {ideal:.1f} s), "
        f"threads:1 {threads_fan:.2f} s, speed-up {threads_fan / dask_fan:.2f}x (target >= 3.5x)"
    )
    print(
        f"{CHAIN}-step chain: dask-local:4 {dask_chain * 1000 / CHAIN:.2f} ms/step "
        f"(target < 15 ms), threads {local_chain * 1000 / CHAIN:.2f} ms/step"
    )


if __name__ == "__main__":
    main()
