"""Steps shared by the execution tests (a module, so worker processes can import them)."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import conveyor
from conveyor import pipeline, step

log = logging.getLogger("tests.steps")


@step
def source(n: int) -> int:
    return n


@step
def inc(x: int) -> int:
    return x + 1


@step
def double(x: int) -> int:
    return 2 * x


@step
def add(a: int, b: int) -> int:
    return a + b


@step
def numbers(n: int) -> list[int]:
    return list(range(n))


@step
def total(xs: list[int]) -> int:
    return sum(xs)


@step
def split(x: int) -> tuple[Annotated[int, "low"], Annotated[int, "high"]]:
    return x - 1, x + 1


@step
def chatty(x: int, marker: str) -> int:
    print(f"stdout {marker}")
    print(f"stderr {marker}", file=sys.stderr)
    log.warning("logging %s", marker)
    return x


@step
def tracked(x: int) -> int:
    conveyor.log_params(lr=0.1, layers=3)
    for epoch in range(3):
        conveyor.log_metrics(loss=1.0 / (epoch + 1), step=epoch)
    conveyor.log_metrics(accuracy=0.5 + x / 100)
    conveyor.log_artifact("notes", {"x": x})
    conveyor.set_tags(team="ml")
    return x


@step
def fail_if_exists(x: int, flag: str) -> int:
    if Path(flag).exists():
        raise ValueError(f"flag file {flag} is present")
    return x + 100


@step(retries=2, retry_delay=0.01, backoff=2.0)
def flaky(x: int, counter: str) -> int:
    path = Path(counter)
    attempts = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(attempts))
    if attempts < 3:
        raise RuntimeError(f"transient failure {attempts}")
    return x


@step(timeout=0.3)
def slow(x: int, seconds: float) -> int:
    time.sleep(seconds)  # the workload itself: a step that overruns its timeout
    return x


@step(cache=False)
def live(x: int) -> int:
    return x + int(time.time() * 0 + 1)


@step
def unstorable(x: int) -> object:
    return threading.Lock()


@step
def rendezvous(x: int, barrier_name: str) -> int:
    # Two branches meet here: passes only if they truly run at the same time.
    BARRIERS[barrier_name].wait(timeout=10)
    return x


BARRIERS: dict[str, threading.Barrier] = {}


@step
def pid(x: int) -> int:
    return os.getpid()


@pipeline
def diamond(n: int = 1):
    s = source(n)
    return {"sum": add(inc(s), double(s))}


@pipeline
def fanout(n: int = 5):
    return total(double.map(numbers(n)))


@pipeline
def nested_fanout(n: int = 4):
    return total(inc.map(double.map(numbers(n))))
