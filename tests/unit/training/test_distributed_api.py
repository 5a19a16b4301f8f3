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


def test_each_tuning_trial_of_a_step_gets_its_own_ddp_job() -> None:
    # Job ids name checkpoints: a trial must never resume from the previous trial's weights.
    import optuna

    from conveyor.training.distributed._torch import _job_id

    class Context:
        step_run_id = "01STEPRUN"

    study = optuna.create_study()
    first, second = study.ask(), study.ask()
    ids = {_job_id(None, Context(), first), _job_id(None, Context(), second)}
    assert len(ids) == 2 and all(i.startswith("01STEPRUN") for i in ids)
    assert _job_id(None, Context(), None) == "01STEPRUN"  # a retried step resumes its own
    assert _job_id("mine", Context(), first) == "mine"
    assert _job_id(None, None, None) != _job_id(None, None, None)
