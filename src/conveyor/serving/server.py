"""Run the model server under uvicorn (one process, or N worker processes)."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from conveyor._internal.lazy import require
from conveyor.exceptions import ConfigError
from conveyor.serving.app import ServeOptions, ServingApp, create_app
from conveyor.serving.auth import DEFAULT_HOST, check_bind, read_token
from conveyor.serving.batching import BatchPolicy
from conveyor.serving.limits import ServerLimits
from conveyor.serving.predlog import LogPolicy
from conveyor.serving.release import ReleasePolicy

if TYPE_CHECKING:
    from conveyor.serving.servable import ModelSource

_SPEC_ENV = "CONVEYOR_SERVE_SPEC"


def _options_to_json(options: ServeOptions) -> dict[str, Any]:
    out = dataclasses.asdict(options)
    out.pop("token")  # workers read the token file themselves; never in the environment
    return out


def _options_from_json(data: dict[str, Any], token: str | None) -> ServeOptions:
    log = data.get("prediction_log")
    return ServeOptions(
        unseen=data["unseen"],
        batching=BatchPolicy(**data["batching"]),
        max_body_bytes=data["max_body_bytes"],
        reload_interval=data["reload_interval"],
        token=token,
        prediction_log=LogPolicy(**log) if log is not None else None,
        load_wait=data["load_wait"],
        freeze_heap=data["freeze_heap"],
        limits=ServerLimits(**data["limits"]),
        release=ReleasePolicy(**data["release"]) if data.get("release") else None,
    )


def build_app(
    source: ModelSource,
    options: ServeOptions,
    artifact_url: str | None,
) -> ServingApp:
    store = None
    if artifact_url is not None and options.prediction_log is not None:
        from conveyor.stores.artifacts import open_artifact_store

        store = open_artifact_store(artifact_url)
    challenger = None
    if options.release is not None:
        from conveyor.serving.servable import RegistrySource

        trusted: frozenset[str] = getattr(source, "trusted", frozenset())
        challenger = RegistrySource(options.release.challenger, trusted=trusted)
    return create_app(source, options, log_store=store, challenger=challenger)


def worker_app() -> ServingApp:
    """App factory for uvicorn worker processes (reads the spec the parent left)."""
    from conveyor.serving.servable import RegistrySource

    gc.disable()  # as in `serve`: resumed after the first model load
    spec = json.loads(os.environ[_SPEC_ENV])
    token = read_token(spec["token_file"]) if spec["token_file"] else None
    options = _options_from_json(spec["options"], token)
    source = RegistrySource(spec["ref"], trusted=spec.get("trusted", ()))
    return build_app(source, options, spec["artifact_url"])


def serve(
    source: ModelSource | str,
    *,
    host: str = DEFAULT_HOST,
    port: int = 8080,
    workers: int = 1,
    token_file: str | None = None,
    options: ServeOptions | None = None,
    artifact_url: str | None = None,
    log_level: str = "warning",
    trusted: Collection[str] = (),
    announce: Callable[[], None] | None = None,
) -> None:
    """Serve a model until interrupted.

    Args:
        source: A registry reference (``churn@production``) or a ModelSource.
        host: Address to bind; anything but loopback needs `token_file`.
        port: TCP port.
        workers: Server processes (each loads the model and batches on its own).
        token_file: File holding the bearer token clients must send.
        options: Validation, batching, limits and logging behaviour.
        artifact_url: Artifact store receiving prediction logs (None: no logging).
        log_level: uvicorn's log level.
        trusted: Type names the model's bytes may use beyond the allow-list and the
            version's recorded list (explicit opt-in; see docs/security.md).
        announce: Called once the server listens (the CLI prints its banner there), so
            nothing is announced when the server refuses or fails to start.

    Raises:
        ConfigError: a non-loopback host without a token, an unreadable token file, or
            workers > 1 with a ModelSource object instead of a reference.
    """
    uvicorn = require("uvicorn", "serve")
    token = read_token(token_file) if token_file else None
    check_bind(host, token)
    if workers < 1:
        raise ConfigError(f"The 'workers' parameter of serve must be an int >= 1. Got {workers}.")
    # The server owns this process (and each worker its own): freezing the heap is safe.
    options = dataclasses.replace(options or ServeOptions(), token=token, freeze_heap=True)
    # Start-up allocates millions of long-lived objects (imports, the model); the full
    # collections they trigger find no garbage. The app resumes the collector once the
    # model is loaded and frozen.
    gc.disable()
    from conveyor.serving.protocol import LimitedHttpProtocol

    _room_for_connections(options.limits.max_connections)
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "lifespan": "on",
        "server_header": False,
        "timeout_graceful_shutdown": 10,
        "http": LimitedHttpProtocol,
        "timeout_keep_alive": options.limits.keep_alive,
    }
    if workers == 1:
        if isinstance(source, str):
            from conveyor.serving.servable import RegistrySource

            source = RegistrySource(source, trusted=trusted)
        app = build_app(source, options, artifact_url)
        config = uvicorn.Config(app, **common)
        config.conveyor_limits = options.limits  # read by LimitedHttpProtocol
        _announcing_server(uvicorn, config, announce).run()
        return
    if not isinstance(source, str):
        raise ConfigError(
            "Serving with workers > 1 needs a registry reference (each worker process "
            "loads the model itself), not a model object."
        )
    os.environ[_SPEC_ENV] = json.dumps(
        {
            "ref": source,
            "token_file": os.path.abspath(token_file) if token_file else None,
            "options": _options_to_json(options),
            "artifact_url": artifact_url,
            "trusted": sorted(trusted),
        }
    )
    from uvicorn.supervisors import Multiprocess

    # What uvicorn.run does for workers, with the limits on the config the workers receive.
    config = uvicorn.Config(
        "conveyor.serving.server:worker_app", factory=True, workers=workers, **common
    )
    config.conveyor_limits = options.limits
    sock = config.bind_socket()
    if announce is not None:
        announce()
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[sock]).run()


def _announcing_server(uvicorn: Any, config: Any, announce: Callable[[], None] | None) -> Any:
    """A uvicorn server calling `announce` once it listens (never when it cannot start)."""

    class Server(uvicorn.Server):  # type: ignore[misc,name-defined]
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if announce is not None and self.started and not self.should_exit:
                announce()

    return Server(config)


def _room_for_connections(max_connections: int) -> None:
    """Raise the open-file limit so `max_connections` sockets fit, where the OS allows."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + 256  # the model, the stores, the log
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
