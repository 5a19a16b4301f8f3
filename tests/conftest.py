"""Shared fixtures: isolated stores per test, and real services (Postgres, Redis).

With CI=true a test that needs a missing service fails; locally it is skipped with the
reason.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.config import Settings, load_settings

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get(
    "CONVEYOR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def require_service(name: str, host: str, port: int) -> None:
    """Fail (CI) or skip (locally) when nothing listens on host:port."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        message = f"{name} is not reachable on {host}:{port} ({exc})"
        if IN_CI:
            pytest.fail(message + "; CI must provide it.")
        pytest.skip(message)


def make_settings(root: Path, db_url: str | None = None, **overrides: object) -> Settings:
    return load_settings(
        root=root,
        env={},
        db_url=db_url or f"sqlite:///{root / '.conveyor' / 'conveyor.db'}",
        artifact_url=str(root / ".conveyor" / "artifacts"),
        **overrides,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a fresh SQLite store and artifact folder under tmp_path."""
    return make_settings(tmp_path)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return PG_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """URL of a new, empty PostgreSQL database, dropped after the test."""
    import sqlalchemy as sa

    name = f"conveyor_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        from conveyor.stores.metadata.engine import _ENGINES

        engine = _ENGINES.pop(url, None)
        if engine is not None:
            engine.dispose()
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every metadata-store backend: the conformance suite runs against each."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'conveyor.db'}"
    return str(request.getfixturevalue("postgres_url"))
