"""Registry reads: alias resolution and load of an alias whose model is cached locally.

Run: .venv/bin/python benchmarks/registry_reads.py
Measures, against a fresh SQLite store with 50 versions: `resolve("bench@production")`,
`load_model("bench@production")` through the module function (settings, store, resolve,
cache), and the baseline of a bare primary-key SELECT on the same engine.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.registry import Registry, load_model
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata import tables_registry as r
from conveyor.training.model import Model


def timed(fn, repeat: int = 500) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def main() -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = Model.from_fitted(
        make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), X, profile=False
    )
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        root = Path(tmp) / ".conveyor"
        store = open_metadata_store(f"sqlite:///{root / 'conveyor.db'}")
        registry = Registry(store, open_artifact_store(str(root / "artifacts")))
        for i in range(50):
            registry.register(model, "bench", tags={"i": str(i)})
        registry.promote("bench", 25, "production")
        load_model("bench@production")  # warm the cache

        def bare() -> None:
            with store.engine.connect() as c:
                c.execute(sa.select(r.models).where(r.models.c.name == "bench")).first()

        base = timed(bare)
        resolve = timed(lambda: registry.resolve("bench@production"))
        load = timed(lambda: load_model("bench@production"))
        cold_start = time.perf_counter()
        from conveyor.registry.registry import _CACHE

        _CACHE.clear()
        load_model("bench@production")
        cold = (time.perf_counter() - cold_start) * 1000
        print(f"bare SELECT by name:       median {base[0]:.3f} ms, p99 {base[1]:.3f} ms")
        print(
            f"resolve name@alias:        median {resolve[0]:.3f} ms, p99 {resolve[1]:.3f} ms "
            f"({resolve[0] / base[0]:.1f}x bare)"
        )
        print(
            f"load_model (cached):       median {load[0]:.3f} ms, p99 {load[1]:.3f} ms "
            f"({load[0] / base[0]:.1f}x bare)"
        )
        print(f"load_model (first, skops): {cold:.1f} ms")


if __name__ == "__main__":
    main()
