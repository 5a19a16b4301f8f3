"""Drift report speed: a 100k- and a 1M-row window x 25 features against a stored Profile.

The window is a Parquet file (like a prediction-log segment). conveyor's path: stream it in
64k-row batches (pre_buffer off: the reader holds one row group) into a window
Profile, then compare with the training Profile (200k rows,
serialized and reloaded like the one stored with a model version). Baseline in the same
run: plain scipy on raw arrays already in memory (ks_2samp per numeric column against the
raw 200k reference rows, chi2_contingency per categorical column); its time excludes
reading. Peak memory: each window size runs in a fresh subprocess (VmHWM after the first pass).

Targets: 100k rows < 0.5 s, 1M rows < 3 s with flat memory.
Run: .venv/bin/python benchmarks/monitoring_drift.py [--sizes 100000 1000000]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REFERENCE_ROWS = 200_000

CHILD = r"""
import json, sys, time
import numpy as np, pyarrow.parquet as pq
from conveyor.data.profile import Profile
from conveyor.monitoring.drift import compare_profiles
import scipy.stats  # imported before timing: a server has it loaded already

def hwm():  # peak RSS of this process image in MiB (ru_maxrss would include the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

reference = Profile.from_bytes(open(sys.argv[1], "rb").read())
window = sys.argv[2]
mode = sys.argv[3]
columns = list(reference.columns)
peak = 0.0  # after the first pass: later passes measure the allocator, not the method
base = hwm()
if mode == "conveyor":
    times, cpu = [], []
    for _ in range(5):
        start, start_cpu = time.perf_counter(), time.process_time()
        reader = pq.ParquetFile(window, pre_buffer=False)
        current = Profile.from_batches(reader.iter_batches(batch_size=65536, use_threads=False))
        result = compare_profiles(reference, current, columns)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        peak = peak or hwm()
    out = {"seconds": min(times), "drifted": result.drifted, "peak_mib": peak,
           "cpu_seconds": min(cpu)}
else:
    import pandas as pd
    from scipy.stats import chi2_contingency, ks_2samp
    ref = pd.read_parquet(sys.argv[4]); cur = pd.read_parquet(window)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        pvalues = {}
        for name in columns:
            if name.startswith("num"):
                a = ref[name].dropna().to_numpy(); b = cur[name].dropna().to_numpy()
                pvalues[name] = ks_2samp(a, b).pvalue
            else:
                cats = sorted(set(ref[name].unique()) | set(cur[name].unique()))
                table = [ref[name].value_counts().reindex(cats, fill_value=0).to_numpy(),
                         cur[name].value_counts().reindex(cats, fill_value=0).to_numpy()]
                pvalues[name] = chi2_contingency(table)[1]
        times.append(time.perf_counter() - start)
    out = {"seconds": min(times), "drifted": sorted(k for k, p in pvalues.items() if p < 0.05)}
    out["peak_mib"] = hwm()
out["base_mib"] = base
print(json.dumps(out))
"""


def run(*args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    from conveyor.data.profile import Profile
    from conveyor.monitoring.generator import SHIFTED_COLUMNS, drift_benchmark_frames

    folder = Path(tempfile.mkdtemp(prefix="conveyor-drift-"))
    reference, _ = drift_benchmark_frames(REFERENCE_ROWS, 10, seed=7)
    reference.to_parquet(folder / "reference.parquet")
    (folder / "reference.profile").write_bytes(Profile.from_frame(reference).to_bytes())
    print(
        f"reference: {REFERENCE_ROWS} rows x {reference.shape[1]} columns; "
        f"shifted in the window: {', '.join(SHIFTED_COLUMNS)}"
    )
    print(
        "| window rows | conveyor (Parquet -> Profile -> drift) | peak RSS | "
        "scipy on raw arrays (tests only) | peak RSS | ratio | conveyor flagged |"
    )
    print("|---|---|---|---|---|---|---|")
    cpu_lines = []
    for rows in args.sizes:
        _, window = drift_benchmark_frames(10, rows, seed=8)
        path = folder / f"window-{rows}.parquet"
        window.to_parquet(path, row_group_size=65536)
        del window
        ours = run(str(folder / "reference.profile"), str(path), "conveyor")
        base = run(
            str(folder / "reference.profile"),
            str(path),
            "scipy",
            str(folder / "reference.parquet"),
        )
        ratio = float(base["seconds"]) / float(ours["seconds"])  # type: ignore[arg-type]
        print(
            f"| {rows:,} | {ours['seconds']:.3f} s | {ours['peak_mib']:.0f} MiB "
            f"(imports {ours['base_mib']:.0f}) | "
            f"{base['seconds']:.3f} s | {base['peak_mib']:.0f} MiB | {ratio:.1f}x faster | "
            f"{len(ours['drifted'])} ({', '.join(ours['drifted'])}) |"  # type: ignore[arg-type]
        )
        cpu_lines.append(
            f"{rows:,} rows: conveyor CPU time (best of 5) {ours['cpu_seconds']:.3f} s"
        )
    print("\n".join(cpu_lines))


if __name__ == "__main__":
    main()
