"""A store filled by real pipeline runs, and a real `conveyor ui` process serving it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.config import Settings
from tests.conftest import make_settings
from tests.ui_store import Filled, fill

CONVEYOR = str(Path(sys.executable).parent / "conveyor")
ADMIN_TOKEN = "alice-admin-token-7f3a9c2e5b1d"
VIEWER_TOKEN = "ci-viewer-token-4b8e1f6a2c9d"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Project:
    root: Path
    settings: Settings
    filled: Filled

    def store_args(self) -> list[str]:
        return ["--db-url", self.settings.db_url, "--artifact-url", self.settings.artifact_url]


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("api-project")
    settings = make_settings(root)
    return Project(root, settings, fill(settings, root))


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    token_file: Path


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> float:
    """Seconds until the server answered its health check."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"server exited with {proc.returncode}: {err}")
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"server not ready within {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> bytes:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def start_ui(
    project: Project, *extra: str, env: dict[str, Any] | None = None
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    proc = subprocess.Popen(
        [CONVEYOR, *project.store_args(), "ui", "--port", str(port), *extra],
        cwd=project.root,
        env=env or dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return f"http://127.0.0.1:{port}", proc


@pytest.fixture(scope="session")
def server(project: Project) -> Iterator[Server]:
    """`conveyor ui` on a free port with two tokens: alice (admin) and ci (viewer)."""
    token_file = project.root / "tokens"
    token_file.write_text(f"alice admin {ADMIN_TOKEN}\nci viewer {VIEWER_TOKEN}\n")
    token_file.chmod(0o600)
    url, proc = start_ui(project, "--token-file", str(token_file))
    try:
        wait_ready(url, proc)
        yield Server(url, proc, token_file)
    finally:
        stop(proc)
