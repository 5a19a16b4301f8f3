"""Tuning overhead: 500 trials of a trivial objective, recorded in SQLite, vs plain Optuna.

Run: .venv/bin/python benchmarks/tuning.py
Prints our time (trials stored in a fresh SQLite metadata store), the time of plain
in-memory Optuna (study.optimize) with the same sampler, and the ratio, for TPE (the
default) and random sampling.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import optuna

from conveyor.stores.metadata import open_metadata_store
from conveyor.training.tuning import study_trials, tune

N = 500


def objective(params: dict) -> float:
    return -((params["x"] - 1.0) ** 2) + params["y"]


SPACE = {"x": ("float", -5.0, 5.0), "y": ("int", 0, 10)}


def plain(sampler: optuna.samplers.BaseSampler) -> float:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    start = time.perf_counter()
    study.optimize(
        lambda t: objective({"x": t.suggest_float("x", -5, 5), "y": t.suggest_int("y", 0, 10)}),
        n_trials=N,
    )
    return time.perf_counter() - start


def ours(sampler: optuna.samplers.BaseSampler, folder: Path, name: str) -> float:
    store = open_metadata_store(f"sqlite:///{folder / 'bench.db'}")
    start = time.perf_counter()
    tune(
        objective,
        SPACE,
        n_trials=N,
        parallel=1,
        executor="inline",
        sampler=sampler,
        metadata_store=store,
        study_name=name,
    )
    elapsed = time.perf_counter() - start
    assert len(study_trials(store, name)) == N
    return elapsed


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        open_metadata_store(f"sqlite:///{folder / 'bench.db'}")  # schema outside the timing
        for label, make in (
            ("tpe", lambda: optuna.samplers.TPESampler(seed=0)),
            ("random", lambda: optuna.samplers.RandomSampler(seed=0)),
        ):
            base = plain(make())
            mine = ours(make(), folder, label)
            print(
                f"{label:6s} {N} trials: conveyor.tune + SQLite {mine:.2f} s, plain in-memory "
                f"Optuna {base:.2f} s, ratio {mine / base:.2f}x"
            )
        start = time.perf_counter()
        store = open_metadata_store(f"sqlite:///{folder / 'bench.db'}")
        tune(
            objective,
            SPACE,
            n_trials=N,
            parallel=4,
            executor="threads",
            sampler=optuna.samplers.RandomSampler(seed=0),
            metadata_store=store,
            study_name="threads",
        )
        print(f"random {N} trials, threads:4, parallel=4: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
