"""Profile of 1,000,000 rows x 50 columns (40 numeric, 10 categorical) vs pandas.

Baseline, measured in the same run: `DataFrame.describe()` plus `value_counts()` on every
categorical column. Run: .venv/bin/python benchmarks/data_profile.py
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from conveyor.data.profile import Profile

ROWS = 1_000_000


def make_frame(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {f"num_{i}": rng.normal(i, 1 + i % 5, rows) for i in range(40)}
    for i in range(10):
        codes = rng.integers(0, 20 + 10 * i, rows)
        data[f"cat_{i}"] = np.array([f"v{j}" for j in range(20 + 10 * i)])[codes]
    return pd.DataFrame(data)


def best(repeat: int, fn: object) -> tuple[float, float]:
    """(best wall-clock, best CPU) seconds of `repeat` calls."""
    times, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(times), min(cpu)


def main() -> None:
    frame = make_frame()
    categorical = [c for c in frame.columns if c.startswith("cat_")]

    def baseline() -> None:
        frame.describe()
        for column in categorical:
            frame[column].value_counts()

    ours, ours_cpu = best(3, lambda: Profile.from_frame(frame))
    theirs, theirs_cpu = best(3, baseline)
    print(f"profile 1M x 50: {ours:.3f} s (target < 3 s)")
    print(f"pandas describe + value_counts: {theirs:.3f} s")
    print(f"ratio conveyor / pandas: {ours / theirs:.2f} (target <= 1)")
    print(f"CPU time (best of 3): profile {ours_cpu:.3f} s, pandas {theirs_cpu:.3f} s")


if __name__ == "__main__":
    main()
