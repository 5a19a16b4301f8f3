"""A LocalCluster of 2 single-threaded worker processes (with nannies) for the module."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_module(name: str, extra: str) -> None:
    """Fail in CI (it installs every extra the tests need), skip locally."""
    try:
        __import__(name)
    except ImportError:
        message = f"{name} is not installed (pip install 'conveyor[{extra}]')"
        if IN_CI:
            pytest.fail(message + "; CI must provide it (make setup installs it).")
        pytest.skip(message)


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    require_module("distributed", "dask")
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=40,
    )
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
