"""PyTorch DDP across Dask workers: ranks, rendezvous, checkpoints and restarts.

The coordinator (the step's task, or the caller's process) picks the job's workers, finds
a free port on rank 0's worker for the rendezvous and submits one rank per worker. Each
rank reads its own share of the partitions, wraps the model in
``DistributedDataParallel`` (gloo on CPU, NCCL on GPUs), and runs the epochs. Rank 0
writes a checkpoint (weights, optimizer state, position, curves) to the artifact store
every `checkpoint_every` steps and at the end of every epoch; a pointer file names the
latest one. When a rank fails because a peer or its worker is gone, the coordinator cancels
the job and starts it again from the latest checkpoint on the workers alive then (the
replacement a nanny starts, or fewer). An error inside the user's `train_loop` is not
retried: it fails the fit with the rank named.

Checkpoints load with ``torch.load(weights_only=True)``: a pointer can only choose which
weights are loaded, never which code runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor._internal.lazy import require
from conveyor.exceptions import ConfigError, ModelError
from conveyor.execution.dask import cluster_info
from conveyor.training.distributed._cluster import (
    JobSpec,
    claim_gpus,
    cluster_client,
    job_spec,
    pick_workers,
    remote_profile,
    visible_gpus,
)
from conveyor.training.distributed._model import build_model, feature_columns

if TYPE_CHECKING:
    from conveyor.data.partitioned import DatasetRef
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.training.model import Model

logger = logging.getLogger("conveyor.training")

# One process group per process: a worker runs one rank at a time.
_RANK_LOCK = threading.Lock()
# Failures that mean a peer (or its worker) went away: the job restarts from a checkpoint.
_LOST = ("KilledWorker", "CommClosedError", "FutureCancelledError", "CancelledError")


class TrainLoopError(ModelError):
    """The user's train_loop (or model / optimizer factory) raised on a rank."""


class DDPTimeoutError(ModelError):
    """A rank waited longer than the job's `timeout` for the coordinator (not retried)."""


@dataclass(frozen=True)
class RankInfo:
    """Where a rank runs, as `current_rank` tells it inside train_loop."""

    rank: int
    world_size: int
    device: str
    backend: str


@dataclass(frozen=True)
class DDPResult:
    """The outcome of `run_ddp`.

    Attributes:
        module: The trained module (unwrapped, on CPU).
        history: One dict per epoch: ``epoch``, ``train_loss`` and, with validation data,
            ``valid_loss``.
        steps: Optimizer steps taken in total (across restarts, counted once).
        restarts: How many times the job was started again from a checkpoint.
        resumed_from: The global step of the checkpoint each restart resumed from.
        world_sizes: The number of ranks of each start.
        checkpoint: Content hash of the latest checkpoint in the artifact store.
        failures: Why each restart happened.
    """

    module: Any
    history: list[dict[str, float]]
    steps: int
    restarts: int
    resumed_from: list[int] = field(default_factory=list)
    world_sizes: list[int] = field(default_factory=list)
    checkpoint: str | None = None
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _RankArgs:
    train_loop: Callable[..., Any]
    model: Callable[[], Any]
    optimizer: Callable[[Iterable[Any]], Any] | None
    data: DatasetRef
    valid: DatasetRef | None
    features: tuple[str, ...]
    target: str
    epochs: int
    batch_size: int
    checkpoint_every: int
    seed: int
    rank: int
    world_size: int
    master: str
    port: int
    gpus: int
    timeout: float
    checkpoint: str | None
    pointer: str
    report_queue: str | None
    decision_queue: str | None


_CURRENT_RANK: RankInfo | None = None


def current_rank() -> RankInfo | None:
    """The rank running `train_loop` in this process (None outside a DDP rank)."""
    return _CURRENT_RANK


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _host(address: str) -> str:
    return address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")


def _tensors(ref: DatasetRef, indices: Sequence[int], features: Sequence[str], target: str) -> Any:
    import numpy as np
    import pandas as pd
    import torch

    frames = [ref.read_partition(i, [*features, target]) for i in indices]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    X = torch.from_numpy(np.ascontiguousarray(frame[list(features)].to_numpy(np.float32)))
    labels = frame[target].to_numpy()
    if np.issubdtype(labels.dtype, np.floating):
        y = torch.from_numpy(labels.astype(np.float32))
    else:
        y = torch.from_numpy(labels.astype(np.int64))
    return X, y


def _user(what: str, rank: int, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        if type(exc).__name__.startswith("Dist"):
            raise
        raise TrainLoopError(f"{what} raised on rank {rank}: {type(exc).__name__}: {exc}") from exc


def _save_checkpoint(store: ArtifactStore, pointer: str, state: dict[str, Any]) -> str:
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    content_hash, _ = store.put(buffer.getvalue())
    store.write_file(
        pointer, json.dumps({"checkpoint": content_hash, "step": state["step"]}).encode()
    )
    return content_hash


def _load_checkpoint(store: ArtifactStore, content_hash: str) -> dict[str, Any]:
    import torch

    state: dict[str, Any] = torch.load(io.BytesIO(store.get(content_hash)), weights_only=True)
    return state


def _read_pointer(store: ArtifactStore, pointer: str) -> dict[str, Any] | None:
    from conveyor.exceptions import StoreError
    from conveyor.stores.artifacts import _check_hash

    try:
        raw = json.loads(store.read_file(pointer))
        return {"checkpoint": _check_hash(str(raw["checkpoint"])), "step": int(raw["step"])}
    except StoreError:
        return None
    except (ValueError, KeyError, TypeError):
        return None  # a damaged pointer: start over rather than trust it


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_GLIBC_MMAP_DEFAULT = 128 * 1024


@contextlib.contextmanager
def _roomy_malloc() -> Iterator[None]:
    """Keep freed tensor memory in the heap while a rank runs on a Dask nanny worker.

    A nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes
    glibc's mmap threshold at 128 KiB: every activation or gradient buffer above that is
    mapped and unmapped (and page-faulted) on every step, which made a small MLP's training
    step 1.7x slower than in a plain process (one process, batch 256). For the rank's
    duration the thresholds are raised (32 MiB mmap, 256 MiB trim); the nanny's values are
    put back when it ends. Nothing changes on other platforms or without that variable.
    """
    value = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    mallopt = None
    if value is not None and value.isdigit():
        import ctypes
        import ctypes.util

        with contextlib.suppress(OSError, AttributeError, TypeError):
            mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    if mallopt is None or value is None:
        yield
        return
    nanny_trim = int(value)
    mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
    mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)
    try:
        yield
    finally:
        mallopt(_M_MMAP_THRESHOLD, _GLIBC_MMAP_DEFAULT)
        mallopt(_M_TRIM_THRESHOLD, nanny_trim)


def _rank_main(args: _RankArgs) -> dict[str, Any]:
    """One DDP rank, run as a task on a Dask worker."""
    global _CURRENT_RANK
    if not _RANK_LOCK.acquire(timeout=args.timeout):
        raise ConfigError(
            "Another DDP rank is still running in this Dask worker process; a worker runs "
            "one rank at a time. Start workers with one process per rank."
        )
    try:
        with _roomy_malloc():
            if args.gpus:
                import torch

                devices = visible_gpus(count=torch.cuda.device_count())
                with claim_gpus(args.gpus, devices) as mine:
                    return _run_rank(args, f"cuda:{devices.index(mine[0])}")
            return _run_rank(args, "cpu")
    finally:
        _CURRENT_RANK = None
        _RANK_LOCK.release()


def _run_rank(args: _RankArgs, device_name: str) -> dict[str, Any]:
    import datetime

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from conveyor.stores.artifacts import open_artifact_store

    global _CURRENT_RANK
    backend = "nccl" if device_name.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(torch.device(device_name))
    device = torch.device(device_name)
    rank, world = args.rank, args.world_size
    _CURRENT_RANK = RankInfo(rank, world, device_name, backend)
    store = open_artifact_store(args.data.artifact_url)
    dist.init_process_group(
        backend,
        init_method=f"tcp://{args.master}:{args.port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=args.timeout),
    )
    # Destroying a gloo group joins its worker threads, and a worker thread that is just
    # freeing a finished collective's tensors needs the GIL. Were the DDP reducer the
    # group's last owner, its destructor would join them with the GIL held, and the rank
    # would hang for good after its last collective (about one short job in a dozen did).
    # The group's Python handle releases the GIL before it destructs: the rank keeps it
    # until the reducer is gone and lets it go last.
    group: Any = dist.group.WORLD
    model: Any = None
    optimizer: Any = None
    try:
        torch.manual_seed(args.seed)
        mine = list(range(rank, len(args.data.partitions), world))
        X, y = _tensors(args.data, mine, args.features, args.target)
        valid = None
        if args.valid is not None:
            valid = _tensors(
                args.valid,
                list(range(rank, len(args.valid.partitions), world)),
                args.features,
                args.target,
            )
        module = _user("The model factory", rank, args.model)
        state = _load_checkpoint(store, args.checkpoint) if args.checkpoint else None
        if state is not None:
            module.load_state_dict(state["model"])
        module = module.to(device)
        ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(module, device_ids=ids)
        make_optimizer = args.optimizer or _default_optimizer
        optimizer = _user("The optimizer factory", rank, make_optimizer, model.parameters())
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
        local = torch.tensor([-(-len(X) // args.batch_size)], dtype=torch.int64)
        dist.all_reduce(local, op=dist.ReduceOp.MIN)
        steps_per_epoch = int(local.item())
        if steps_per_epoch < 1:
            raise ConfigError(f"Rank {rank} has no training rows; use fewer workers.")
        history: list[dict[str, float]] = list(state["history"]) if state else []
        step = int(state["step"]) if state else 0
        epoch0 = int(state["epoch"]) if state else 0
        same_world = state is not None and int(state["world_size"]) == world
        batch0 = int(state["batch"]) if same_world and state else 0
        # [sum of loss x rows, rows] on the rank's device: no host sync per step.
        acc = torch.zeros(2, dtype=torch.float64, device=device)
        if same_world and state is not None and rank == 0 and batch0:
            acc += state["acc"].to(device)
        latest = args.checkpoint

        def checkpoint(epoch: int, batch: int) -> None:
            nonlocal latest
            total = acc.clone()
            dist.all_reduce(total)
            total = total.cpu()
            if rank == 0:
                latest = _save_checkpoint(
                    store,
                    args.pointer,
                    {
                        "model": {k: v.cpu() for k, v in model.module.state_dict().items()},
                        "optimizer": optimizer.state_dict(),
                        "epoch": epoch,
                        "batch": batch,
                        "step": step,
                        "world_size": world,
                        "history": history,
                        "acc": total,
                    },
                )

        pruned = False
        for epoch in range(epoch0, args.epochs):
            model.train()  # type: ignore[no-untyped-call]
            generator = torch.Generator().manual_seed(args.seed * 100_003 + epoch * 7919 + rank)
            order = torch.randperm(len(X), generator=generator)
            for batch in range(batch0 if epoch == epoch0 else 0, steps_per_epoch):
                index = order[batch * args.batch_size : (batch + 1) * args.batch_size]
                xb, yb = X[index].to(device), y[index].to(device)
                optimizer.zero_grad(set_to_none=True)
                loss = _user("train_loop", rank, args.train_loop, model, xb, yb)
                loss.backward()
                optimizer.step()
                acc[0] += loss.detach().to(torch.float64) * len(index)
                acc[1] += len(index)
                step += 1
                last = batch + 1 == steps_per_epoch  # the epoch-end checkpoint follows
                if args.checkpoint_every and step % args.checkpoint_every == 0 and not last:
                    checkpoint(epoch, batch + 1)
            total = acc.clone()
            dist.all_reduce(total)
            total = total.cpu()
            record = {
                "epoch": float(epoch),
                "train_loss": float(total[0]) / max(float(total[1]), 1.0),
            }
            if valid is not None:
                record["valid_loss"] = _evaluate(args, model, valid, device, rank)
            history.append(record)
            acc.zero_()
            # Asked before the epoch's checkpoint: a job restarted while asking redoes the
            # epoch and asks again, instead of resuming past the question unasked.
            if args.report_queue is not None and epoch + 1 < args.epochs:
                pruned = _ask_to_prune(args, record, epoch, device)
                if pruned:
                    break
            checkpoint(epoch + 1, 0)
        out: dict[str, Any] = {"rank": rank, "step": step, "pruned": pruned}
        if rank == 0:
            buffer = io.BytesIO()
            torch.save({k: v.cpu() for k, v in model.module.state_dict().items()}, buffer)
            out.update(state=buffer.getvalue(), history=history, checkpoint=latest)
        return out
    finally:
        error = sys.exc_info()[1]
        if error is not None:  # the traceback's frames hold the model too (train_loop's)
            traceback.clear_frames(error.__traceback__)
        model = optimizer = None  # the DDP reducer lets go of the group while it lives on
        try:
            dist.destroy_process_group()
        except Exception:  # a broken group still frees this process for the next job
            pass
        del group  # the last reference: destructs without the GIL


def _default_optimizer(parameters: Iterable[Any]) -> Any:
    import torch

    return torch.optim.Adam(parameters, lr=1e-3)


def _evaluate(args: _RankArgs, model: Any, valid: Any, device: Any, rank: int) -> float:
    import torch
    import torch.distributed as dist

    X, y = valid
    model.eval()
    total = torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():
        for start in range(0, len(X), args.batch_size):
            xb = X[start : start + args.batch_size].to(device)
            yb = y[start : start + args.batch_size].to(device)
            # The wrapped module: a forward of the DDP wrapper in eval mode still syncs.
            loss = _user("train_loop", rank, args.train_loop, model.module, xb, yb)
            total += torch.tensor([float(loss) * len(xb), len(xb)])
    dist.all_reduce(total)
    return float(total[0]) / max(float(total[1]), 1.0)


def _ask_to_prune(args: _RankArgs, record: dict[str, float], epoch: int, device: Any) -> bool:
    """Rank 0 asks the coordinator (the Optuna trial) and tells every rank the answer."""
    import torch
    import torch.distributed as dist

    decision = torch.zeros(1, dtype=torch.int64)
    if args.rank == 0:
        distributed = require("distributed", "dask")
        value = record.get("valid_loss", record["train_loss"])
        distributed.Queue(args.report_queue).put([epoch, value])
        # Half the collective timeout: the other ranks wait in the broadcast below, and
        # the answer must reach them (or this error end the job) before they give up.
        wait = args.timeout / 2
        try:
            answer = distributed.Queue(args.decision_queue).get(timeout=wait)
        except TimeoutError:
            raise DDPTimeoutError(
                f"Rank 0 reported epoch {epoch} to the Optuna trial and got no prune "
                f"decision within {wait:g} s (half of timeout={args.timeout:g}); the "
                "coordinating process is gone or blocked."
            ) from None
        decision[0] = int(bool(answer))
    if device.type == "cuda":
        decision = decision.to(device)
    dist.broadcast(decision, src=0)
    return bool(decision.item())


def _is_lost(exc: BaseException) -> bool:
    if isinstance(exc, (TrainLoopError, DDPTimeoutError)):
        return False
    name = type(exc).__name__
    return name in _LOST or name.startswith("Dist") or isinstance(exc, RuntimeError)


def run_ddp(
    train_loop: Callable[..., Any],
    data: DatasetRef,
    *,
    model: Callable[[], Any],
    target: str,
    epochs: int = 1,
    batch_size: int = 256,
    optimizer: Callable[[Iterable[Any]], Any] | None = None,
    checkpoint_every: int = 100,
    valid: DatasetRef | None = None,
    features: Sequence[str] | None = None,
    workers: int | None = None,
    gpus: int | None = None,
    client: Any = None,
    trial: Any = None,
    max_restarts: int = 3,
    restart_wait: float = 60.0,
    seed: int = 0,
    timeout: float = 120.0,
    job_id: str | None = None,
) -> DDPResult:
    """Train a torch module with DDP on the workers of the step's job.

    Args:
        train_loop: ``train_loop(model, X, y) -> loss``: the loss of one batch (features
            as float32, labels as float32 or int64, on the rank's device). conveyor does
            the rest: zero_grad, backward (gradients averaged across ranks), step.
        data: The training partitions; rank r reads partitions r, r + world, ...
        model: A class or factory returning the ``torch.nn.Module`` (importable from a
            module, so the Model loads anywhere).
        target: The label column; `features` default to the other columns.
        epochs: Passes over the data.
        batch_size: Rows per rank per step (the global batch is world size times it).
        optimizer: ``optimizer(parameters) -> torch.optim.Optimizer``; Adam(1e-3) by
            default.
        checkpoint_every: Steps between checkpoints (also one at every epoch end); 0
            keeps only the epoch-end ones.
        valid: Validation partitions: ``valid_loss`` per epoch.
        workers: Ranks; by default the step's ``workers`` resource.
        gpus: GPUs per rank (NCCL); by default the step's ``gpus`` resource, 0 is gloo on
            CPU.
        client: A ``distributed.Client``; inside a step on Dask, the worker's own.
        trial: An Optuna trial: the epoch's validation (else training) loss is reported
            after every epoch and the job stops when the trial is pruned.
        max_restarts: Restarts from a checkpoint after a lost worker before giving up.
        restart_wait: Seconds to wait for enough workers before a restart (then the job
            restarts on the workers there are).
        seed: Seeds weights (rank 0's are broadcast) and the per-epoch shuffles.
        timeout: Seconds a collective (or the rendezvous) may wait for a peer before the
            rank fails and the job restarts from its checkpoint; rank 0 waits at most half
            of it for a trial's prune decision, then fails the fit (`DDPTimeoutError`).
        job_id: Names the checkpoints; a fit with the same id resumes from them. By
            default the running step run's id (a rescheduled step resumes), else new.

    Raises:
        ConfigError: no cluster, or fewer workers offering the resources than asked.
        TrainLoopError: `train_loop` or a factory raised (not retried).
        DDPTimeoutError: no prune decision reached rank 0 in time (not retried).
        ModelError: the job kept failing after `max_restarts` restarts.
        optuna.TrialPruned: the trial was pruned.
    """
    require("torch", "torch")
    distributed = require("distributed", "dask")
    from conveyor.core.context import current_context
    from conveyor.stores.artifacts import open_artifact_store

    for name, value, low in (
        ("epochs", epochs, 1),
        ("batch_size", batch_size, 1),
        ("checkpoint_every", checkpoint_every, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ModelError(
                f"The '{name}' parameter of run_ddp must be an int >= {low}. Got {value!r}."
            )
    spec = job_spec(workers, gpus)
    columns = tuple(feature_columns(data, target, features))
    job = _job_id(job_id, current_context(), trial)
    pointer = f"checkpoints/ddp/{job}/latest.json"
    store = open_artifact_store(data.artifact_url)
    restarts = 0
    resumed: list[int] = []
    sizes: list[int] = []
    failures: list[str] = []
    with cluster_client(client) as c:
        while True:
            found = _read_pointer(store, pointer)
            if found is not None and found["step"] > 0:
                resumed.append(found["step"])
            try:
                addresses = pick_workers(c, spec, wait=restart_wait if restarts else 0.0)
            except ConfigError:
                if not restarts:
                    raise
                alive = _alive(c, spec)
                if not alive:
                    raise
                addresses = alive[: spec.workers]
            sizes.append(len(addresses))
            queues = _queues(distributed, c, job, restarts) if trial is not None else (None, None)
            port = c.run(_free_port, workers=[addresses[0]])[addresses[0]]
            futures = [
                c.submit(
                    _rank_main,
                    _RankArgs(
                        train_loop=train_loop,
                        model=model,
                        optimizer=optimizer,
                        data=data,
                        valid=valid,
                        features=columns,
                        target=target,
                        epochs=epochs,
                        batch_size=batch_size,
                        checkpoint_every=checkpoint_every,
                        seed=seed,
                        rank=rank,
                        world_size=len(addresses),
                        master=_host(addresses[0]),
                        port=int(port),
                        gpus=spec.gpus,
                        timeout=timeout,
                        checkpoint=found["checkpoint"] if found else None,
                        pointer=pointer,
                        report_queue=queues[0].name if queues[0] is not None else None,
                        decision_queue=queues[1].name if queues[1] is not None else None,
                    ),
                    workers=[address],
                    allow_other_workers=False,
                    resources=spec.resources or None,
                    pure=False,
                    retries=0,
                    key=f"conveyor-ddp-{job}-{restarts}-rank-{rank}",
                )
                for rank, address in enumerate(addresses)
            ]
            try:
                results = _supervise(c, futures, addresses, trial, queues)
            except _JobLost as lost:
                c.cancel(futures, force=True)
                restarts += 1
                failures.append(str(lost))
                logger.warning(
                    "DDP job %s lost a rank (%s); restart %d of %d from its latest checkpoint.",
                    job,
                    lost,
                    restarts,
                    max_restarts,
                )
                if restarts > max_restarts:
                    raise ModelError(
                        f"The DDP job lost a worker {restarts} times ({lost}); giving up after "
                        f"{max_restarts} restarts. Its last checkpoint is kept: run again "
                        f"with job_id={job!r} to resume."
                    ) from lost.__cause__
                continue
            break
    first = next(r for r in results if r["rank"] == 0)
    if any(r["pruned"] for r in results):
        optuna = require("optuna", "tune")
        raise optuna.TrialPruned(f"Pruned after epoch {len(first['history'])}.")
    import torch

    module = model()
    module.load_state_dict(torch.load(io.BytesIO(first["state"]), weights_only=True))
    return DDPResult(
        module=module,
        history=list(first["history"]),
        steps=int(first["step"]),
        restarts=restarts,
        resumed_from=resumed,
        world_sizes=sizes,
        checkpoint=first.get("checkpoint"),
        failures=failures,
    )


def _job_id(job_id: str | None, context: Any, trial: Any) -> str:
    """The job's id: names its checkpoints, queues and task keys.

    Without `job_id`, the step run's id (a retried step resumes its checkpoints), plus the
    trial's number for a tuning trial: the trials of a study run in one step, and each
    must start from its own weights, never from the previous trial's checkpoint.
    """
    if job_id:
        return job_id
    from conveyor._internal.ids import new_id

    base = context.step_run_id if context is not None else new_id()
    return base if trial is None else f"{base}-trial-{trial.number}"


class _JobLost(Exception):
    """A rank failed because a peer or its worker is gone."""


def _alive(client: Any, spec: JobSpec) -> list[str]:
    from conveyor.execution.dask import workers_offering

    return workers_offering(spec.resources, cluster_info(client))


def _queues(distributed: Any, client: Any, job: str, attempt: int) -> tuple[Any, Any]:
    # The job's own client, not the thread's default one: another Client made since (an
    # executor, a test's cluster) must not receive the trial's reports.
    prefix = f"conveyor-ddp-{job}-{attempt}"
    return (
        distributed.Queue(f"{prefix}-report", client=client),
        distributed.Queue(f"{prefix}-decision", client=client),
    )


def _supervise(
    client: Any, futures: list[Any], addresses: Sequence[str], trial: Any, queues: tuple[Any, Any]
) -> list[dict[str, Any]]:
    """Wait for the ranks, answering pruning questions; raise _JobLost on a lost peer."""
    report, decision = queues
    while True:
        done = [f for f in futures if f.done()]
        for future in done:
            if future.status == "error":
                exc = future.exception()
                if not _is_lost(exc):
                    client.cancel(futures, force=True)
                    raise exc
                raise _JobLost(f"{type(exc).__name__}: {exc}") from exc
        if len(done) == len(futures):
            return [f.result() for f in futures]
        workers = cluster_info(client).get("workers", {})
        gone = [a for a in addresses if a not in workers]
        if gone:
            raise _JobLost(f"worker {gone[0]} left the cluster")
        # Asking the size first: a get() that times out is logged as an error by the
        # scheduler, every poll.
        if report is not None and report.qsize() > 0:
            epoch, value = report.get()
            trial.report(float(value), int(epoch))
            decision.put(bool(trial.should_prune()))
            continue
        time.sleep(0.1)  # polling futures and membership, bounded by the ranks' timeout


def torch_ddp(
    train_loop: Callable[..., Any],
    data: DatasetRef,
    *,
    model: Callable[[], Any],
    target: str,
    epochs: int = 1,
    profile: bool = True,
    **options: Any,
) -> Model:
    """`run_ddp`, returning a `Model` (flavor ``torch``) and logging its curves.

    Per-epoch ``train_loss`` (and ``valid_loss``) go to the running step run as curves
    (step = epoch), with ``ddp.restarts``. Arguments are those of `run_ddp`; `profile`
    computes the training Profile on the workers.

    Raises:
        The errors of `run_ddp`.
    """
    result = run_ddp(train_loop, data, model=model, target=target, epochs=epochs, **options)
    from conveyor.core.context import current_context, log_metrics

    if current_context() is not None:
        for record in result.history:
            epoch = int(record["epoch"])
            log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)
        log_metrics({"ddp.restarts": result.restarts, "ddp.steps": result.steps})
    columns = feature_columns(data, target, options.get("features"))
    training_profile = None
    if profile:
        with cluster_client(options.get("client")) as c:
            addresses = sorted(cluster_info(c).get("workers", {}))
            training_profile = remote_profile(c, data, addresses)
    final = {k: v for k, v in result.history[-1].items() if k != "epoch"} if result.history else {}
    return build_model(
        result.module,
        data,
        target=target,
        features=columns,
        metrics=final,
        profile=training_profile,
    )
