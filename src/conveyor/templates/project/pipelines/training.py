"""The training pipeline: load -> split -> scale -> train -> evaluate.

Run it with `conveyor run pipelines/training.py:training -p test_size=0.25`, or from
Python with `training.run(test_size=0.25)`.
"""

from __future__ import annotations

from conveyor import pipeline
from steps.data import load_data, split
from steps.model import evaluate, scale, train_model


@pipeline
def training(test_size: float = 0.25, seed: int = 0, c: float = 1.0):  # type: ignore[no-untyped-def]
    data = load_data()
    train, test = split(data, test_size=test_size, seed=seed)
    train_scaled, test_scaled, _scaler = scale(train, test)
    model = train_model(train_scaled, c=c)
    metrics = evaluate(model, test_scaled)
    return {"model": model, "metrics": metrics}
