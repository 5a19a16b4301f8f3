"""The public names of conveyor.training.distributed, and that importing it stays light."""

from __future__ import annotations

import subprocess
import sys

from conveyor.training import distributed


def test_public_names_are_pinned() -> None:
    assert sorted(distributed.__all__) == [
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
    for name in distributed.__all__:
        assert getattr(distributed, name).__name__ == name


def test_importing_it_loads_no_training_library() -> None:
    script = (
        "import sys\nfrom conveyor.training import distributed\n"
        "print(sorted(m for m in ('torch', 'xgboost', 'lightgbm', 'distributed', 'dask')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
