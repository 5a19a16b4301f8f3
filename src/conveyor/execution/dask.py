"""The Dask executor: steps become Dask tasks on a LocalCluster or an existing scheduler.

Retries, timeouts, caching and metadata stay in the orchestrator, exactly as with the
local executors; Dask contributes placement, worker resources and rescheduling of tasks
whose worker died. Workers need the artifact store: a local folder only works when every
worker runs on this host.
"""

from __future__ import annotations

import concurrent.futures as cf
import ipaddress
import re
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor._internal.lazy import require
from conveyor.exceptions import ConfigError, ConveyorError

if TYPE_CHECKING:
    from conveyor.execution.executors import Executor

T = TypeVar("T")

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1e3,
    "kb": 1e3,
    "m": 1e6,
    "mb": 1e6,
    "g": 1e9,
    "gb": 1e9,
    "t": 1e12,
    "tb": 1e12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
# Step resource names -> the Dask worker resource names workers are started with.
RESOURCE_NAMES = {"cpus": "CPU", "gpus": "GPU", "memory": "MEMORY"}


def parse_memory(value: Any) -> float:
    """Bytes from 8GiB / 512MB / 1e9 style values.

    Raises:
        ConfigError: the value has no recognizable unit.
    """
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", str(value))
    if not match or match.group(2).lower() not in _UNITS:
        raise ConfigError(
            f"Memory must be a number of bytes or a size like '8GiB' or '512MB'. Got {value!r}."
        )
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


# Resources of a whole distributed job rather than of one worker.
JOB_RESOURCES = frozenset({"workers"})


def dask_resources(resources: Mapping[str, Any] | None) -> dict[str, float]:
    """Translate a step's resources into Dask worker resources (CPU, GPU, MEMORY, ...).

    ``workers`` (the size of a distributed training job) is not a worker resource and is
    left out; see `job_resources`.
    """
    out: dict[str, float] = {}
    for key, value in (resources or {}).items():
        if key in JOB_RESOURCES:
            continue
        name = RESOURCE_NAMES.get(key, key)
        out[name] = parse_memory(value) if key == "memory" else float(value)
    return out


def job_resources(resources: Mapping[str, Any] | None) -> tuple[int | None, dict[str, float]]:
    """(workers, per-worker Dask resources) of a step.

    With ``workers`` the other resources describe each worker of the distributed job
    (``{"workers": 2, "gpus": 1}``: two workers with one GPU each), and the step's own
    task, which only coordinates, asks for none. Without it, workers is None and the
    resources are the step task's own.

    Raises:
        ConfigError: ``workers`` is not an int >= 1.
    """
    per_worker = dask_resources(resources)
    count = (resources or {}).get("workers")
    if count is None:
        return None, per_worker
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(
            f"The 'workers' resource of a step must be an int >= 1. Got {count!r} instead."
        )
    return count, per_worker


def _is_local_host(host: str) -> bool:
    if host in ("localhost", socket.gethostname()):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.is_loopback:
        return True
    try:
        local = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        local = set()
    return host in local


def cluster_info(client: Any) -> dict[str, Any]:
    """The scheduler's description with every worker, fetched now.

    ``Client.scheduler_info()`` returns the client's cached copy, which its periodic
    refresh replaces with one listing no workers; asking the scheduler directly cannot
    race with that.
    """
    return dict(client.sync(client.scheduler.identity, n_workers=-1))


def remote_worker_hosts(scheduler_info: Mapping[str, Any]) -> list[str]:
    """Hosts of the cluster's workers that are not this machine."""
    hosts = set()
    for address in scheduler_info.get("workers", {}):
        host = str(address).split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
        if not _is_local_host(host):
            hosts.add(host)
    return sorted(hosts)


def check_artifact_store(artifact_url: str, scheduler_info: Mapping[str, Any]) -> None:
    """Refuse a local-folder artifact store when workers run on other hosts.

    Raises:
        ConfigError: naming the hosts and what to configure instead.
    """
    if "://" in artifact_url and not artifact_url.startswith("file://"):
        return
    remote = remote_worker_hosts(scheduler_info)
    if remote:
        raise ConfigError(
            f"The artifact store {artifact_url} is a local folder, but Dask workers run on "
            f"other hosts ({', '.join(remote)}) that cannot read it. Set artifact_url in "
            "conveyor.toml or CONVEYOR_ARTIFACT_URL to shared storage every worker can reach, "
            "e.g. s3://bucket/conveyor or gs://bucket/conveyor (see docs/guides/cluster.md)."
        )


def workers_offering(needed: Mapping[str, float], scheduler_info: Mapping[str, Any]) -> list[str]:
    """Addresses of the workers offering at least `needed`, in a stable order."""
    return sorted(
        address
        for address, worker in scheduler_info.get("workers", {}).items()
        if all(
            (worker.get("resources", {}) or {}).get(name, 0) >= amount
            for name, amount in needed.items()
        )
    )


def check_resources(
    needed: Mapping[str, float], scheduler_info: Mapping[str, Any], *, count: int = 1
) -> None:
    """Raise when fewer than `count` workers offer what a step asks for (Dask would wait
    forever).

    Raises:
        ConfigError: naming what was asked, what the cluster has and how to fix it.
    """
    if not needed and count <= 1:
        return
    offering = workers_offering(needed, scheduler_info)
    if len(offering) >= count:
        return
    asked = ", ".join(f"{k}={v:g}" for k, v in needed.items())
    if count <= 1:
        raise ConfigError(
            f"No Dask worker offers the resources a step asks for ({asked}). Start workers "
            f'with `dask worker SCHEDULER --resources "{asked.replace(", ", ",")}"`, or lower '
            "the step's resources."
        )
    total = len(scheduler_info.get("workers", {}))
    each = f" with {asked} each" if asked else ""
    hint = (
        f'start workers with `dask worker SCHEDULER --resources "{asked.replace(", ", ",")}"`'
        if asked
        else "start more workers"
    )
    gpu = " This cluster has no GPU workers." if needed.get("GPU") and not offering else ""
    raise ConfigError(
        f"The step asks for {count} Dask workers{each}, but only {len(offering)} of the "
        f"cluster's {total} workers offer that.{gpu} Lower the step's 'workers' resource, or "
        f"{hint}."
    )


def _sys_path_plugin(paths: list[str]) -> Any:
    from distributed.diagnostics.plugin import WorkerPlugin

    class ProjectPath(WorkerPlugin):  # type: ignore[misc]
        """Puts the project folder on workers' sys.path so steps' modules import there."""

        name = "conveyor-project-path"

        def __init__(self, paths: list[str]) -> None:
            self.paths = paths

        def setup(self, worker: Any) -> None:
            for path in reversed(self.paths):
                if path not in sys.path:
                    sys.path.insert(0, path)

    return ProjectPath(paths)


class DaskExecutor:
    """Runs steps as Dask tasks.

    Args:
        address: ``host:port`` of an existing scheduler; None starts a LocalCluster.
        n_workers: LocalCluster workers (one thread each); ignored with `address`.
        client: An existing ``distributed.Client`` to use instead.
        resources: Resources each LocalCluster worker offers (e.g. ``{"CPU": 1}``).
    """

    in_process = False

    def __init__(
        self,
        address: str | None = None,
        *,
        n_workers: int | None = None,
        client: Any = None,
        resources: Mapping[str, float] | None = None,
        processes: bool = True,
    ) -> None:
        distributed = require("distributed", "dask")
        self._cluster = None
        if client is not None:
            self.client = client
            self.name = f"dask://{client.scheduler.address}"
        elif address is not None:
            try:
                self.client = distributed.Client(address, timeout="10s")
            except OSError as exc:
                raise ConfigError(
                    f"Cannot reach the Dask scheduler at {address}: {exc}. Start it with "
                    "`dask scheduler` or check the address."
                ) from exc
            self.name = f"dask://{address}"
        else:
            import os

            count = n_workers or os.cpu_count() or 1
            if not isinstance(count, int) or count < 1:
                raise ConfigError(
                    f"The 'n_workers' parameter of DaskExecutor must be an int >= 1. Got "
                    f"{count!r} instead."
                )
            self._cluster = distributed.LocalCluster(
                n_workers=count,
                threads_per_worker=1,
                processes=processes,
                resources=dict(resources or {"CPU": 1}),
                dashboard_address=":0",
                silence_logs=40,
            )
            self.client = distributed.Client(self._cluster)
            self.name = f"dask-local:{count}"
        self.max_workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        self._project_paths: set[str] = set()

    def prepare(self, artifact_url: str, root: Path) -> None:
        """Check the artifact store suits the cluster and make project modules importable."""
        check_artifact_store(artifact_url, self.client.scheduler_info())
        path = str(root.resolve())
        if path not in self._project_paths:
            self._project_paths.add(path)
            self.client.register_plugin(_sys_path_plugin(sorted(self._project_paths)))

    def submit(
        self, fn: Callable[..., T], /, *args: Any, resources: Mapping[str, Any] | None = None
    ) -> cf.Future[T]:
        import cloudpickle

        if self.client.status != "running":
            raise ConveyorError(
                f"The connection to the Dask scheduler ({self.name}) is closed. Re-run when "
                "it is back: completed steps are cached."
            )
        try:
            cloudpickle.dumps((fn, args))
        except Exception as exc:
            raise ConfigError(
                f"Cannot ship {getattr(args[0], 'node', fn)!r} to Dask workers: {exc}. Make "
                "its inputs and the globals it uses picklable."
            ) from exc
        count, needed = job_resources(resources)
        check_resources(needed, cluster_info(self.client), count=count or 1)
        if count is not None:
            needed = {}  # the job's workers need them; the coordinating task does not
        task = self.client.submit(fn, *args, pure=False, resources=needed or None)
        future: cf.Future[T] = cf.Future()
        name = self.name

        def done(task: Any) -> None:
            try:
                future.set_result(task.result())
            except BaseException as exc:
                if task.status == "cancelled" or type(exc).__name__ in (
                    "CancelledError",
                    "CommClosedError",
                ):
                    future.set_exception(
                        ConveyorError(
                            f"Lost the Dask scheduler ({name}) while the step ran: "
                            f"{type(exc).__name__} {exc}. Re-run when it is back: completed "
                            "steps are cached."
                        )
                    )
                else:
                    future.set_exception(exc)

        task.add_done_callback(done)
        return future

    def shutdown(self, wait: bool = True) -> None:
        try:
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()


def make(spec: str, max_workers: int | None = None) -> Executor:
    """An executor from ``dask-local[:N]`` or ``dask://host:port``.

    Raises:
        ConfigError: a malformed spec or an unreachable scheduler.
    """
    if spec.startswith("dask://"):
        address = spec[len("dask://") :]
        if not address:
            raise ConfigError("dask:// needs the scheduler address, e.g. dask://127.0.0.1:8786.")
        return DaskExecutor(f"tcp://{address}")
    kind, _, count = spec.partition(":")
    if kind != "dask-local":
        raise ConfigError(
            f"Unknown Dask executor {spec!r}. Use dask-local[:N] or dask://HOST:PORT."
        )
    try:
        workers = int(count) if count else max_workers
    except ValueError:
        raise ConfigError(f"Executor spec {spec!r}: the part after ':' must be an int.") from None
    return DaskExecutor(n_workers=workers)


if TYPE_CHECKING:
    _dask: Executor = DaskExecutor()
