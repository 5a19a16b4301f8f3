"""Data-parallel training on the Dask workers conveyor already runs steps on.

XGBoost and LightGBM through their Dask integrations, PyTorch DDP with conveyor setting
up ranks, rendezvous, checkpoints and restarts. Each fit reads a `DatasetRef`'s Parquet
partitions on the workers and returns a normal `Model`. Heavy modules (dask, xgboost,
lightgbm, torch) load on first use of a name below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._internal.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "DatasetRef": "conveyor.data.partitioned",
    "partition_dataset": "conveyor.data.partitioned",
    "fit_xgboost": "conveyor.training.distributed._boosting",
    "fit_lightgbm": "conveyor.training.distributed._boosting",
    "torch_ddp": "conveyor.training.distributed._torch",
    "run_ddp": "conveyor.training.distributed._torch",
    "DDPResult": "conveyor.training.distributed._torch",
    "DDPTimeoutError": "conveyor.training.distributed._torch",
    "RankInfo": "conveyor.training.distributed._torch",
    "current_rank": "conveyor.training.distributed._torch",
}

__all__ = [
    "DDPResult",
    "DDPTimeoutError",
    "DatasetRef",
    "RankInfo",
    "current_rank",
    "fit_lightgbm",
    "fit_xgboost",
    "partition_dataset",
    "run_ddp",
    "torch_ddp",
]

if TYPE_CHECKING:
    from conveyor.data.partitioned import DatasetRef, partition_dataset
    from conveyor.training.distributed._boosting import fit_lightgbm, fit_xgboost
    from conveyor.training.distributed._torch import (
        DDPResult,
        DDPTimeoutError,
        RankInfo,
        current_rank,
        run_ddp,
        torch_ddp,
    )


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
