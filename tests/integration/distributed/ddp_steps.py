"""Pipeline steps for the distributed tests (a module, so Dask workers import it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from conveyor import pipeline, step
from conveyor.data.partitioned import DatasetRef
from conveyor.training import distributed
from conveyor.training.model import Model


def blobs(rows: int, seed: int = 0) -> pd.DataFrame:
    """Two well separated classes in 8 dimensions."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    X = rng.normal(size=(rows, 8)) + (y[:, None] * 2.0 - 1.0) * 0.8
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(8)]).assign(label=y)


@step
def prepare(rows: int) -> DatasetRef:
    return DatasetRef.write(blobs(rows), partitions=4)


@step(resources={"workers": 2})
def train_net(data: DatasetRef) -> Model:
    from tests.integration.distributed import nets

    return distributed.torch_ddp(
        nets.cross_entropy,
        data,
        model=nets.Classifier,
        target="label",
        epochs=3,
        batch_size=64,
        checkpoint_every=20,
        optimizer=nets.fast_adam,
    )


@step(resources={"workers": 2})
def train_xgb(data: DatasetRef) -> Model:
    return distributed.fit_xgboost(data, target="label", num_boost_round=20)


@step(resources={"workers": 2, "gpus": 1})
def train_on_gpus(data: DatasetRef) -> Model:
    return distributed.fit_xgboost(data, target="label", num_boost_round=5)


@pipeline
def ddp_pipeline(rows: int = 2000):
    return train_net(prepare(rows))


@pipeline
def xgb_pipeline(rows: int = 2000):
    return train_xgb(prepare(rows))


@pipeline
def gpu_pipeline(rows: int = 400):
    return train_on_gpus(prepare(rows))
