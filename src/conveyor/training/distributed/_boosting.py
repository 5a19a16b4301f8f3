"""XGBoost and LightGBM fitted across the Dask workers of a step.

Both read the `DatasetRef`'s partitions on the job's workers (`xgboost.dask`,
`lightgbm.dask`), log the evaluation curves to the step run, and return a `Model`.

With an Optuna `trial` the boosting runs in chunks of `report_every` rounds, each chunk
continuing the previous model on the same cluster data; after each chunk the last
validation score is reported and the trial is pruned when Optuna says so. Deciding between
chunks, on the coordinator, keeps every worker in step: no worker can stop alone and leave
the others waiting in a collective.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from conveyor._internal.lazy import require
from conveyor.exceptions import DataError, ModelError
from conveyor.training.distributed._cluster import (
    cluster_client,
    dask_frame,
    job_spec,
    pick_workers,
    remote_profile,
)
from conveyor.training.distributed._model import build_model, feature_columns

if TYPE_CHECKING:
    from conveyor.data.partitioned import DatasetRef
    from conveyor.training.model import Model


def _log_curves(history: Mapping[str, Mapping[str, Sequence[float]]], offset: int = 0) -> None:
    from conveyor.core.context import current_context, log_metrics

    if current_context() is None:
        return
    for data_name, metrics in history.items():
        for metric, values in metrics.items():
            for i, value in enumerate(values):
                log_metrics({f"{data_name}.{metric}": float(value)}, step=offset + i)


def _last_value(history: Mapping[str, Mapping[str, Sequence[float]]], prefer: str) -> float:
    curves = history.get(prefer) or next(iter(history.values()), {})
    if not curves:
        raise ModelError("Pruning needs an evaluation metric; none was computed.")
    values = list(curves.values())[-1]
    return float(values[-1])


def _merge(into: dict[str, dict[str, list[float]]], more: Mapping[str, Any]) -> None:
    for data_name, metrics in more.items():
        target = into.setdefault(str(data_name), {})
        for metric, values in metrics.items():
            target.setdefault(str(metric), []).extend(float(v) for v in values)


def _final_metrics(history: Mapping[str, Mapping[str, Sequence[float]]]) -> dict[str, float]:
    return {
        f"{data_name}.{metric}": float(values[-1])
        for data_name, metrics in history.items()
        for metric, values in metrics.items()
        if len(values)
    }


def _chunks(total: int, trial: Any, report_every: int) -> list[int]:
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ModelError(f"The number of boosting rounds must be an int >= 1. Got {total!r}.")
    if trial is None:
        return [total]
    if isinstance(report_every, bool) or not isinstance(report_every, int) or report_every < 1:
        raise ModelError(f"'report_every' must be an int >= 1. Got {report_every!r} instead.")
    sizes = [report_every] * (total // report_every)
    if total % report_every:
        sizes.append(total % report_every)
    return sizes


def _prune_check(trial: Any, value: float, step: int) -> None:
    if trial is None:
        return
    trial.report(value, step)
    if trial.should_prune():
        optuna = require("optuna", "tune")
        raise optuna.TrialPruned(f"Pruned at round {step} (value {value:g}).")


def _xgboost_kind(params: Mapping[str, Any], ref: DatasetRef, target: str) -> str:
    objective = str(params.get("objective", ""))
    if objective:
        return "classifier" if objective.startswith(("binary:", "multi:")) else "regressor"
    target_type = dict(ref.columns)[target]
    return "regressor" if target_type.startswith(("float", "double", "halffloat")) else "classifier"


def fit_xgboost(
    data: DatasetRef,
    *,
    target: str,
    params: Mapping[str, Any] | None = None,
    num_boost_round: int = 100,
    valid: DatasetRef | None = None,
    features: Sequence[str] | None = None,
    workers: int | None = None,
    gpus: int | None = None,
    client: Any = None,
    trial: Any = None,
    report_every: int = 10,
    profile: bool = True,
) -> Model:
    """Fit XGBoost (``xgboost.dask``) on the workers of the step's job.

    Args:
        data: The training partitions; each worker of the job reads its share.
        target: The label column. Classification objectives (``binary:*``, ``multi:*``)
            need labels 0..k-1; without an objective, a float target means regression
            (``reg:squarederror``) and any other type classification.
        params: XGBoost parameters (``tree_method`` defaults to ``hist``; with GPUs,
            ``device`` defaults to ``cuda``).
        num_boost_round: Boosting rounds.
        valid: Validation partitions, evaluated every round (curves in the step run).
        features: Feature columns; by default every column but `target`.
        workers: Workers of the job; by default the step's ``workers`` resource, else 1.
        gpus: GPUs per worker; by default the step's ``gpus`` resource, else 0.
        client: A ``distributed.Client``; inside a step on Dask, the worker's own.
        trial: An Optuna trial to report the validation score to and prune.
        report_every: Rounds between reports to `trial`.
        profile: Compute the training Profile (on the workers) for the Model.

    Returns:
        A Model (flavor ``xgboost``) like any other: signature, Profile, metrics.

    Raises:
        ConfigError: no cluster, or fewer workers offering the resources than asked.
        DataError: unknown columns, or classification labels that are not 0..k-1.
        optuna.TrialPruned: the trial was pruned.
    """
    xgb = require("xgboost", "xgboost")
    xgb_dask = require("xgboost.dask", "xgboost")
    spec = job_spec(workers, gpus)
    columns = feature_columns(data, target, features)
    options: dict[str, Any] = {"tree_method": "hist", **dict(params or {})}
    if spec.gpus:
        options.setdefault("device", "cuda")
    kind = _xgboost_kind(options, data, target)
    with cluster_client(client) as c:
        addresses = pick_workers(c, spec)
        placed = dask_frame(c, data, addresses, [*columns, target])
        X, y = placed.frame[columns], placed.frame[target]
        if kind == "classifier":
            classes = sorted(c.compute(y.drop_duplicates()).result().tolist())
            if classes != list(range(len(classes))):
                raise DataError(
                    f"XGBoost classification needs labels 0..k-1 in {target!r}; found "
                    f"{classes[:10]}. Encode the target (e.g. with categories' codes) first."
                )
            if "objective" not in options:
                options["objective"] = "binary:logistic" if len(classes) <= 2 else "multi:softprob"
            if str(options["objective"]).startswith("multi:"):
                options.setdefault("num_class", len(classes))
        elif "objective" not in options:
            options["objective"] = "reg:squarederror"
        dtrain = xgb_dask.DaskQuantileDMatrix(c, X, y)
        evals = [(dtrain, "train")]
        if valid is not None:
            vframe = dask_frame(c, valid, addresses, [*columns, target]).frame
            evals.append(
                (
                    xgb_dask.DaskQuantileDMatrix(c, vframe[columns], vframe[target], ref=dtrain),
                    "valid",
                )
            )
        booster: Any = None
        history: dict[str, dict[str, list[float]]] = {}
        done = 0
        for size in _chunks(num_boost_round, trial, report_every):
            output = xgb_dask.train(
                c,
                options,
                dtrain,
                num_boost_round=size,
                evals=evals,
                xgb_model=booster,
                verbose_eval=False,
            )
            booster = output["booster"]
            _merge(history, output["history"])
            done += size
            _prune_check(trial, _last_value(history, "valid"), done)
        training_profile = remote_profile(c, data, addresses) if profile else None
        signature = placed.signature(c, columns)
    _log_curves(history)
    estimator = xgb.XGBClassifier() if kind == "classifier" else xgb.XGBRegressor()
    estimator.load_model(bytearray(booster.save_raw(raw_format="ubj")))
    return build_model(
        estimator,
        data,
        target=target,
        features=columns,
        metrics=_final_metrics(history),
        profile=training_profile,
        signature=signature,
    )


def fit_lightgbm(
    data: DatasetRef,
    *,
    target: str,
    params: Mapping[str, Any] | None = None,
    task: str | None = None,
    valid: DatasetRef | None = None,
    features: Sequence[str] | None = None,
    workers: int | None = None,
    gpus: int | None = None,
    client: Any = None,
    trial: Any = None,
    report_every: int = 10,
    profile: bool = True,
) -> Model:
    """Fit LightGBM (``lightgbm.dask``) on the workers of the step's job.

    Args:
        data: The training partitions; each worker of the job reads its share.
        target: The label column.
        params: Parameters of ``LGBMClassifier`` / ``LGBMRegressor`` (``n_estimators``
            is the number of rounds).
        task: ``classification`` or ``regression``; by default regression for a float
            target, classification otherwise.
        valid: Validation partitions, evaluated every round (curves in the step run).
        features: Feature columns; by default every column but `target`.
        workers: Workers of the job; by default the step's ``workers`` resource, else 1.
        gpus: GPUs per worker (``device_type="gpu"``); by default the step's ``gpus``.
        client: A ``distributed.Client``; inside a step on Dask, the worker's own.
        trial: An Optuna trial to report the validation score to and prune.
        report_every: Rounds between reports to `trial`.
        profile: Compute the training Profile (on the workers) for the Model.

    Returns:
        A Model (flavor ``lightgbm``) like any other: signature, Profile, metrics.

    Raises:
        ConfigError: no cluster, or fewer workers offering the resources than asked.
        DataError: unknown columns.
        optuna.TrialPruned: the trial was pruned.
    """
    lgb_dask = require("lightgbm.dask", "lightgbm")
    spec = job_spec(workers, gpus)
    columns = feature_columns(data, target, features)
    options: dict[str, Any] = {"verbose": -1, **dict(params or {})}
    if spec.gpus:
        options.setdefault("device_type", "gpu")
    rounds = int(options.pop("n_estimators", 100))
    if task is None:
        target_type = dict(data.columns)[target]
        task = "regression" if target_type.startswith(("float", "double")) else "classification"
    if task not in ("classification", "regression"):
        raise ModelError(f"task must be 'classification' or 'regression'. Got {task!r}.")
    cls = lgb_dask.DaskLGBMClassifier if task == "classification" else lgb_dask.DaskLGBMRegressor
    with cluster_client(client) as c:
        addresses = pick_workers(c, spec)
        placed = dask_frame(c, data, addresses, [*columns, target])
        X, y = placed.frame[columns], placed.frame[target]
        fit_args: dict[str, Any] = {}
        if valid is not None:
            vframe = dask_frame(c, valid, addresses, [*columns, target]).frame
            fit_args = {"eval_X": (vframe[columns],), "eval_y": (vframe[target],)}
            fit_args["eval_names"] = ["valid"]
        local: Any = None
        history: dict[str, dict[str, list[float]]] = {}
        done = 0
        for size in _chunks(rounds, trial, report_every):
            estimator = cls(client=c, n_estimators=size, **options)
            init = {"init_model": local.booster_} if local is not None else {}
            with warnings.catch_warnings():
                # lightgbm.dask sets the thread count per worker itself and says so about
                # the estimator's own default n_jobs on every fit.
                warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored")
                estimator.fit(X, y, **fit_args, **init)
            local = estimator.to_local()
            _merge(history, getattr(local, "evals_result_", {}) or {})
            done += size
            if trial is not None:
                _prune_check(trial, _last_value(history, "valid"), done)
        training_profile = remote_profile(c, data, addresses) if profile else None
        signature = placed.signature(c, columns)
    _log_curves(history)
    return build_model(
        local,
        data,
        target=target,
        features=columns,
        metrics=_final_metrics(history),
        profile=training_profile,
        signature=signature,
    )
