"""A real `conveyor ui` server process on a store filled by real runs, and Debian's
chromium driven by Playwright (never `playwright install`).

The store: the closed-loop demo (served model, monitor reports with performance, a drift
trigger and the retraining run it started) plus `tests.ui_store.fill` (pipelines with
curves, cache hits and a failure, a dataset with a validation report, a tuning study).
"""

from __future__ import annotations

import os
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

from tests.conftest import IN_CI, make_settings
from tests.ui_store import Filled, fill

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CONVEYOR = str(Path(sys.executable).with_name("conveyor"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    """Poll `url` until it answers 200, the process dies, or the deadline passes."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as client:
        while True:
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise RuntimeError(
                    f"{url}: the server exited ({process.returncode}): {output_of(process)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout} s")
            time.sleep(0.1)


_LOGS: dict[int, Path] = {}


def start(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start a conveyor command in `cwd`; its output goes to a log file there."""
    env = {**os.environ, "CONVEYOR_DB_URL": "", "CONVEYOR_ARTIFACT_URL": ""}
    log = cwd / f"{Path(args[0]).name}-{args[1]}-{len(_LOGS)}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    _LOGS[process.pid] = log
    return process


def output_of(process: subprocess.Popen[bytes]) -> str:
    log = _LOGS.get(process.pid)
    return log.read_text(errors="replace")[-3000:] if log else ""


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass
class Site:
    """The running UI: its base URL, the project root and what the store holds."""

    url: str
    root: Path
    filled: Filled
    settings: Any


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("ui-site")
    demo = subprocess.run(
        [CONVEYOR, "demo", "--path", str(root)],
        cwd=root,
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "CONVEYOR_DB_URL": "", "CONVEYOR_ARTIFACT_URL": ""},
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    settings = make_settings(root)
    filled = fill(settings, root, models=False)
    port = free_port()
    server = start([CONVEYOR, "ui", "--port", str(port)], root)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/runs", server)
        yield Site(url=url, root=root, filled=filled, settings=settings)
    finally:
        stop(server)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing; install it with: apt-get install -y chromium"
        if IN_CI:
            pytest.fail(message + " (.ci/run does this).")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that records script errors and every response of 400 or more (the
    page's own loads and each resource it pulls in)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.errors = []
    tab.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    tab.on("console", lambda msg: tab.errors.append(msg.text) if msg.type == "error" else None)
    tab.on(
        "response",
        lambda r: tab.errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    try:
        yield tab
    finally:
        context.close()
