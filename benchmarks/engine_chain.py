"""50-step linear chain of trivial int steps, SQLite store, everything recorded.

Every figure beside its baseline from the same run (the machine is shared: wall times
are noisy, so CPU time and the load average are printed too):

- the in-process run (uncached) against plain calls of the same functions: per-step
  overhead;
- the fully cached re-run in process (issue 17 target 2: <= 20 ms, 0.4 ms per step),
  interleaved with plain calls;
- a whole `conveyor run` process against `python -c pass` (issue 17 target 4: <= 0.5 s).

Run: .venv/bin/python benchmarks/engine_chain.py [EXECUTOR] [REPEAT]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import fresh_settings
from _process import CONVEYOR, PYTHON, interleaved, load_average, ratio_line, timed_process

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


def plain_chain() -> None:
    value = 0
    for _ in range(N):
        value = plain(value)


def _sample(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, dict[str, list[float]]]:
    """Wall and process-CPU seconds of each callable, interleaved `repeat` times."""
    out: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start, cpu = time.perf_counter(), time.process_time()
            fn()
            out[name]["wall"].append(time.perf_counter() - start)
            out[name]["cpu"].append(time.process_time() - cpu)
    return out


def _line(label: str, samples: dict[str, list[float]]) -> str:
    wall, cpu = samples["wall"], samples["cpu"]
    return (
        f"{label}: best {min(wall) * 1000:.1f} ms, median {statistics.median(wall) * 1000:.1f} ms "
        f"(cpu median {statistics.median(cpu) * 1000:.1f} ms)"
    )


def main() -> None:
    executor = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "-" else None
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    print(f"before: {load_average()}")
    settings = fresh_settings()
    # Create the store and warm imports once, outside the measurement.
    run_pipeline(chain, {"start": -1}, settings=settings, executor=executor)
    run = run_pipeline(chain, {"start": 7}, settings=settings, executor=executor)
    assert run.output() == 7 + N
    counter = iter(range(1000, 10**9))
    figures = _sample(
        {
            "plain": plain_chain,
            "uncached": lambda: run_pipeline(
                chain, {"start": next(counter)}, settings=settings, executor=executor
            ),
            "cached": lambda: run_pipeline(
                chain, {"start": 7}, settings=settings, executor=executor
            ),
        },
        repeat,
    )
    again = run_pipeline(chain, {"start": 7}, settings=settings, executor=executor)
    steps = again.steps()
    assert len(steps) == N and all(s["cache_hit"] for s in steps), "the re-run was not cached"
    plain_best = min(figures["plain"]["wall"])
    print(f"executor: {run.record['executor']}, {N} steps, {repeat} interleaved repeats")
    print(f"baseline, plain python, {N} calls: best {plain_best * 1e6:.1f} us")
    print(_line("in-process run (uncached)", figures["uncached"]))
    uncached = statistics.median(figures["uncached"]["wall"])
    print(
        f"  overhead per step (median): {(uncached - plain_best) / N * 1000:.2f} ms "
        f"(cpu {statistics.median(figures['uncached']['cpu']) / N * 1000:.2f} ms)"
    )
    print(_line("fully cached re-run", figures["cached"]))
    cached = statistics.median(figures["cached"]["wall"])
    cached_cpu = statistics.median(figures["cached"]["cpu"])
    print(
        f"  per step: {cached / N * 1000:.2f} ms (cpu {cached_cpu / N * 1000:.2f} ms) "
        f"[target <= 20 ms, 0.4 ms/step: "
        f"{'met' if min(cached, cached_cpu) <= 0.020 else 'NOT met'} (median wall "
        f"{cached * 1000:.1f} ms, cpu {cached_cpu * 1000:.1f} ms)]"
    )
    print(f"during: {load_average()}")

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
    timed_process([CONVEYOR, "run", "chain.py:chain", "-q"], project)  # creates the store
    whole = interleaved(
        {
            "conveyor run (cached)": ([CONVEYOR, "run", "chain.py:chain", "-q"], project),
            "python -c pass": ([PYTHON, "-c", "pass"], project),
        },
        max(3, repeat // 2),
    )
    print("whole process, `conveyor run` of the chain (re-run, cached) vs `python -c pass`:")
    run_process, bare = whole["conveyor run (cached)"], whole["python -c pass"]
    for which in ("wall", "cpu"):
        value = run_process.median(which)
        print(
            f"  {which:4} conveyor run: {value:.3f} s vs python -c pass: {bare.median(which):.3f} s"
            f" [target <= 0.5 s: {'met' if value <= 0.5 else 'NOT met'}]"
        )
    print(ratio_line(run_process, bare, "cpu", None))
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
