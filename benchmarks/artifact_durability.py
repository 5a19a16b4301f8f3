"""What durable local writes cost (issue 12, item 12).

Every blob the local artifact store writes is flushed (fsync of the file before its rename,
fsync of its folder after). This prints, for the same work in the same process:

- the time of one `put` of a new 1 KB blob and of a new 1 MB blob;
- a 50-step chain of trivial steps whose every output is a new blob, per step;

each with durable writes (what ships) and with ``os.fsync`` replaced by a no-op (the
behaviour before: rename without flushing), and the ratio of the two.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from _common import fresh_settings

from conveyor import pipeline, step
from conveyor.execution.orchestrator import run_pipeline
from conveyor.stores.artifacts import LocalArtifactStore

N = 50


@step
def inc(x: int) -> int:
    return x + 1


@pipeline
def chain(start: int = 0) -> object:
    value = inc(start)
    for _ in range(N - 1):
        value = inc(value)
    return value


@contextmanager
def fsync_disabled() -> Iterator[None]:
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


def median_of(repeat: int, fn: Callable[[int], None]) -> float:
    times = []
    for k in range(repeat):
        start = time.perf_counter()
        fn(k)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def put_cost(size: int, repeat: int) -> float:
    store = LocalArtifactStore(tempfile.mkdtemp(prefix="conveyor-bench-"))
    store.put(b"warm")
    return median_of(repeat, lambda _k: store.put(os.urandom(size)))


def chain_cost() -> float:
    settings = fresh_settings()
    run_pipeline(chain, {"start": -(10**9)}, settings=settings)  # schema, imports
    # Starts 10,000 apart: every run writes 50 blobs that do not exist yet.
    return median_of(
        5, lambda k: run_pipeline(chain, {"start": k * 10_000 + os.getpid()}, settings=settings)
    )


def main() -> None:
    print(f"artifact folders under {Path(tempfile.gettempdir()).resolve()}, load {os.getloadavg()}")
    rows = []
    for label, measure in (
        ("put, new 1 KB blob", lambda: put_cost(1_000, 200)),
        ("put, new 1 MB blob", lambda: put_cost(1_000_000, 50)),
        ("50-step chain, new blobs, per step", lambda: chain_cost() / N),
    ):
        durable = measure()
        with fsync_disabled():
            baseline = measure()
        rows.append((label, durable, baseline))
    for label, durable, baseline in rows:
        print(
            f"{label}: durable {durable * 1e3:.2f} ms, without fsync {baseline * 1e3:.2f} ms, "
            f"ratio {durable / baseline:.2f}x (+{(durable - baseline) * 1e3:.2f} ms)"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
