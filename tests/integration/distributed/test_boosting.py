"""XGBoost and LightGBM across 2 Dask workers match single-process accuracy.

Tolerance: on the same rows, with the same parameters, distributed accuracy on a holdout
is within 0.02 of the single-process model's (histogram sketches and the split of the
data across workers make the trees differ slightly, not the quality).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor.data.partitioned import DatasetRef
from conveyor.exceptions import ConfigError
from conveyor.stores.artifacts import open_artifact_store
from conveyor.training import distributed
from conveyor.training.model import Model

from .conftest import require_module

pytestmark = pytest.mark.slow
TOLERANCE = 0.02


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[DatasetRef, DatasetRef, pd.DataFrame]:
    from sklearn.datasets import make_classification

    X, y = make_classification(12_000, 10, n_informative=6, random_state=1, flip_y=0.02)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(10)]).assign(churn=y)
    store = open_artifact_store(str(tmp_path_factory.mktemp("store")))
    train = DatasetRef.write(df.iloc[:9000], partitions=4, artifact_store=store, name="churn@1")
    valid = DatasetRef.write(df.iloc[9000:], partitions=2, artifact_store=store)
    return train, valid, df


def accuracy(model: object, frame: pd.DataFrame) -> float:
    predicted = model.predict(frame.drop(columns="churn"))  # type: ignore[attr-defined]
    return float(np.mean(np.asarray(predicted) == frame["churn"].to_numpy()))


def test_xgboost_on_two_workers_matches_single_process(client, data) -> None:  # type: ignore[no-untyped-def]
    require_module("xgboost", "xgboost")
    import xgboost

    train, valid, df = data
    params = {"max_depth": 4, "learning_rate": 0.2}
    model = distributed.fit_xgboost(
        train,
        target="churn",
        params=params,
        num_boost_round=60,
        valid=valid,
        workers=2,
        client=client,
    )
    single = xgboost.XGBClassifier(n_estimators=60, tree_method="hist", **params)
    single.fit(df.iloc[:9000].drop(columns="churn"), df.iloc[:9000]["churn"])
    holdout = df.iloc[9000:]
    assert abs(accuracy(model, holdout) - accuracy(single, holdout)) <= TOLERANCE
    assert accuracy(model, holdout) > 0.85
    # A normal Model: signature, Profile of all partitions, metrics, bytes that load.
    assert model.flavor == "xgboost" and model.signature.names == [f"f{i}" for i in range(10)]
    assert model.profile.row_count == 9000
    assert set(model.metrics) == {"train.logloss", "valid.logloss"}
    again = Model.from_bytes(model.to_bytes(), trusted=model.trusted_types())
    np.testing.assert_allclose(
        again.predict_proba(holdout.drop(columns="churn")),
        model.predict_proba(holdout.drop(columns="churn")),
    )


def test_lightgbm_on_two_workers_matches_single_process(client, data) -> None:  # type: ignore[no-untyped-def]
    require_module("lightgbm", "lightgbm")
    import lightgbm

    train, valid, df = data
    params = {"n_estimators": 60, "num_leaves": 15, "learning_rate": 0.2}
    model = distributed.fit_lightgbm(
        train, target="churn", params=params, valid=valid, workers=2, client=client
    )
    single = lightgbm.LGBMClassifier(verbose=-1, **params)
    single.fit(df.iloc[:9000].drop(columns="churn"), df.iloc[:9000]["churn"])
    holdout = df.iloc[9000:]
    assert abs(accuracy(model, holdout) - accuracy(single, holdout)) <= TOLERANCE
    assert model.flavor == "lightgbm" and list(model.classes_) == [0, 1]
    assert "valid.binary_logloss" in model.metrics


def test_gpu_request_on_a_cluster_without_gpus_fails_fast(client, data) -> None:  # type: ignore[no-untyped-def]
    import time

    train, _, _ = data
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"2 Dask workers with GPU=1 each.*no GPU workers"):
        distributed.fit_xgboost(train, target="churn", workers=2, gpus=1, client=client)
    assert time.monotonic() - started < 5


def test_more_workers_than_the_cluster_has_is_refused(client, data) -> None:  # type: ignore[no-untyped-def]
    train, _, _ = data
    with pytest.raises(ConfigError, match="asks for 3 Dask workers, but only 2"):
        distributed.fit_lightgbm(train, target="churn", workers=3, client=client)


def test_unknown_target_is_named(client, data) -> None:  # type: ignore[no-untyped-def]
    train, _, _ = data
    with pytest.raises(Exception, match=r"no column 'chrn'\. Did you mean 'churn'"):
        distributed.fit_xgboost(train, target="chrn", workers=2, client=client)


def test_optuna_trials_are_distributed_fits_and_bad_ones_are_pruned(  # type: ignore[no-untyped-def]
    client, data, tmp_path: Path
) -> None:
    require_module("optuna", "tune")
    import optuna

    from conveyor.stores.metadata import open_metadata_store
    from conveyor.training.tuning import tune

    train, valid, _ = data

    def objective(params, trial):  # type: ignore[no-untyped-def]
        model = distributed.fit_xgboost(
            train,
            target="churn",
            params={"max_depth": 3, "learning_rate": params["lr"]},
            num_boost_round=40,
            valid=valid,
            workers=2,
            client=client,
            trial=trial,
            report_every=10,
            profile=False,
        )
        return model.metrics["valid.logloss"]

    result = tune(
        objective,
        {"lr": [0.3, 0.0001]},  # seed 0 draws 0.0001, 0.3, 0.0001, 0.0001
        n_trials=4,
        executor="threads",
        direction="minimize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
        study_name="distributed-xgb",
        metadata_store=open_metadata_store(f"sqlite:///{tmp_path / 'db.sqlite'}"),
    )
    states = [t.state for t in result.trials]
    assert result.best_params == {"lr": 0.3}
    # The first two complete; the later slow learners fall behind their median: pruned.
    assert states[:2] == ["complete", "complete"] and states[2:] == ["pruned", "pruned"]
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert all(t.duration < result.trials[0].duration for t in pruned)


def test_steps_with_a_workers_resource_on_the_dask_executor(tmp_path: Path) -> None:
    import time

    from conveyor.exceptions import RunFailedError
    from conveyor.execution.dask import DaskExecutor
    from conveyor.execution.orchestrator import run_pipeline
    from tests.conftest import make_settings

    from . import ddp_steps

    settings = make_settings(tmp_path)
    executor = DaskExecutor(n_workers=2)
    try:
        run = run_pipeline(ddp_steps.xgb_pipeline, settings=settings, executor=executor)
        model = run.output()
        assert model.flavor == "xgboost" and model.profile.row_count == 2000
        assert "train.logloss" in run.metrics()
        started = time.monotonic()
        with pytest.raises(RunFailedError, match="2 Dask workers with GPU=1 each"):
            run_pipeline(ddp_steps.gpu_pipeline, settings=settings, executor=executor)
        assert time.monotonic() - started < 30
    finally:
        executor.shutdown()
