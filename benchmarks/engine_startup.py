"""`import conveyor` (< 0.15 s, no pandas/sklearn/scipy/SQLAlchemy loaded) and
`conveyor --help` (< 0.3 s), best of 5 fresh processes; baseline: `python -c pass`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from _process import clean_env

HEAVY = ("pandas", "sklearn", "scipy", "sqlalchemy", "numpy", "pyarrow")


def best(cmd: list[str], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=clean_env())
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    python = sys.executable
    baseline = best([python, "-c", "pass"])
    imported = best([python, "-c", "import conveyor; conveyor.step; conveyor.pipeline"])
    conveyor = str(Path(python).with_name("conveyor"))
    helped = best([conveyor, "--help"])
    loaded = subprocess.run(
        [
            python,
            "-c",
            "import sys, conveyor; conveyor.step; conveyor.pipeline; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))",
        ],
        check=True,
        capture_output=True,
        text=True,
        env=clean_env(),
    ).stdout.strip()
    print(f"python -c pass: {baseline:.3f} s")
    print(
        f"import conveyor (+ step, pipeline): {imported:.3f} s (target < 0.15 s), "
        f"{imported - baseline:.3f} s over bare Python"
    )
    print(f"heavy modules loaded by import conveyor: {loaded or 'none'}")
    print(f"conveyor --help: {helped:.3f} s (target < 0.3 s)")


if __name__ == "__main__":
    main()
