"""The Dask side of a distributed fit: which client, which workers, where the data goes.

A distributed fit runs inside a step (on a Dask worker, as the job's coordinator) or in a
notebook holding a ``distributed.Client``. Its size comes from the step's ``workers``
resource; the other resources (``gpus``, ``cpus``, ``memory``) are what each of those
workers must offer. Partitions are read by the workers themselves, placed round-robin so
every worker of the job holds a share.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor._internal.lazy import require
from conveyor.exceptions import ConfigError

if TYPE_CHECKING:
    from conveyor.data.partitioned import DatasetRef


@dataclass(frozen=True)
class JobSpec:
    """How big a distributed job is and what each of its workers needs.

    Attributes:
        workers: Number of Dask workers (ranks) in the job.
        gpus: GPUs each worker uses (0: CPU).
        resources: The Dask worker resources each worker of the job must offer.
    """

    workers: int
    gpus: int
    resources: dict[str, float]


def job_spec(workers: int | None, gpus: int | None) -> JobSpec:
    """The job's size: explicit arguments first, then the running step's resources.

    Raises:
        ConfigError: a count that is not an int >= 1 (``gpus`` >= 0).
    """
    from conveyor.core.context import current_context
    from conveyor.execution.dask import job_resources

    context = current_context()
    step_resources: dict[str, Any] = dict(context.resources) if context is not None else {}
    if workers is not None:
        step_resources["workers"] = workers
    if gpus is not None:
        step_resources["gpus"] = gpus
    step_resources.setdefault("workers", 1)
    count, per_worker = job_resources(step_resources)
    gpu_count = step_resources.get("gpus", 0)
    if isinstance(gpu_count, bool) or not isinstance(gpu_count, int) or gpu_count < 0:
        raise ConfigError(f"The 'gpus' resource must be an int >= 0. Got {gpu_count!r} instead.")
    if not gpu_count:
        per_worker.pop("GPU", None)
    return JobSpec(int(count or 1), gpu_count, per_worker)


@contextlib.contextmanager
def cluster_client(client: Any = None) -> Iterator[Any]:
    """The Dask client a fit uses.

    Inside a task on a Dask worker (a step on the Dask executor) this is the worker's
    client, and the task leaves the worker's thread pool while it waits, so the job's own
    tasks can use that thread. Elsewhere it is `client` or the current default client.

    Raises:
        ConfigError: no Dask cluster is available.
    """
    distributed = require("distributed", "dask")
    if client is not None:
        yield client
        return
    try:
        distributed.get_worker()
    except ValueError:
        pass
    else:
        with distributed.worker_client() as inner:
            yield inner
        return
    try:
        found = distributed.get_client()
    except ValueError:
        raise ConfigError(
            "A distributed fit needs a Dask cluster. Run the step with --executor "
            "dask-local:N or dask://HOST:PORT, or pass client=distributed.Client(...)."
        ) from None
    yield found


def pick_workers(client: Any, spec: JobSpec, *, wait: float = 0.0) -> list[str]:
    """Addresses of `spec.workers` workers offering the job's resources.

    Waits up to `wait` seconds for enough workers to join (after a worker died, its
    replacement), then fails fast.

    Raises:
        ConfigError: fewer such workers than the job needs (names what is missing).
    """
    from conveyor.execution.dask import check_resources, cluster_info, workers_offering

    deadline = time.monotonic() + wait
    while True:
        info = cluster_info(client)
        offering = workers_offering(spec.resources, info)
        if len(offering) >= spec.workers or time.monotonic() >= deadline:
            break
        time.sleep(0.2)  # polling the scheduler for joining workers, with a deadline
    check_resources(spec.resources, info, count=spec.workers)
    return offering[: spec.workers]


def read_columns(ref: DatasetRef, index: int, columns: Sequence[str] | None) -> Any:
    """A partition as a pandas DataFrame: runs on a Dask worker."""
    return ref.read_partition(index, columns)


def place_partitions(
    client: Any, ref: DatasetRef, workers: Sequence[str], columns: Sequence[str] | None = None
) -> list[Any]:
    """Futures of the partitions, each read by the worker it is assigned to (round-robin)."""
    if len(ref.partitions) < len(workers):
        raise ConfigError(
            f"The dataset {ref.label} has {len(ref.partitions)} partitions for "
            f"{len(workers)} workers; every worker needs at least one. Write it with "
            f"DatasetRef.write(..., partitions={len(workers)}) or more."
        )
    return [
        client.submit(
            read_columns,
            ref,
            index,
            list(columns) if columns else None,
            workers=[workers[index % len(workers)]],
            allow_other_workers=False,
            pure=False,
            key=f"conveyor-partition-{index}-{os.urandom(6).hex()}",
        )
        for index in range(len(ref.partitions))
    ]


def _empty(frame: Any) -> Any:
    return frame.iloc[:0]


def _signature(frame: Any, features: Sequence[str]) -> Any:
    from conveyor.training.signature import Signature

    return Signature.from_frame(frame[list(features)])


@dataclass(frozen=True)
class PlacedData:
    """A dataset's partitions held by the job's workers, and a dask DataFrame over them."""

    frame: Any
    futures: list[Any]

    def signature(self, client: Any, features: Sequence[str]) -> Any:
        """The Signature of `features`, computed from the first partition on its worker."""
        return client.submit(_signature, self.futures[0], list(features), pure=False).result()


def dask_frame(
    client: Any, ref: DatasetRef, workers: Sequence[str], columns: Sequence[str] | None = None
) -> PlacedData:
    """The dataset as a dask DataFrame whose partitions live on `workers`.

    Nothing is read in this process: even the frame's column types come from a worker.
    """
    dd = require("dask.dataframe", "dask")
    futures = place_partitions(client, ref, workers, columns)
    meta = client.submit(_empty, futures[0], pure=False).result()
    return PlacedData(dd.from_delayed(futures, meta=meta, verify_meta=False), futures)


def remote_profile(client: Any, ref: DatasetRef, workers: Sequence[str]) -> Any:
    """The dataset's Profile, each partition profiled by a worker of the job."""

    def run(fn: Any, indices: list[int]) -> list[Any]:
        futures = [
            client.submit(fn, i, workers=[workers[i % len(workers)]], pure=False) for i in indices
        ]
        return list(client.gather(futures))

    return ref.profile(run)


# ---------------------------------------------------------------------------- GPUs
_GPU_LOCK = threading.Lock()
_GPUS_IN_USE: set[str] = set()


def visible_gpus(environ: Mapping[str, str] | None = None, count: int | None = None) -> list[str]:
    """The GPU ids this worker process may use: its CUDA_VISIBLE_DEVICES, else 0..count-1."""
    env = os.environ if environ is None else environ
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is not None:
        return [d.strip() for d in value.split(",") if d.strip() and d.strip() != "-1"]
    return [str(i) for i in range(count or 0)]


@contextlib.contextmanager
def claim_gpus(n: int, devices: Sequence[str]) -> Iterator[list[str]]:
    """Reserve `n` of `devices` for one rank of this worker process until the block ends.

    Raises:
        ConfigError: fewer free GPUs than asked (the worker offers more GPU resources
            than it has devices).
    """
    with _GPU_LOCK:
        free = [d for d in devices if d not in _GPUS_IN_USE]
        if len(free) < n:
            raise ConfigError(
                f"This Dask worker has {len(free)} free GPUs of {list(devices)}, but a rank "
                f"needs {n}. Start each worker with --resources GPU=<its number of GPUs> "
                "and CUDA_VISIBLE_DEVICES listing them (dask-cuda does both)."
            )
        mine = free[:n]
        _GPUS_IN_USE.update(mine)
    try:
        yield mine
    finally:
        with _GPU_LOCK:
            _GPUS_IN_USE.difference_update(mine)
