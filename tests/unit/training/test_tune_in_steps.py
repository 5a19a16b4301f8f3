"""tune(study_name=...) inside a cached step: the study belongs to the step's cache key
unless resume=True (issue 18 item 9)."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from conveyor import pipeline, step
from conveyor.config import Settings
from conveyor.stores.metadata import open_metadata_store
from conveyor.training.tuning import study_trials, tune


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@step
def search(offset: float, resume: bool | None = None) -> dict[str, Any]:
    # The objective depends on the step's input: trials of another offset are stale.
    result = tune(
        lambda p: offset - (p["x"] - offset) ** 2,
        {"x": ("float", -20.0, 20.0)},
        n_trials=5,
        study_name="search",
        resume=resume,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    return {
        "study": result.study_name,
        "trials": len(result.trials),
        "best": result.best_value,
        "params": result.best_params,
    }


@pipeline
def tuned(offset: float = 0.0, resume: bool | None = None):
    return search(offset, resume=resume)


def test_a_changed_step_starts_a_fresh_study(settings: Settings) -> None:
    first = tuned.configure(settings=settings).run(offset=10.0).output()
    assert first["trials"] == 5 and first["study"].startswith("search@")
    again = tuned.configure(settings=settings).run(offset=10.0)
    assert again.step("search")["cache_hit"] and again.output() == first

    changed = tuned.configure(settings=settings).run(offset=0.0).output()
    assert changed["study"] != first["study"]
    assert changed["trials"] == 5  # not 10: the stale trials of offset 10 are not resumed
    assert changed["best"] <= 0.0  # they would have won best_params (values near 10)
    store = open_metadata_store(settings.db_url)
    assert len(study_trials(store, first["study"])) == 5
    assert len(study_trials(store, changed["study"])) == 5


def test_the_same_key_continues_its_study_and_resume_true_spans_keys(settings: Settings) -> None:
    configured = tuned.configure(settings=settings, cache=False)
    one = configured.run(offset=3.0).output()
    two = configured.run(offset=3.0).output()  # same key, re-executed: the study continues
    assert two["study"] == one["study"] and two["trials"] == 10

    shared = configured.run(offset=3.0, resume=True).output()
    assert shared["study"] == "search" and shared["trials"] == 5
    other = configured.run(offset=4.0, resume=True).output()
    assert other["study"] == "search" and other["trials"] == 10


def test_outside_a_step_the_name_is_the_study(settings: Settings) -> None:
    store = open_metadata_store(settings.db_url)
    result = tune(
        lambda p: -(p["x"] ** 2),
        {"x": ("float", -1.0, 1.0)},
        n_trials=2,
        study_name="plain",
        metadata_store=store,
    )
    assert result.study_name == "plain" and len(study_trials(store, "plain")) == 2
