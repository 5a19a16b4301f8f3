"""`tune`: hyperparameter search with Optuna, trials on an executor, recorded in our store.

Optuna decides what to try (sampler, pruner) in memory through ask/tell; trials run on any
conveyor executor (threads, processes, Dask); finished trials are written to the metadata
store in batches (Optuna's own RDB storage makes several round trips per trial). A study is
resumed by name: its stored trials are added back to a fresh in-memory study, so the sampler
continues from what it already knows.
"""

from __future__ import annotations

import concurrent.futures as cf
import inspect
import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor._internal.ids import new_id
from conveyor._internal.lazy import require
from conveyor.exceptions import ConfigError, ModelError

if TYPE_CHECKING:
    from conveyor.execution.executors import Executor
    from conveyor.stores.metadata import MetadataStore

COMPLETE, PRUNED, FAIL = "complete", "pruned", "fail"
_FLUSH_EVERY = 100


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial as stored."""

    number: int
    params: dict[str, Any]
    value: float | None
    state: str
    duration: float
    started_at: float
    error: str | None = None


@dataclass(frozen=True)
class TuneResult:
    """What `tune` found.

    Attributes:
        best_params: Parameters of the best completed trial.
        best_value: Its objective value.
        trials: Every trial of the study, including those of earlier sessions.
        study_name: The stored study's name (pass it again to resume).
        study: The in-memory Optuna study, for Optuna's visualizations.
    """

    best_params: dict[str, Any]
    best_value: float
    trials: list[TrialRecord]
    study_name: str
    study: Any = field(default=None, repr=False, compare=False)


def _distribution(name: str, spec: Any) -> Any:
    optuna = require("optuna", "tune")
    d = optuna.distributions
    if isinstance(spec, d.BaseDistribution):
        return spec
    if isinstance(spec, list):
        return d.CategoricalDistribution(spec)
    if isinstance(spec, tuple):
        kind, *rest = spec
        log = "log" in rest
        numbers = [v for v in rest if v != "log"]
        spec = {"type": kind, "low": numbers[0], "high": numbers[1], "log": log}
        if len(numbers) > 2:
            spec["step"] = numbers[2]
    if isinstance(spec, Mapping):
        kind = spec.get("type")
        try:
            if kind == "float":
                return d.FloatDistribution(
                    spec["low"], spec["high"], log=bool(spec.get("log")), step=spec.get("step")
                )
            if kind == "int":
                return d.IntDistribution(
                    spec["low"], spec["high"], log=bool(spec.get("log")), step=spec.get("step", 1)
                )
            if kind == "categorical":
                return d.CategoricalDistribution(spec["choices"])
        except (KeyError, ValueError) as exc:
            raise ModelError(f"Search space entry {name!r} is invalid: {exc}.") from exc
    raise ModelError(
        f"Search space entry {name!r} must be a list of choices, ('float', low, high[, "
        "'log']), ('int', low, high), {'type': 'float'|'int'|'categorical', ...} or an "
        f"optuna distribution. Got {spec!r} instead."
    )


def _space_json(distributions: Mapping[str, Any]) -> dict[str, str]:
    optuna = require("optuna", "tune")
    return {
        k: optuna.distributions.distribution_to_json(v) for k, v in sorted(distributions.items())
    }


def _call(objective: Callable[..., float], params: dict[str, Any], trial: Any) -> tuple[Any, ...]:
    """Run one trial; returns (state, value, duration, error)."""
    started = time.perf_counter()
    try:
        value = objective(params, trial) if trial is not None else objective(params)
        value = float(value)
        state = FAIL if math.isnan(value) else COMPLETE
        error = "The objective returned NaN." if state == FAIL else None
    except Exception as exc:
        value = None
        if type(exc).__name__ == "TrialPruned":
            state, error = PRUNED, None
        else:
            state, error = FAIL, "".join(traceback.format_exception_only(exc)).strip()
    return state, value, time.perf_counter() - started, error


def tune(
    objective: Callable[..., float],
    space: Mapping[str, Any],
    *,
    n_trials: int,
    parallel: int = 1,
    executor: Executor | str | None = None,
    sampler: Any = None,
    pruner: Any = None,
    direction: str = "maximize",
    study_name: str | None = None,
    resume: bool | None = None,
    metadata_store: MetadataStore | None = None,
) -> TuneResult:
    """Search `space` for the parameters that optimize `objective`.

    Args:
        objective: ``objective(params) -> float``; or ``objective(params, trial)`` to report
            intermediate values for pruning (``trial.report(v, step)``, ``trial.should_prune()``,
            raise ``optuna.TrialPruned``) with an in-process executor.
        space: Parameter name -> a list of choices, ``("float", low, high[, "log"])``,
            ``("int", low, high)``, a dict, or an Optuna distribution.
        n_trials: New trials to run in this call.
        parallel: Trials running at once.
        executor: An executor or spec (``threads``, ``processes``, ``dask://...``); default
            threads with `parallel` workers.
        sampler: An Optuna sampler (default TPE).
        pruner: An Optuna pruner (default median pruner).
        direction: ``maximize`` or ``minimize``.
        study_name: Name of the stored study; defaults to the objective's name.
        resume: None (default): continue the stored study of this name; inside a running
            step the study belongs to the step's cache key (it is stored as
            ``NAME@KEY12``), so a retry of the same step continues it while changed code,
            parameters or data start a fresh study and stale trials never compete.
            True: continue the study stored under exactly `study_name`, across keys.
            False: start a study; its name must be new.
        metadata_store: Where trials are recorded; the configured store by default.

    Raises:
        ModelError: an invalid space or direction, a resumed study with another space, or
            every trial failed (the first error is shown).
        ConfigError: optuna is not installed, or pruning with an out-of-process executor.
    """
    optuna = require("optuna", "tune")
    if direction not in ("maximize", "minimize"):
        raise ModelError(f"direction must be 'maximize' or 'minimize'. Got {direction!r} instead.")
    if not isinstance(n_trials, int) or n_trials < 0:
        raise ModelError(f"The 'n_trials' parameter of tune must be an int >= 0. Got {n_trials!r}.")
    if not isinstance(parallel, int) or parallel < 1:
        raise ModelError(f"The 'parallel' parameter of tune must be an int >= 1. Got {parallel!r}.")
    distributions = {name: _distribution(name, spec) for name, spec in space.items()}
    space_json = _space_json(distributions)
    name = study_name or getattr(objective, "__qualname__", "study").replace("<", "").replace(
        ">", ""
    )
    from conveyor.core.context import current_context

    context = current_context()
    key = context.cache_key if context is not None else None
    if key is not None and resume is None:
        # The trials were computed from the step's code and inputs: they belong to its key.
        name = f"{name}@{key.rsplit(':', 1)[-1][:12]}"
    if metadata_store is None:
        from conveyor.stores.defaults import default_urls
        from conveyor.stores.metadata import open_metadata_store

        metadata_store = open_metadata_store(default_urls()[0])
    run_id = context.run_id if context else None
    step_run_id = context.step_run_id if context else None

    study = optuna.create_study(direction=direction, sampler=sampler, pruner=pruner)
    study_id, previous = _open_study(
        metadata_store,
        name,
        direction,
        space_json,
        study,
        resume=resume is not False,
        run_id=run_id,
    )
    for record in previous:
        study.add_trial(
            optuna.trial.create_trial(
                params=record.params,
                distributions=distributions,
                value=record.value if record.state == COMPLETE else None,
                state={
                    COMPLETE: optuna.trial.TrialState.COMPLETE,
                    PRUNED: optuna.trial.TrialState.PRUNED,
                    FAIL: optuna.trial.TrialState.FAIL,
                }[record.state],
            )
        )

    wants_trial = len(inspect.signature(objective).parameters) >= 2
    owned = executor is None or isinstance(executor, str)
    if owned:
        from conveyor.execution.executors import make_executor

        runner = make_executor(executor or "threads", parallel)  # type: ignore[arg-type]
    else:
        runner = executor  # type: ignore[assignment]
    if wants_trial and not runner.in_process:
        raise ConfigError(
            f"The objective takes a trial (for pruning), which cannot be sent to the "
            f"{runner.name} executor's workers. Use executor='threads', or an objective that "
            "takes only params."
        )
    records: list[TrialRecord] = list(previous)
    batch: list[dict[str, Any]] = []
    pending: dict[cf.Future[tuple[Any, ...]], tuple[Any, float]] = {}
    submitted = 0
    states = {
        COMPLETE: optuna.trial.TrialState.COMPLETE,
        PRUNED: optuna.trial.TrialState.PRUNED,
        FAIL: optuna.trial.TrialState.FAIL,
    }
    try:
        while submitted < n_trials or pending:
            while submitted < n_trials and len(pending) < parallel:
                trial = study.ask(distributions)
                future = runner.submit(
                    _call, objective, dict(trial.params), trial if wants_trial else None
                )
                pending[future] = (trial, time.time())
                submitted += 1
            done, _ = cf.wait(list(pending), return_when=cf.FIRST_COMPLETED)
            for future in done:
                trial, started = pending.pop(future)
                try:
                    state, value, duration, error = future.result()
                except Exception as exc:  # the executor itself failed (e.g. a dead worker)
                    state, value, duration, error = FAIL, None, time.time() - started, str(exc)
                frozen = study.tell(
                    trial, value if state == COMPLETE else None, state=states[state]
                )
                record = TrialRecord(
                    trial.number,
                    dict(trial.params),
                    value if state == COMPLETE else None,
                    state,
                    duration,
                    started,
                    error,
                )
                records.append(record)
                batch.append(
                    {
                        "study_id": study_id,
                        "number": record.number,
                        "params": record.params,
                        "value": record.value,
                        "state": state,
                        "intermediate": _intermediate(frozen),
                        "error": error,
                        "started_at": started,
                        "duration": duration,
                        "run_id": run_id,
                        "step_run_id": step_run_id,
                    }
                )
            if len(batch) >= _FLUSH_EVERY:
                _flush(metadata_store, batch)
                batch = []
    finally:
        _flush(metadata_store, batch)
        if owned:
            runner.shutdown(wait=False)

    completed = [r for r in records if r.state == COMPLETE]
    if not completed:
        failures = [r.error for r in records if r.error]
        raise ModelError(
            f"No trial of study {name!r} completed ({len(records)} ran). "
            + (f"First error: {failures[0]}" if failures else "All were pruned.")
        )
    pick = max if direction == "maximize" else min
    best = pick(completed, key=lambda r: r.value if r.value is not None else math.nan)
    if context is not None:
        from conveyor.core.context import log_metrics, log_params

        log_params({"tune.study": name, **{f"tune.{k}": v for k, v in best.params.items()}})
        log_metrics({"tune.best_value": float(best.value or 0.0), "tune.trials": len(records)})
    return TuneResult(
        best_params=dict(best.params),
        best_value=float(best.value or 0.0),
        trials=sorted(records, key=lambda r: r.number),
        study_name=name,
        study=study,
    )


def _intermediate(frozen: Any) -> dict[str, float] | None:
    values = frozen.intermediate_values
    return {str(k): float(v) for k, v in values.items()} or None


def _flush(store: MetadataStore, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    from conveyor.stores.metadata import tables_registry as r

    with store.engine.begin() as c:
        c.execute(r.tuning_trials.insert(), [dict(row) for row in rows])


def _open_study(
    store: MetadataStore,
    name: str,
    direction: str,
    space: dict[str, str],
    study: Any,
    *,
    resume: bool,
    run_id: str | None,
) -> tuple[str, list[TrialRecord]]:
    import sqlalchemy as sa

    from conveyor.stores.metadata import tables_registry as r

    with store.engine.begin() as c:
        row = c.execute(sa.select(r.tuning_studies).where(r.tuning_studies.c.name == name)).first()
        if row is None:
            study_id = new_id()
            c.execute(
                r.tuning_studies.insert(),
                [
                    {
                        "id": study_id,
                        "name": name,
                        "direction": direction,
                        "space": space,
                        "sampler": type(study.sampler).__name__,
                        "pruner": type(study.pruner).__name__,
                        "run_id": run_id,
                        "created_at": time.time(),
                    }
                ],
            )
            return study_id, []
        if not resume:
            raise ModelError(
                f"A tuning study named {name!r} already exists. Pass resume=True to continue "
                "it, or choose another study_name."
            )
        if row.direction != direction or dict(row.space) != space:
            raise ModelError(
                f"The stored study {name!r} was created with direction {row.direction!r} and "
                f"parameters {sorted(row.space)}; this call has {direction!r} and "
                f"{sorted(space)} (or different ranges). Use another study_name to start over."
            )
        trials = c.execute(
            sa.select(r.tuning_trials)
            .where(r.tuning_trials.c.study_id == row.id)
            .order_by(r.tuning_trials.c.number)
        ).all()
    return row.id, [
        TrialRecord(t.number, dict(t.params), t.value, t.state, t.duration, t.started_at, t.error)
        for t in trials
    ]


def study_trials(store: MetadataStore, name: str) -> list[TrialRecord]:
    """The stored trials of a study, in order.

    Raises:
        NotFoundError: no study of that name.
    """
    import sqlalchemy as sa

    from conveyor.exceptions import NotFoundError, did_you_mean
    from conveyor.stores.metadata import tables_registry as r

    with store.engine.connect() as c:
        study_id = c.execute(
            sa.select(r.tuning_studies.c.id).where(r.tuning_studies.c.name == name)
        ).scalar_one_or_none()
        if study_id is None:
            names = list(c.execute(sa.select(r.tuning_studies.c.name)).scalars())
            raise NotFoundError(f"No tuning study named {name!r}." + did_you_mean(name, names))
        rows = c.execute(
            sa.select(r.tuning_trials)
            .where(r.tuning_trials.c.study_id == study_id)
            .order_by(r.tuning_trials.c.number)
        ).all()
    return [
        TrialRecord(t.number, dict(t.params), t.value, t.state, t.duration, t.started_at, t.error)
        for t in rows
    ]
