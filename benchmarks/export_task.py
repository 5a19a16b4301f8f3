"""Orchestrator tasks: start-up cost of `conveyor task run`, and the size of exported files.

Run: .venv/bin/python benchmarks/export_task.py
1. Per-task overhead: a fresh `conveyor task run` process for a trivial step, from process
   start to the first line of the step's body, against the baseline of a fresh
   `python -c "import conveyor"` measured in the same run (target: < 0.5 s beyond it).
   SQLite store; the run was started by `conveyor task start` beforehand, as the first task
   of a workflow does.
2. Exported files for a 200-step pipeline (target: < 100 KB each).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

BIN = Path(sys.executable).parent
PIPELINE = textwrap.dedent(
    """
    import os
    import time

    from conveyor import pipeline, step

    @step(cache=False)
    def touch(i: int) -> int:
        with open(os.environ["BENCH_STAMP"], "a") as handle:
            handle.write(f"{time.time()}\\n")
        return i

    @step
    def inc(x: int) -> int:
        return x + 1

    @pipeline
    def bench(n: int = 1):
        return touch(n)

    @pipeline
    def chain(n: int = 200):
        value = inc(0)
        for _ in range(n - 1):
            value = inc(value)
        return value
    """
)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="conveyor-bench-task-"))
    (root / "flow.py").write_text(PIPELINE)
    (root / "conveyor.toml").write_text('[conveyor]\nexecutor = "inline"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["BENCH_STAMP"] = str(root / "stamp.txt")
    conveyor = str(BIN / "conveyor")

    def call(*args: str) -> None:
        subprocess.run([conveyor, *args], cwd=root, env=env, check=True, capture_output=True)

    baseline, overhead, whole = [], [], []
    for i in range(7):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import conveyor"], env=env, check=True)
        baseline.append(time.perf_counter() - start)
        key = f"bench-{i}"
        call("task", "start", "flow.py:bench", "--run-key", key)
        stamp = root / "stamp.txt"
        stamp.unlink(missing_ok=True)
        wall0 = time.time()
        start = time.perf_counter()
        call("task", "run", "flow.py:bench", "--run-key", key, "--node", "touch")
        whole.append(time.perf_counter() - start)
        overhead.append(float(stamp.read_text().split()[0]) - wall0)
    base = statistics.median(baseline)
    body = statistics.median(overhead)
    print(
        f"python -c 'import conveyor': {base * 1000:.0f} ms (median of 7); "
        f"task process start -> step body: {body * 1000:.0f} ms; "
        f"beyond the import: {(body - base) * 1000:.0f} ms (target < 500 ms); "
        f"ratio x{body / base:.2f}; whole task process {statistics.median(whole) * 1000:.0f} ms"
    )
    for kind, extra in (
        ("airflow", []),
        ("argo", ["--image", "ml:1"]),
        ("kfp", ["--image", "ml:1"]),
    ):
        out = root / f"chain.{kind}"
        call("export", kind, "flow.py:chain", "-o", str(out), "--allow-local", *extra)
        size = out.stat().st_size
        print(f"export {kind}, 200 steps: {size / 1024:.1f} KB (target < 100 KB)")


if __name__ == "__main__":
    main()
