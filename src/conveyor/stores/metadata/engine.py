"""Engines for SQLite and PostgreSQL, and schema migrations through Alembic."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from conveyor._internal.urls import redact_text, redact_url
from conveyor.exceptions import ConfigError, SchemaVersionError, StoreError
from conveyor.stores.metadata.revision import HEAD_REVISION

MIGRATIONS = Path(__file__).with_name("migrations")

__all__ = [
    "HEAD_REVISION",
    "MIGRATIONS",
    "READ_ONLY",
    "current_revision",
    "driver_message",
    "ensure_schema",
    "make_engine",
    "upgrade",
]

_ENGINES: dict[str, sa.Engine] = {}
_LOCK = threading.Lock()


# Execution option of read-only connections (the UI and the API): on SQLite they begin a
# deferred transaction, a consistent snapshot that takes no write lock, so pages neither
# wait behind a running pipeline's writes nor hold them up.
READ_ONLY = "conveyor_read_only"


def _sqlite_setup(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level; we emit BEGIN IMMEDIATE ourselves so that a
        # writer takes the write lock up front instead of failing on lock upgrade.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> sa.Engine:
    """A shared engine for `url` (one per process), configured for concurrent writers.

    Raises:
        ConfigError: the URL is not a SQLAlchemy URL or its driver is missing.
    """
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is not None:
            return engine
        try:
            parsed = sa.engine.make_url(url)
        except (sa.exc.ArgumentError, ValueError):  # ValueError: a non-numeric port
            raise ConfigError(
                f"{redact_url(url)!r} is not a database URL. Use sqlite:///path/to/conveyor.db "
                "or postgresql+psycopg://user@host/db."
            ) from None
        if parsed.host and "@" in parsed.host:
            raise ConfigError(
                f"{redact_url(url)!r} has more than one '@' before its host. Write an '@' "
                "inside the user name or password as %40."
            )
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 60}
        elif parsed.get_backend_name() == "postgresql":
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            kwargs["pool_pre_ping"] = True
        try:
            engine = sa.create_engine(parsed, **kwargs)
        except sa.exc.NoSuchModuleError:
            raise ConfigError(
                f"{redact_url(url)!r} names the database "
                f"{parsed.drivername!r}, which SQLAlchemy does not know. Use "
                "sqlite:///path/to/conveyor.db or postgresql+psycopg://user@host/db."
            ) from None
        except ImportError as exc:
            raise ConfigError(
                f"The database driver for {parsed.drivername!r} is not installed. For "
                "PostgreSQL: pip install 'conveyor[postgres]'."
            ) from exc
        except (sa.exc.ArgumentError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"Cannot use the database URL {redact_url(url)!r}: {redact_text(str(exc))}"
            ) from None
        if engine.dialect.name == "sqlite":
            _sqlite_setup(engine)
        _ENGINES[url] = engine
        return engine


def driver_message(exc: BaseException) -> str:
    """A database error as one password-free line (no SQLAlchemy "Background" link)."""
    text = str(exc).split("\n(Background on this error at:")[0]
    return " ".join(redact_text(text).split())


def current_revision(engine: sa.Engine) -> str | None:
    try:
        with engine.connect() as connection:
            row = connection.exec_driver_sql("SELECT version_num FROM alembic_version").first()
    except sa.exc.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise StoreError(f"Cannot reach the metadata store: {driver_message(exc)}") from exc
    except sa.exc.ProgrammingError:
        return None
    return None if row is None else str(row[0])


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Apply the shipped Alembic migrations up to `revision`."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def ensure_schema(engine: sa.Engine, *, auto_upgrade: bool) -> None:
    """Create a fresh schema, or check that an existing one is current.

    Raises:
        SchemaVersionError: the database is behind and `auto_upgrade` is false, or it is
            ahead of this conveyor.
    """
    revision = current_revision(engine)
    if revision == HEAD_REVISION:
        return
    if revision is None or auto_upgrade:
        upgrade(engine)
        return
    raise SchemaVersionError(
        f"The metadata database is at schema revision {revision}; this conveyor needs "
        f"{HEAD_REVISION}. Run `conveyor db upgrade` (back up the database first)."
    )
