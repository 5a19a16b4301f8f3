"""A pipeline with a dynamic map, a gather, resources and a schedule, for the exporters."""

from __future__ import annotations

import os
from pathlib import Path

from conveyor import pipeline, step


@step
def load(n: int) -> list[int]:
    return list(range(n))


@step(resources={"cpus": 2, "memory": "4GiB", "gpus": 1, "pool": "gpu", "queue": "ml"})
def square(x: int) -> int:
    flag = os.environ.get("CONVEYOR_TEST_FAIL_ONCE")
    if flag and x == 1 and not Path(flag).exists():
        Path(flag).write_text("failed once")
        raise RuntimeError("transient failure")
    return x * x


@step
def total(xs: list[int], scale: float) -> float:
    return sum(xs) * scale


@pipeline(schedule="0 3 * * *")
def flow(n: int = 4, scale: float = 1.0):
    return total(square.map(load(n)), scale=scale)


@step
def inc(x: int) -> int:
    return x + 1


@pipeline
def long_chain(n: int = 200):
    value = inc(0)
    for _ in range(n - 1):
        value = inc(value)
    return value


@step(retries=1)
def flaky(x: int) -> int:
    flag = os.environ["CONVEYOR_TEST_FAIL_ONCE"]
    if not Path(flag).exists():
        Path(flag).write_text("failed once")
        raise RuntimeError("transient failure")
    return x


@pipeline
def retried(n: int = 1):
    return flaky(n)
