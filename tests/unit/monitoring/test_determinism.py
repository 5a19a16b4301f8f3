"""The same data gives the same Profile, drift report and monitor window in every process.

Issue 18 item 6: the quantile sketches were randomized, so a window's figures and drift
verdicts changed between re-runs. Each test runs the same computation in fresh interpreters
(with different hash seeds) and compares the outputs exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conveyor.data._sketches import EXACT_LIMIT, QuantileSketch, kll_rank_error
from conveyor.data.profile import Profile
from conveyor.monitoring.drift import compare_profiles
from conveyor.monitoring.generator import ChurnGenerator
from conveyor.monitoring.monitor import Monitor
from conveyor.registry.registry import get_registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from tests.unit.monitoring.test_monitor import fit, log, start_logger

DRIFT_CHILD = """
import hashlib, json
import numpy as np, pandas as pd
from conveyor.data.profile import Profile
from conveyor.monitoring.drift import compare_profiles

def table(n, shift, seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "a": rng.normal(shift, 1.0, n),
        "b": rng.exponential(1.0 + shift, n),
        "ids": [f"id-{i}" for i in rng.integers(0, 5000, n)],  # > 768 distinct: sketched
        "c": rng.choice(["x", "y", "z"], n),
    })

reference = Profile.from_batches([table(150_000, 0.0, 1), table(150_000, 0.0, 2)])
out = {"reference": hashlib.sha256(reference.to_bytes()).hexdigest()}
for rows in (1_500, 40_000, 400_000):
    window = Profile.from_frame(table(rows, 0.05, 3))
    result = compare_profiles(reference, window, ["a", "b", "c"])
    out[str(rows)] = {
        "profile": hashlib.sha256(window.to_bytes()).hexdigest(),
        "drift": result.to_dict(),
    }
print(json.dumps(out, sort_keys=True))
"""


def fresh_processes(code: str, *args: str, count: int = 3) -> list[str]:
    outputs = []
    for seed in range(count):
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONHASHSEED": str(seed + 1)},
            cwd=Path(__file__).parents[3],
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.strip().splitlines()[-1])
    return outputs


def test_profiles_and_drift_verdicts_are_identical_across_processes() -> None:
    outputs = fresh_processes(textwrap.dedent(DRIFT_CHILD))
    assert outputs[0] == outputs[1] == outputs[2]
    result = json.loads(outputs[0])
    small = result["1500"]["drift"]["features"]
    # Stated error bound: the 1,500-row window is exact, the 300k-row reference is sketched.
    assert all(f["rank_error"] > 0 for f in small if f["kind"] == "numeric")
    assert result["1500"]["drift"]["rank_error"] == max(f["rank_error"] for f in small)


def test_quantiles_are_exact_up_to_the_limit_and_bounded_beyond() -> None:
    rng = np.random.default_rng(5)
    small = rng.normal(size=EXACT_LIMIT)
    sketch = QuantileSketch(200)
    sketch.update(small[:1000])
    sketch.update(small[1000:])
    assert sketch.is_exact and sketch.normalized_rank_error() == 0.0
    ordered = np.sort(small)
    points = ordered[::37]
    assert sketch.get_cdf(points)[:-1] == (np.searchsorted(ordered, points) / small.size).tolist()
    assert sketch.get_quantiles([0.0, 0.5, 1.0]) == [
        ordered[0],
        ordered[EXACT_LIMIT // 2],
        ordered[-1],
    ]

    large = rng.normal(size=300_000)
    for parts in (1, 7):
        sketch = QuantileSketch(200)
        for chunk in np.array_split(large, parts):
            sketch.update(chunk)
        assert not sketch.is_exact and sketch.num_retained() < 2_000
        ordered = np.sort(large)
        points = np.quantile(large, np.linspace(0.001, 0.999, 200))
        true = np.searchsorted(ordered, points) / large.size
        error = np.abs(np.array(sketch.get_cdf(points)[:-1]) - true).max()
        assert error <= kll_rank_error(200) + 0.005  # KLL bound + the sampler's share


def test_small_tables_give_exact_drift_statistics() -> None:
    rng = np.random.default_rng(0)
    reference = Profile.from_frame(pd.DataFrame({"a": rng.normal(0, 1, 1_800)}))
    window = Profile.from_frame(pd.DataFrame({"a": rng.normal(0.3, 1, 900)}))
    feature = compare_profiles(reference, window)["a"]
    assert feature.rank_error == 0.0
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 1_800), rng.normal(0.3, 1, 900)
    assert feature.stats["ks"] == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)


def test_old_profiles_with_datasketches_kll_still_load() -> None:
    from datasketches import kll_doubles_sketch

    values = np.random.default_rng(3).normal(size=50_000)
    old = kll_doubles_sketch(200)
    old.update(values)
    converted = QuantileSketch.deserialize(old.serialize())
    points = [-1.0, 0.0, 1.5]
    assert converted.n == old.n and not converted.is_exact
    assert np.allclose(converted.get_cdf(points), old.get_cdf(points), atol=1e-12)
    tiny = kll_doubles_sketch(200)
    tiny.update(np.array([2.5]))
    assert QuantileSketch.deserialize(tiny.serialize()).get_quantile(0.5) == 2.5


MONITOR_CHILD = """
import json, sys
from conveyor.monitoring.monitor import Monitor
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store

db, files, start, end = sys.argv[1:5]
monitor = Monitor.get(
    "churn-prod", metadata_store=open_metadata_store(db), artifact_store=open_artifact_store(files)
)
reports = monitor.run_window(float(start), float(end), html=False)
out = []
for report in reports:
    data = report.to_dict()
    data.pop("created_at")
    out.append(data)
print(json.dumps(out, sort_keys=True))
"""


def test_a_monitor_window_gives_the_same_report_in_every_process(tmp_path: Path) -> None:
    db, files = f"sqlite:///{tmp_path / 'm.db'}", str(tmp_path / "files")
    metadata, artifacts = open_metadata_store(db), open_artifact_store(files)
    generator = ChurnGenerator(seed=4)
    registry = get_registry(metadata, artifacts)
    model = fit(generator.batch(20_000))
    registry.register(model, "churn", promote_to="production")
    start = time.time() - 1
    logger = start_logger(artifacts)
    log(logger, model, "1", generator.batch(1_500, drift=0.05, index=1), "a")
    log(logger, model, "1", generator.batch(6_000, drift=0.05, index=2), "b")
    logger.close()
    end = time.time() + 1
    Monitor(
        "churn-prod",
        "churn@production",
        window="1h",
        metadata_store=metadata,
        artifact_store=artifacts,
    ).save()
    outputs = fresh_processes(textwrap.dedent(MONITOR_CHILD), db, files, str(start), str(end))
    assert outputs[0] == outputs[1] == outputs[2]
    reports: list[dict[str, Any]] = json.loads(outputs[0])
    assert [r["rows"] for r in reports] == [7_500]
    assert reports[0]["profile_hash"]  # the stored window Profile is byte-identical too
