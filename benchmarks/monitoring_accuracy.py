"""Drift accuracy: 20 repetitions of a window with 7 known shifted columns out of 25.

Each repetition draws a fresh 200k-row reference and a window (seeds 0..19) from
`conveyor.monitoring.generator.drift_benchmark_frames` (the shifts are listed in
`SHIFTED_COLUMNS`: the subtlest is a 0.1-std mean shift of a normal column), profiles both,
and runs `compare_profiles` with default options. Reported per window size: the rate at
which each shifted column is flagged, the false alarms per repetition, and the same for
plain scipy tests on the raw arrays (ks_2samp / chi2_contingency at p < 0.05, no FDR).

Target (100k rows): every shifted column flagged and at most one unshifted column, in each
of the 20 repetitions. Run: .venv/bin/python benchmarks/monitoring_accuracy.py
"""

from __future__ import annotations

import numpy as np

REPETITIONS = 20


def scipy_flags(reference, current) -> set[str]:  # type: ignore[no-untyped-def]
    from scipy.stats import chi2_contingency, ks_2samp

    flagged = set()
    for name in reference.columns:
        if name.startswith("num"):
            p = ks_2samp(reference[name].dropna(), current[name].dropna()).pvalue
        else:
            cats = sorted(set(reference[name]) | set(current[name]))
            table = [
                reference[name].value_counts().reindex(cats, fill_value=0).to_numpy(),
                current[name].value_counts().reindex(cats, fill_value=0).to_numpy(),
            ]
            p = chi2_contingency(table)[1]
        if p < 0.05:
            flagged.add(name)
    return flagged


def main() -> None:
    from conveyor.data.profile import Profile
    from conveyor.monitoring.drift import compare_profiles
    from conveyor.monitoring.generator import SHIFTED_COLUMNS, drift_benchmark_frames

    shifted = set(SHIFTED_COLUMNS)
    print(
        "| window rows | test | shifted columns caught (min over columns) | "
        "false alarms per repetition (max, mean) | repetitions meeting the target |"
    )
    print("|---|---|---|---|---|")
    for rows in (1_000, 10_000, 100_000):
        ours_hits = {c: 0 for c in shifted}
        base_hits = {c: 0 for c in shifted}
        ours_false, base_false, ours_ok, base_ok = [], [], 0, 0
        for seed in range(REPETITIONS):
            reference, current = drift_benchmark_frames(200_000, rows, seed=seed)
            result = compare_profiles(Profile.from_frame(reference), Profile.from_frame(current))
            flagged = set(result.drifted)
            baseline = scipy_flags(reference, current)
            for column in shifted:
                ours_hits[column] += column in flagged
                base_hits[column] += column in baseline
            ours_false.append(len(flagged - shifted))
            base_false.append(len(baseline - shifted))
            ours_ok += shifted <= flagged and len(flagged - shifted) <= 1
            base_ok += shifted <= baseline and len(baseline - shifted) <= 1
        for label, hits, false, ok in (
            ("conveyor (Profile sketches, BH)", ours_hits, ours_false, ours_ok),
            ("scipy on raw arrays, p < 0.05", base_hits, base_false, base_ok),
        ):
            worst = min(hits, key=lambda c: hits[c])
            print(
                f"| {rows:,} | {label} | {hits[worst]}/{REPETITIONS} ({worst}); all: "
                + ", ".join(f"{c} {hits[c]}" for c in sorted(hits))
                + f" | {max(false)}, {np.mean(false):.2f} | {ok}/{REPETITIONS} |"
            )


if __name__ == "__main__":
    main()
