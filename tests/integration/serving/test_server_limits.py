"""Idle and slow clients cannot wedge a real `conveyor serve` process (issue 12, item 5)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.integration.serving.test_server_process import (
    CONVEYOR,
    _row,
    free_port,
    stop,
    wait_ready,
)


def _serve(project: Any, *flags: str) -> Iterator[tuple[str, int]]:
    root, env, _ = project
    port = free_port()
    proc = subprocess.Popen(
        [CONVEYOR, "serve", "cancer@production", "--port", str(port), *flags],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        yield url, port
    finally:
        stop(proc)


@pytest.fixture
def capped(project: Any) -> Iterator[tuple[str, int]]:
    # Timeouts far longer than the test: only the connection cap can make room.
    yield from _serve(
        project, "--max-connections", "50", "--header-timeout", "120", "--keep-alive", "120"
    )


@pytest.fixture
def impatient(project: Any) -> Iterator[tuple[str, int]]:
    yield from _serve(project, "--header-timeout", "1", "--body-timeout", "1")


def _read_until_closed(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes the connection (or the deadline)."""
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the server kept the connection open; it sent {data!r}")


@pytest.mark.slow
def test_more_idle_sockets_than_the_limit_do_not_stop_a_normal_request(
    capped: tuple[str, int], cancer: pd.DataFrame
) -> None:
    url, port = capped
    idle: list[socket.socket] = []
    try:
        for i in range(300):  # six times the cap; half of them send half a request
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if i % 2:
                sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")
            idle.append(sock)
        started = time.monotonic()
        response = httpx.post(f"{url}/predict", json={"records": [_row(cancer, 0)]}, timeout=30)
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < 10
        # The oldest idle connections were closed to make room.
        closed = 0
        for sock in idle[:50]:
            sock.settimeout(5)
            try:
                closed += sock.recv(1) == b""
            except ConnectionResetError:
                closed += 1
        assert closed == 50
    finally:
        for sock in idle:
            sock.close()


@pytest.mark.slow
def test_slow_headers_and_slow_bodies_get_408_and_idle_sockets_are_closed(
    impatient: tuple[str, int], cancer: pd.DataFrame
) -> None:
    url, port = impatient
    silent = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow_headers = socket.create_connection(("127.0.0.1", port), timeout=10)
    slow_body = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        slow_headers.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le")
        slow_body.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + b'{"records": ['
        )
        deadline = time.monotonic() + 15
        assert _read_until_closed(silent, deadline) == b""
        assert _read_until_closed(slow_headers, deadline).startswith(b"HTTP/1.1 408 ")
        assert _read_until_closed(slow_body, deadline).startswith(b"HTTP/1.1 408 ")
        # The server still answers.
        ok = httpx.post(f"{url}/predict", json={"records": [_row(cancer, 1)]}, timeout=30)
        assert ok.status_code == 200
    finally:
        for sock in (silent, slow_headers, slow_body):
            sock.close()
