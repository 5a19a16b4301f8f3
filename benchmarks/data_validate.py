"""Validation of a 1,000,000 x 50 table against a schema and a reference Profile.

Run: .venv/bin/python benchmarks/data_validate.py
"""

from __future__ import annotations

import time

from data_profile import make_frame

from conveyor.data.profile import Profile
from conveyor.data.schema import Schema
from conveyor.data.validate import validate_frame


def main() -> None:
    reference = Profile.from_frame(make_frame(seed=0))
    schema = Schema.infer(reference)
    batch = make_frame(seed=1)
    times, cpu = [], []
    for _ in range(3):
        start, start_cpu = time.perf_counter(), time.process_time()
        report = validate_frame(batch, schema=schema, reference=reference)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    print(f"validate 1M x 50 (schema + reference drift): {min(times):.3f} s (target < 3 s)")
    print(f"CPU time (best of 3): {min(cpu):.3f} s")
    print(f"anomalies: {len(report.anomalies)} ({len(report.errors)} errors)")


if __name__ == "__main__":
    main()
