"""tune(): trials recorded in the metadata store, parallel, resumable, prunable."""

from __future__ import annotations

import optuna
import pytest

from conveyor.config import Settings
from conveyor.exceptions import ConfigError, ModelError
from conveyor.stores.metadata import MetadataStore, open_metadata_store
from conveyor.training.tuning import study_trials, tune


@pytest.fixture
def store(settings: Settings) -> MetadataStore:
    return open_metadata_store(settings.db_url)


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def quadratic(params: dict) -> float:
    return -((params["x"] - 2.0) ** 2) - (0 if params["kind"] == "b" else 1)


SPACE = {"x": ("float", -5.0, 5.0), "kind": ["a", "b"]}


def test_tune_records_every_trial_and_finds_the_optimum(store: MetadataStore) -> None:
    result = tune(
        quadratic,
        SPACE,
        n_trials=40,
        parallel=2,
        metadata_store=store,
        sampler=optuna.samplers.TPESampler(seed=1),
        study_name="q",
    )
    assert result.best_params["kind"] == "b"
    assert abs(result.best_params["x"] - 2.0) < 1.0
    stored = study_trials(store, "q")
    assert [t.number for t in stored] == list(range(40))
    assert all(t.state == "complete" and t.duration >= 0 for t in stored)
    best = max(stored, key=lambda t: t.value)
    assert best.value == result.best_value and best.params == result.best_params


def test_resume_continues_numbering_and_uses_old_trials(store: MetadataStore) -> None:
    first = tune(
        quadratic,
        SPACE,
        n_trials=10,
        metadata_store=store,
        study_name="r",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    second = tune(
        quadratic,
        SPACE,
        n_trials=5,
        metadata_store=store,
        study_name="r",
        sampler=optuna.samplers.RandomSampler(seed=1),
    )
    assert len(second.trials) == 15
    assert [t.number for t in study_trials(store, "r")] == list(range(15))
    assert second.best_value >= first.best_value
    with pytest.raises(ModelError, match="already exists"):
        tune(quadratic, SPACE, n_trials=1, metadata_store=store, study_name="r", resume=False)
    with pytest.raises(ModelError, match="different ranges"):
        tune(
            quadratic,
            {"x": ("float", 0.0, 1.0), "kind": ["a", "b"]},
            n_trials=1,
            metadata_store=store,
            study_name="r",
        )


def _flaky(params: dict) -> float:
    if params["n"] % 2:
        raise ValueError("odd n is not allowed")
    return float(params["n"])


def test_failures_are_recorded_and_processes_executor_works(store: MetadataStore) -> None:
    result = tune(
        _flaky,
        {"n": ("int", 0, 9)},
        n_trials=12,
        parallel=2,
        executor="processes",
        metadata_store=store,
        study_name="flaky",
        sampler=optuna.samplers.RandomSampler(seed=3),
    )
    stored = study_trials(store, "flaky")
    failed = [t for t in stored if t.state == "fail"]
    assert failed and all("odd n is not allowed" in t.error for t in failed)
    assert result.best_params["n"] % 2 == 0
    with pytest.raises(ModelError, match="odd n is not allowed"):
        tune(_flaky, {"n": [1, 3]}, n_trials=3, metadata_store=store, study_name="allbad")


def test_pruning_with_trial_reports(store: MetadataStore) -> None:
    def objective(params: dict, trial: optuna.Trial) -> float:
        for step in range(5):
            value = params["x"] * step
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    tune(
        objective,
        {"x": ("float", 0.0, 1.0)},
        n_trials=30,
        metadata_store=store,
        study_name="p",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    states = {t.state for t in study_trials(store, "p")}
    assert states == {"complete", "pruned"}
    with pytest.raises(ConfigError, match="threads"):
        tune(
            objective,
            {"x": ("float", 0.0, 1.0)},
            n_trials=1,
            executor="processes",
            metadata_store=store,
            study_name="p2",
        )


def test_bad_space_is_explained(store: MetadataStore) -> None:
    with pytest.raises(ModelError, match="'lr' must be a list of choices"):
        tune(quadratic, {"lr": 0.1}, n_trials=1, metadata_store=store)
    with pytest.raises(ModelError, match="direction"):
        tune(quadratic, SPACE, n_trials=1, direction="up", metadata_store=store)
