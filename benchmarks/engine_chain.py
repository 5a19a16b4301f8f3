"""50-step linear chain of trivial int steps, SQLite store, everything recorded.

Prints the in-process run time, the per-step overhead over plain function calls of the same
work (measured in the same run), the fully cached re-run, and a whole `conveyor run` process.
Targets (issue 2): <= 3 ms overhead per step (run < 0.15 s), cached re-run < 0.1 s,
`conveyor run` process < 1 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _common import best_of, fresh_settings

from conveyor import pipeline, step
from conveyor.execution.orchestrator import run_pipeline

N = 50


@step
def inc(x: int) -> int:
    return x + 1


def plain(x: int) -> int:
    return x + 1


@pipeline
def chain(start: int = 0) -> object:
    value = inc(start)
    for _ in range(N - 1):
        value = inc(value)
    return value


def main() -> None:
    executor = sys.argv[1] if len(sys.argv) > 1 else None
    settings = fresh_settings()
    # Warm the store (schema creation) and imports once, outside the measurement.
    run_pipeline(chain, {"start": -1}, settings=settings, executor=executor)

    def plain_chain() -> None:
        value = 0
        for _ in range(N):
            value = plain(value)

    plain_best, _ = best_of(20, plain_chain)
    counter = iter(range(1000, 10**9))
    best, median = best_of(
        5,
        lambda: run_pipeline(chain, {"start": next(counter)}, settings=settings, executor=executor),
    )
    run = run_pipeline(chain, {"start": 7}, settings=settings, executor=executor)
    assert run.output() == 7 + N
    cached_best, cached_median = best_of(
        5, lambda: run_pipeline(chain, {"start": 7}, settings=settings, executor=executor)
    )
    per_step_ms = (best - plain_best) / N * 1000
    print(f"executor: {run.record['executor']}")
    print(f"plain python, {N} calls: {plain_best * 1e6:.1f} us")
    print(f"in-process run, {N} steps: best {best * 1000:.1f} ms, median {median * 1000:.1f} ms")
    print(
        f"overhead per step: {per_step_ms:.2f} ms (target <= 3 ms); ratio to plain calls: "
        f"{best / plain_best:.0f}x"
    )
    print(
        f"fully cached re-run: best {cached_best * 1000:.1f} ms, "
        f"median {cached_median * 1000:.1f} ms (target < 100 ms)"
    )

    project = Path(tempfile.mkdtemp(prefix="conveyor-bench-cli-"))
    (project / "conveyor.toml").write_text("[conveyor]\n")
    (project / "chain.py").write_text(
        textwrap.dedent(f"""
        from conveyor import pipeline, step

        @step
        def inc(x: int) -> int:
            return x + 1

        @pipeline
        def chain(start: int = 0):
            value = inc(start)
            for _ in range({N - 1}):
                value = inc(value)
            return value
    """)
    )
    conveyor = Path(sys.executable).with_name("conveyor")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    subprocess.run(
        [str(conveyor), "run", "chain.py:chain", "-q", "-p", "start=-5"],
        cwd=project,
        check=True,
        env=env,
    )
    times = []
    for start in range(3):
        began = time.perf_counter()
        subprocess.run(
            [str(conveyor), "run", "chain.py:chain", "-q", "-p", f"start={start}"],
            cwd=project,
            check=True,
            env=env,
        )
        times.append(time.perf_counter() - began)
    print(f"`conveyor run` process, {N} steps (uncached): best {min(times):.2f} s (target < 1 s)")


if __name__ == "__main__":
    main()
