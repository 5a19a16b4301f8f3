"""Steps for the Dask tests (a module, so worker processes can import it)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conveyor import pipeline, step


@step
def source(n: int) -> int:
    return n


@step
def square(x: int) -> int:
    return x * x


@step
def total(xs: list[int]) -> int:
    return sum(xs)


@step
def numbers(n: int) -> list[int]:
    return list(range(n))


@step(resources={"gpus": 1})
def on_gpu(x: int) -> int:
    return os.getpid()


@step(resources={"cpus": 64})
def too_big(x: int) -> int:
    return x


@step
def survive_worker_kill(x: int, folder: str) -> int:
    """First attempt announces itself and blocks; a later attempt (after its worker was
    killed) finds the announcement of a dead process and returns."""
    marks = Path(folder)
    others = [p for p in marks.glob("attempt-*") if p.name != f"attempt-{os.getpid()}"]
    if not others:
        (marks / f"attempt-{os.getpid()}").touch()
        while True:  # the work: block until this worker process is killed
            time.sleep(0.05)
    return x + 1


@step
def gated(x: int, gate: str) -> int:
    Path(gate + ".entered").touch()
    while not Path(gate + ".open").exists():  # the work: wait for a signal
        time.sleep(0.02)
    return x * 10


@pipeline
def fan(n: int = 8):
    return total(square.map(numbers(n)))


@pipeline
def killable(folder: str = ""):
    return survive_worker_kill(source(1), folder=folder)


@pipeline
def gpu_pipeline():
    return on_gpu(source(1))


@pipeline
def too_big_pipeline():
    return too_big(source(1))


@pipeline
def gated_pipeline(gate: str = ""):
    return gated(source(2), gate=gate)


def quadratic(folder: str, params: dict) -> float:  # type: ignore[type-arg]
    """A tuning objective that leaves a mark naming the process that evaluated it."""
    (Path(folder) / f"pid-{os.getpid()}").touch()
    return -((params["x"] - 2.0) ** 2)
