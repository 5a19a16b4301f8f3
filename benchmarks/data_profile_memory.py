"""Peak memory of profiling a Parquet dataset 5x larger than the chunk budget.

Each measurement runs in a fresh subprocess and reports its peak RSS: profiling one
chunk's worth of rows versus a dataset of 5 such chunks (10 files), streamed with
`iter_batches`. Run: .venv/bin/python benchmarks/data_profile_memory.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

CHUNK_ROWS = 400_000
COLUMNS = 20

CHILD = """
import resource, sys
from conveyor.data.ingest import iter_batches
from conveyor.data.profile import Profile
profile = Profile.from_batches(iter_batches(sys.argv[1], batch_rows={chunk}))
assert profile.row_count == int(sys.argv[2]), profile.row_count
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_dataset(folder: Path, files: int, rows_per_file: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(files):
        table = pa.table(
            {f"c{i}": rng.normal(size=rows_per_file) for i in range(COLUMNS - 2)}
            | {"k": rng.integers(0, 50, rows_per_file).astype(str), "i": np.arange(rows_per_file)}
        )
        pq.write_table(table, folder / f"part-{index:03d}.parquet", row_group_size=100_000)


def peak_kib(path: Path, rows: int) -> int:
    code = CHILD.format(chunk=CHUNK_ROWS)
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), str(rows)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "one"
        five = Path(tmp) / "five"
        write_dataset(one, 2, CHUNK_ROWS // 2)
        write_dataset(five, 10, CHUNK_ROWS // 2)
        small = peak_kib(one, CHUNK_ROWS)
        large = peak_kib(five, 5 * CHUNK_ROWS)
    print(f"peak RSS, one chunk ({CHUNK_ROWS} rows x {COLUMNS}): {small / 1024:.0f} MiB")
    print(f"peak RSS, 5 chunks ({5 * CHUNK_ROWS} rows): {large / 1024:.0f} MiB")
    print(f"ratio: {large / small:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
