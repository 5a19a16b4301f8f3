"""PyTorch DDP with gloo on 2 Dask workers: replicas in sync, convergence, restarts."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conveyor.data.partitioned import DatasetRef
from conveyor.stores.artifacts import open_artifact_store

from .conftest import require_module

pytestmark = pytest.mark.slow
require_module("torch", "torch")

from conveyor.training import distributed  # noqa: E402
from conveyor.training.model import Model  # noqa: E402

from . import nets  # noqa: E402
from .ddp_steps import blobs  # noqa: E402


@pytest.fixture
def data(tmp_path: Path) -> DatasetRef:
    store = open_artifact_store(str(tmp_path / "store"))
    return DatasetRef.write(blobs(2000), partitions=4, artifact_store=store)


def _no_rank_left() -> bool:
    # Runs as a task on a worker: takes the lock every rank holds while it runs.
    from conveyor.training.distributed import _torch

    if not _torch._RANK_LOCK.acquire(timeout=120):
        return False
    _torch._RANK_LOCK.release()
    return True


def wait_for_idle_ranks(client) -> None:  # type: ignore[no-untyped-def]
    """Return once no rank of an earlier job runs on any worker of the module's cluster.

    A failed job's ranks are cancelled, but a rank busy in the train loop keeps its worker
    until its next collective times out; a later job's rank on that worker waits for it.
    """
    client.wait_for_workers(2, timeout=120)
    workers = sorted(client.scheduler_info()["workers"])
    probes = [
        client.submit(_no_rank_left, workers=[w], allow_other_workers=False, pure=False)
        for w in workers
    ]
    assert all(client.gather(probes)), "a rank of an earlier job still runs after 120 s"


def digests(folder: Path) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for rank in (0, 1):
        files = sorted(folder.glob(f"rank{rank}-*"), key=lambda p: p.name.split("-")[2])
        out[rank] = [p.read_text() for p in files]
    return out


def test_replicas_hold_identical_weights_at_every_step_and_converge(
    client, data: DatasetRef, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "steps"
    folder.mkdir()
    result = distributed.run_ddp(
        nets.RecordingLoop(str(folder)),
        data,
        model=nets.Classifier,
        target="label",
        epochs=4,
        batch_size=50,
        workers=2,
        client=client,
        checkpoint_every=25,
    )
    assert result.restarts == 0, result.failures
    seen = digests(folder)
    # 1000 rows per rank, 50 per batch: 20 steps per epoch on each rank.
    assert len(seen[0]) == len(seen[1]) == 80 == result.steps
    assert seen[0] == seen[1]  # after each step (and at the start) both ranks agree
    assert len(set(seen[0])) == 80  # and the weights did move every step
    losses = [h["train_loss"] for h in result.history]
    assert [h["epoch"] for h in result.history] == [0, 1, 2, 3]
    assert losses[-1] < losses[0] * 0.8
    frame = blobs(2000)
    built = Model.from_fitted(result.module, frame.drop(columns="label"), profile=False)
    model = Model.from_bytes(built.to_bytes(), trusted=built.trusted_types())
    accuracy = np.mean(model.predict(frame.drop(columns="label")) == frame["label"])
    assert accuracy > 0.85
    assert result.restarts == 0 and result.world_sizes == [2]


def test_killing_a_worker_mid_training_resumes_from_the_checkpoint(
    client, data: DatasetRef, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "steps"
    folder.mkdir()
    outcome: dict[str, object] = {}

    def train() -> None:
        try:
            outcome["result"] = distributed.run_ddp(
                nets.RecordingLoop(str(folder), stall_after=30),
                data,
                model=nets.Classifier,
                target="label",
                epochs=3,
                batch_size=50,
                workers=2,
                client=client,
                checkpoint_every=10,
                timeout=60,
            )
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=train)
    thread.start()
    deadline = time.monotonic() + 120
    while not list(folder.glob("stalled-*")):
        assert time.monotonic() < deadline, "rank 1 never reached step 30"
        assert thread.is_alive(), outcome
        time.sleep(0.05)
    pid = int(next(folder.glob("stalled-*")).name.split("-")[1])
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=240)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.restarts == 1  # type: ignore[attr-defined]
    assert result.resumed_from == [30]  # type: ignore[attr-defined]
    assert result.steps == 60 and len(result.history) == 3  # type: ignore[attr-defined]
    # The restart did not redo steps 1..30: the new processes started at step 31.
    fresh = [p for p in folder.glob("rank1-*") if f"pid{pid}-" not in p.name]
    assert len(fresh) == 30
    checkpoint = open_artifact_store(data.artifact_url).get(result.checkpoint)  # type: ignore[attr-defined]
    assert len(checkpoint) > 0


def test_a_step_trains_with_ddp_on_the_dask_executor_and_logs_curves(tmp_path: Path) -> None:
    from conveyor.execution.dask import DaskExecutor
    from conveyor.execution.orchestrator import run_pipeline
    from tests.conftest import make_settings

    from . import ddp_steps

    settings = make_settings(tmp_path)
    executor = DaskExecutor(n_workers=2)
    try:
        run = run_pipeline(ddp_steps.ddp_pipeline, settings=settings, executor=executor)
    finally:
        executor.shutdown()
    model = run.output()
    assert isinstance(model, Model) and model.flavor == "torch"
    assert model.profile.row_count == 2000
    frame = blobs(2000)
    assert np.mean(model.predict(frame.drop(columns="label")) == frame["label"]) > 0.85
    from conveyor.stores.metadata import open_metadata_store

    rows = open_metadata_store(settings.db_url).metrics(run.id)
    curve = [(r["step"], r["value"]) for r in rows if r["key"] == "train_loss"]
    assert [s for s, _ in curve] == [0, 1, 2]
    assert curve[-1][1] < curve[0][1]
    assert {r["key"] for r in rows} >= {"ddp.restarts", "ddp.steps"}


def test_train_loop_errors_are_not_retried(client, data: DatasetRef) -> None:  # type: ignore[no-untyped-def]
    def broken(model, X, y):  # type: ignore[no-untyped-def]
        raise ValueError("shapes do not match")

    with pytest.raises(Exception, match=r"train_loop raised on rank \d: ValueError: shapes"):
        distributed.run_ddp(
            broken,
            data,
            model=nets.Classifier,
            target="label",
            workers=2,
            client=client,
            max_restarts=3,
        )


def test_a_rank_that_stops_fails_the_job_within_its_timeout_with_a_clear_error(
    client, data: DatasetRef, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "stalling"
    with pytest.raises(Exception, match=r"lost a worker 1 times .*(?i:timed? ?out)"):
        distributed.run_ddp(
            nets.SlowRank(at=3, seconds=20, marker=str(marker)),
            data,
            model=nets.Classifier,
            target="label",
            batch_size=50,
            workers=2,
            client=client,
            timeout=5,
            max_restarts=0,
        )
    # Bounded by the collective timeout (5 s), not by the stalled rank (20 s) or a test timeout.
    assert time.time() - marker.stat().st_mtime < 15
    wait_for_idle_ranks(client)  # the stalled rank still sleeps: the next test needs its worker


def test_many_short_jobs_in_a_row_all_finish(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # A rank used to hang for good at the end of about one job in a dozen: the DDP reducer,
    # freed with the GIL held, destroyed the gloo group and joined its threads while one of
    # them waited for the GIL to free a finished collective's tensors. One-step jobs reach
    # that end often; 40 of them in a row all hung-free were 3 chances in 100 before.
    wait_for_idle_ranks(client)
    small = DatasetRef.write(
        blobs(400), partitions=2, artifact_store=open_artifact_store(str(tmp_path / "store"))
    )
    for number in range(40):
        outcome = bounded(
            lambda: distributed.run_ddp(
                nets.cross_entropy,
                small,
                model=nets.Classifier,
                target="label",
                epochs=1,
                batch_size=200,
                workers=2,
                client=client,
                timeout=30,
                max_restarts=0,
            ),
            seconds=90,
        )
        assert outcome is not None, f"job {number} never ended (a rank hung)"
        assert outcome.steps == 1


def bounded(call, seconds: float):  # type: ignore[no-untyped-def]
    """`call()` in a thread: its result, or None when it has not returned in `seconds`."""
    finished = threading.Event()
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:
            outcome["error"] = exc
        finished.set()

    threading.Thread(target=run, daemon=True).start()
    if not finished.wait(seconds):
        return None
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]


@pytest.mark.timeout(300)  # three DDP jobs; minutes on a loaded 2-core machine
def test_optuna_trials_are_ddp_jobs_and_hopeless_ones_are_pruned(
    client, data: DatasetRef, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import functools

    import optuna

    from conveyor.stores.metadata import open_metadata_store
    from conveyor.training.tuning import tune

    wait_for_idle_ranks(client)
    valid = DatasetRef.write(
        blobs(600, seed=1), partitions=2, artifact_store=open_artifact_store(data.artifact_url)
    )

    def objective(params, trial):  # type: ignore[no-untyped-def]
        model = distributed.torch_ddp(
            nets.cross_entropy,
            data,
            model=nets.Classifier,
            target="label",
            epochs=2,
            batch_size=200,
            valid=valid,
            workers=2,
            client=client,
            trial=trial,
            optimizer=functools.partial(nets.adam, lr=params["lr"]),
            profile=False,
        )
        return model.metrics["valid_loss"]

    result = tune(
        objective,
        {"lr": [0.02, 1e-7]},  # seed 0 draws 1e-7, 0.02, 1e-7
        n_trials=3,
        executor="threads",
        direction="minimize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
        study_name="distributed-ddp",
        metadata_store=open_metadata_store(f"sqlite:///{tmp_path / 'db.sqlite'}"),
    )
    assert [t.state for t in result.trials] == ["complete", "complete", "pruned"]
    assert result.best_params == {"lr": 0.02}
