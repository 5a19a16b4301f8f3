"""CPU-time A/B of the Profile paths that the quantile sketch drives, against another tree.

Cases (CPU seconds of this process, best of 3-5, so that other work on a shared machine
inflates both sides alike): `Profile.from_frame` of the data_profile.py frame (1M x 50 in
one chunk); a 100k- and a 1M-row drift window of monitoring_drift.py's table streamed in
64k-row batches into a Profile, then `compare_profiles` against a stored 200k-row
reference. The baseline is the same script run with another source tree first on the
path (e.g. the commit before the change), in alternating rounds.

Run: .venv/bin/python benchmarks/sketch_ab.py --baseline-src /tmp/base/src [--rounds 2]
(make the baseline tree with: git archive 5fde2a8 src | tar -x -C /tmp/base)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure() -> dict[str, float]:
    import pyarrow as pa

    sys.path.insert(0, str(HERE))
    from data_profile import make_frame

    from conveyor.data.profile import Profile
    from conveyor.monitoring.drift import compare_profiles
    from conveyor.monitoring.generator import drift_benchmark_frames

    out: dict[str, float] = {}
    frame = make_frame()
    Profile.from_frame(frame.iloc[:1000])
    out["profile 1M x 50, one chunk"] = _best(3, lambda f=frame: Profile.from_frame(f))
    frame = None  # free it before the drift cases
    reference_frame, _ = drift_benchmark_frames(200_000, 10, seed=7)
    reference = Profile.from_bytes(Profile.from_frame(reference_frame).to_bytes())
    columns = list(reference.columns)
    for rows in (100_000, 1_000_000):
        _, window = drift_benchmark_frames(10, rows, seed=8)
        batches = pa.Table.from_pandas(window, preserve_index=False).to_batches(65536)
        out[f"window {rows:,}: profile (64k batches)"] = _best(
            5, lambda b=batches: Profile.from_batches(b)
        )
        current = Profile.from_batches(batches)
        out[f"window {rows:,}: compare_profiles"] = _best(
            5, lambda c=current: compare_profiles(reference, c, columns)
        )
    return out


def _best(repeat: int, fn: object) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()  # type: ignore[operator]
        times.append(time.process_time() - start)
    return min(times)


def child(src: str | None) -> dict[str, float]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    done = subprocess.run(
        [sys.executable, __file__, "--child"], check=True, capture_output=True, text=True, env=env
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline-src", help="src folder of the tree to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure()))
        return
    ours: list[dict[str, float]] = []
    theirs: list[dict[str, float]] = []
    for _ in range(args.rounds):
        if args.baseline_src:
            theirs.append(child(args.baseline_src))
        ours.append(child(None))
    print("| case | this tree (CPU s) | baseline (CPU s) | ratio |")
    print("|---|---|---|---|")
    for case in ours[0]:
        mine = min(r[case] for r in ours)
        if theirs:
            base = min(r[case] for r in theirs)
            print(f"| {case} | {mine:.3f} | {base:.3f} | {mine / base:.2f} |")
        else:
            print(f"| {case} | {mine:.3f} | - | - |")


if __name__ == "__main__":
    main()
