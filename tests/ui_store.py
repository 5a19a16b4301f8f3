"""A store filled by real runs for the UI tests: pipelines (with metric curves, cache hits
and a failure), a registered model with gate decisions and an alias, a dataset version
with a validation report, a monitor with window reports and a tuning study.

Everything goes through conveyor's public functions on the stores of `settings`; nothing
is written to the tables directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from conveyor import log_metrics, pipeline, step
from conveyor.cli.demo import gate_and_register, train_candidate
from conveyor.data.datasets import dataset
from conveyor.data.validate import validate

ROWS = 800


@step
def make_frame(rows: int = ROWS, drift: float = 0.0, index: int = 0) -> Any:
    """Labeled customers from the demo's generator."""
    from conveyor.monitoring.generator import ChurnGenerator

    return ChurnGenerator(seed=1).batch(rows, drift=drift, index=index)


@step
def split(
    frame: Any, test_size: float = 0.25
) -> tuple[Annotated[Any, "train"], Annotated[Any, "test"]]:
    test = frame.sample(frac=test_size, random_state=0)
    return frame.drop(test.index), test


@step
def fit(train: Any, epochs: int = 6, alpha: float = 1e-4) -> Any:
    """An SGD logistic model on the numeric columns; logs a loss curve per epoch."""
    import numpy as np
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import log_loss

    from conveyor.monitoring.generator import TARGET

    numeric = [c for c in train.columns if c != TARGET and train[c].dtype.kind in "if"]
    raw = train[numeric].fillna(0.0).to_numpy()
    mean, std = raw.mean(axis=0), raw.std(axis=0) + 1e-9
    x = (raw - mean) / std
    y = train[TARGET].to_numpy()
    model = SGDClassifier(loss="log_loss", alpha=alpha, random_state=0)
    for epoch in range(epochs):
        model.partial_fit(x, y, classes=np.array([0, 1]))
        log_metrics({"train.loss": float(log_loss(y, model.predict_proba(x)))}, step=epoch)
    return {
        "columns": numeric,
        "mean": mean.tolist(),
        "std": std.tolist(),
        "coef": model.coef_.tolist(),
        "intercept": float(model.intercept_[0]),
    }


@step
def score(model: dict[str, Any], test: Any) -> dict[str, float]:
    import numpy as np

    from conveyor.monitoring.generator import TARGET

    raw = test[model["columns"]].fillna(0.0).to_numpy()
    x = (raw - np.array(model["mean"])) / np.array(model["std"])
    logits = x @ np.array(model["coef"][0]) + model["intercept"]
    accuracy = float(((logits > 0).astype(int) == test[TARGET].to_numpy()).mean())
    log_metrics(accuracy=accuracy)
    return {"accuracy": accuracy}


@pipeline
def train(alpha: float = 1e-4, epochs: int = 6, rows: int = ROWS) -> dict[str, float]:
    frame = make_frame(rows)
    train_part, test_part = split(frame)
    model = fit(train_part, epochs=epochs, alpha=alpha)
    return score(model, test_part)


@step
def explode(frame: Any) -> int:
    raise ValueError(f"refusing {len(frame)} rows: this step always fails")


@pipeline
def broken(rows: int = 50) -> int:
    return explode(make_frame(rows))


@pipeline
def checks(name: str = "customers") -> Any:
    return validate(dataset(name), reference=f"{name}@1")


@step(cache=False)
def load_fresh(path: str) -> Any:
    import pandas as pd

    return pd.read_parquet(path)


@pipeline
def retrain(path: str, seed: int = 0) -> Any:
    """The demo's candidate -> gate -> register (+ promote to churn@production)."""
    frame = load_fresh(path)
    return gate_and_register(train_candidate(frame, seed), frame, seed)


@dataclass
class Filled:
    """Ids and names the tests look for."""

    runs: dict[str, str] = field(default_factory=dict)
    model: str = "churn"
    dataset: str = "customers"
    monitor: str = "churn-watch"
    study: str = "quadratic"
    pipelines: tuple[str, ...] = ("train", "broken", "fanout", "checks", "retrain")


def fill(settings: Any, root: Path, *, models: bool = True) -> Filled:
    """Fill the stores of `settings` by running real pipelines (about 20 s).

    With `models` false the churn model is not trained again (a store made by
    `conveyor demo` already has it); the monitor then watches the demo's model.
    """
    from conveyor.data.datasets import register_dataset
    from conveyor.execution.orchestrator import run_pipeline
    from conveyor.monitoring.generator import ChurnGenerator
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.metadata import open_metadata_store

    store = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    filled = Filled()
    generator = ChurnGenerator(seed=0)

    for i, alpha in enumerate((1e-4, 1e-3, 1e-2)):
        run = run_pipeline(
            train, {"alpha": alpha}, settings=settings, tags={"sweep": "a", "i": str(i)}
        )
        filled.runs[f"train{i}"] = run.id
    filled.runs["cached"] = run_pipeline(train, {"alpha": 1e-2}, settings=settings).id
    filled.runs["failed"] = run_pipeline(broken, {}, settings=settings, raise_on_failure=False).id
    for n in (3, 40):
        filled.runs[f"fan{n}"] = run_pipeline(
            fanout, {"n": n}, settings=settings, executor="inline"
        ).id

    for index, drift in enumerate((0.0, 1.0)):
        register_dataset(
            "customers",
            generator.batch(ROWS, drift=drift, index=index),
            metadata_store=store,
            artifact_store=artifacts,
        )
    filled.runs["checks"] = run_pipeline(checks, {}, settings=settings, raise_on_failure=False).id

    if models:
        data = root / "fresh.parquet"
        for seed, index in ((0, 0), (1, 5)):
            generator.batch(1000, drift=0.0, index=index).to_parquet(data)
            filled.runs[f"retrain{seed}"] = run_pipeline(
                retrain, {"path": str(data), "seed": seed}, settings=settings
            ).id
    _monitor(filled, store, artifacts, generator)
    _study(filled, store)
    return filled


def _monitor(filled: Filled, store: Any, artifacts: Any, generator: Any) -> None:
    """Three hourly window reports of churn@production, drifting more each hour."""
    from conveyor.cli.demo import ALIAS, MODEL
    from conveyor.monitoring.monitor import Monitor

    monitor = Monitor(
        filled.monitor,
        f"{MODEL}@{ALIAS}",
        window="1h",
        metadata_store=store,
        artifact_store=artifacts,
    )
    monitor.save()
    now = time.time()
    for index, drift in enumerate((0.0, 0.5, 1.0)):
        frame = generator.batch(600, drift=drift, index=10 + index).drop(columns=["churned"])
        start = now - 3600 * (3 - index)
        monitor.run_frame(frame, start=start, end=start + 3600)


def _study(filled: Filled, store: Any) -> None:
    from conveyor.training.tuning import tune

    def quadratic(params: dict[str, Any]) -> float:
        offset = 0.0 if params["kind"] == "a" else 0.5
        return float((params["x"] - 1.0) ** 2 + offset)

    tune(
        quadratic,
        {"x": ("float", -3.0, 3.0), "kind": ["a", "b"]},
        n_trials=12,
        executor="inline",
        direction="minimize",
        study_name=filled.study,
        metadata_store=store,
    )


@step
def square(x: int) -> int:
    return x * x


@step
def total(values: list[int]) -> int:
    return sum(values)


@pipeline
def fanout(n: int = 3) -> int:
    return total(square.map(list(range(n))))
