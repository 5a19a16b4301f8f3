"""Durable writes off the step path (issue 17, target 1): new blobs in every run.

A 5-step chain whose every step computes for a few milliseconds and returns a new 1 MiB
array (the seed is a parameter, so no blob exists yet and every write pays its two
fsyncs). Interleaved in one process, each
against the plain functions of the same work:

- background writer (the default for in-process executors): blobs are written and
  fsynced on the writer thread, each step's row committed after its blobs;
- synchronous writes (what every run did before): each step writes and fsyncs its
  outputs before the next one starts.

Run: .venv/bin/python benchmarks/engine_durable.py [REPEAT]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import fresh_settings
from _process import load_average

from conveyor import pipeline, step
from conveyor.execution import orchestrator
from conveyor.execution.orchestrator import run_pipeline

SIZE = 1 << 17  # float64 values: 1 MiB per blob


def _grow(values: np.ndarray) -> np.ndarray:
    # A few milliseconds of work, so that writes have compute to overlap with.
    for _ in range(30):
        values = np.sqrt(values * values + 1e-3)
    return values * 1.0001 + 1.0


@step
def make(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random(SIZE)


@step
def grow(values: np.ndarray) -> np.ndarray:
    return _grow(values)


@pipeline
def chain(seed: int = 0) -> object:
    values = make(seed)
    for _ in range(4):
        values = grow(values)
    return values


def plain(seed: int) -> None:
    values = np.random.default_rng(seed).random(SIZE)
    for _ in range(4):
        values = _grow(values)


def main() -> None:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    print(f"before: {load_average()}")
    settings = fresh_settings()
    run_pipeline(chain, {"seed": 0}, settings=settings)  # create the store
    seeds = iter(range(1, 10**9))
    real_writer = orchestrator.BackgroundWriter

    def synchronous() -> None:
        orchestrator.BackgroundWriter = lambda: None  # type: ignore[assignment,misc,return-value]
        try:
            run_pipeline(chain, {"seed": next(seeds)}, settings=settings)
        finally:
            orchestrator.BackgroundWriter = real_writer  # type: ignore[misc]

    variants: dict[str, Callable[[], Any]] = {
        "plain functions": lambda: plain(next(seeds)),
        "background writer": lambda: run_pipeline(chain, {"seed": next(seeds)}, settings=settings),
        "synchronous writes": synchronous,
    }
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeat):
        for label, fn in variants.items():
            start, began = time.perf_counter(), time.process_time()
            fn()
            wall[label].append(time.perf_counter() - start)
            cpu[label].append(time.process_time() - began)
    base = statistics.median(wall["plain functions"])
    print(f"5 steps, a new 1 MiB blob per step, median of {repeat} interleaved runs:")
    for label in variants:
        w, c = statistics.median(wall[label]), statistics.median(cpu[label])
        print(
            f"  {label:20} wall {w * 1000:7.1f} ms ({w / base:5.2f}x plain)  cpu {c * 1000:6.1f} ms"
        )
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
