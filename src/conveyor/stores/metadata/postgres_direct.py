"""The run path of the metadata store on PostgreSQL, through psycopg without SQLAlchemy.

Every `conveyor task run` is a new process, and importing SQLAlchemy with its psycopg
dialect costs about half a second before the step can start. The methods a task and a
pipeline run use (`direct_base`) therefore speak to PostgreSQL with psycopg directly,
with bound parameters; everything else goes through SQLAlchemy as before.

Only the URLs users write for PostgreSQL take this path: ``postgresql://`` or
``postgresql+psycopg://``, ``user[:password]@host[:port]/database`` and nothing more. A
query string (``?sslmode=...``), another driver, several hosts or anything else unusual
is left to SQLAlchemy, which understands all of them. The password never appears in an
error message.

The schema has one source of truth, `tables` and its Alembic migrations: this module
writes no DDL and learns each table's column types from ``information_schema``, so
values are passed as SQLAlchemy passes them (JSON wrapped for psycopg to serialize with
`json.dumps`, an explicit None as JSON ``null``; booleans as bool). psycopg returns JSON
parsed and booleans as bool, as SQLAlchemy does. A test compares the rows both paths
write, row for row.

One connection per database and process (autocommit; each method that writes runs in
one explicit transaction), serialized by a lock, so methods are thread safe. A process
started by fork() opens its own connection. A connection the server closed is replaced
before a transaction begins, and before a read is retried, like SQLAlchemy's
``pool_pre_ping``.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from conveyor._internal.urls import redact_text, redact_url
from conveyor.exceptions import StoreError
from conveyor.stores.metadata.direct_base import Cursor, DirectStore, Row, Table

if TYPE_CHECKING:
    import psycopg

_SCHEMES = ("postgresql", "postgresql+psycopg")
_OPEN: dict[str, PostgresDirect] = {}
_OPEN_LOCK = threading.Lock()

# The tables of the run path, whose columns are read in one query on first use.
_RUN_TABLES = (
    "runs",
    "run_tags",
    "step_runs",
    "artifacts",
    "lineage_edges",
    "metrics",
    "step_logs",
    "events",
    "models",
    "model_aliases",
)


def postgres_conninfo(url: str) -> str | None:
    """The libpq URI of a plain PostgreSQL URL that psycopg can serve directly, else None.

    Plain means ``postgresql[+psycopg]://[user[:password]@]host[:port]/database``: no
    query or fragment, one host, a numeric port, percent-escapes only in the user name
    and password (where SQLAlchemy and libpq both decode them).
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _SCHEMES or any(c in rest for c in "?#"):
        return None
    try:
        parts = urlsplit("postgresql://" + rest)
        port = parts.port  # ValueError when it is not a number
    except ValueError:
        return None
    netloc = parts.netloc
    if netloc.count("@") > 1:
        return None  # make_engine explains how to write an '@' in a password
    host = netloc.rpartition("@")[2]
    database = parts.path[1:]
    if not host or not database or "/" in database or "%" in host + database:
        return None
    if "," in host or (port is None and host.endswith(":")):
        return None
    return "postgresql://" + rest


def open_postgres(url: str) -> PostgresDirect | None:
    """The process's direct connection to the PostgreSQL database of `url`, or None when
    `url` is not a plain PostgreSQL URL or psycopg is not installed (SQLAlchemy then
    serves it, or says what is missing)."""
    direct = _OPEN.get(url)
    if direct is not None:
        return direct
    conninfo = postgres_conninfo(url)
    if conninfo is None or importlib.util.find_spec("psycopg") is None:
        return None
    with _OPEN_LOCK:
        direct = _OPEN.get(url)
        if direct is None:
            if not _OPEN:
                atexit.register(_close_all)
            direct = _OPEN[url] = PostgresDirect(conninfo)
    return direct


def _close_all() -> None:
    """Close this process's idle connections at exit (the server then ends their
    sessions); one a thread is still using is left to the interpreter."""
    for direct in list(_OPEN.values()):
        if direct._lock.acquire(blocking=False):
            try:
                direct.close()
            finally:
                direct._lock.release()


@lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s`` (the SQL has no literal
    ``?`` or ``%``: values, LIKE patterns included, are always bound)."""
    return sql.replace("?", "%s")


def _message(exc: BaseException) -> str:
    """A driver error as one password-free line."""
    return " ".join(redact_text(str(exc)).split())


class _PostgresTable(Table):
    """JSON wrapped for psycopg (which dumps it with `json.dumps`), booleans as bool."""

    def __init__(self, name: str, columns: Sequence[tuple[str, str]]) -> None:
        super().__init__(name, [(c, "json" if kind == "jsonb" else kind) for c, kind in columns])
        self.jsonb = frozenset(c for c, kind in columns if kind == "jsonb")

    def encode(self, name: str, value: Any) -> Any:
        if name in self.json:
            from psycopg.types.json import Json, Jsonb

            return Jsonb(value) if name in self.jsonb else Json(value)
        if name in self.booleans and value is not None:
            if value not in (True, False):  # also 0 and 1, as SQLAlchemy accepts
                raise TypeError(f"Not a boolean value for {self.name}.{name}: {value!r}")
            return bool(value)
        return value


class _PostgresCursor:
    """Statements on one connection; connection failures become `StoreError`.

    With `retry` (single reads outside a transaction), a first statement that finds the
    connection closed by the server runs again on a new one.
    """

    def __init__(self, store: PostgresDirect, connection: psycopg.Connection[Any], retry: bool):
        self._store = store
        self._c = connection
        self._retry = retry

    def _execute(self, sql: str, args: Sequence[Any]) -> psycopg.Cursor[Any]:
        import psycopg

        try:
            found = self._c.execute(_placeholders(sql), args)
        except psycopg.OperationalError as exc:
            if not (self._retry and self._c.broken):
                raise StoreError(f"The metadata store failed: {_message(exc)}") from None
        else:
            self._retry = False
            return found
        self._retry = False
        self._c = self._store._connect()
        try:
            return self._c.execute(_placeholders(sql), args)
        except psycopg.OperationalError as exc:
            raise StoreError(f"The metadata store failed: {_message(exc)}") from None

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        rows: list[Row] = self._execute(sql, args).fetchall()
        return rows

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self._execute(sql, args).fetchone()
        return row

    def run(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._execute(sql, args)

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        import psycopg

        try:
            with self._c.cursor() as cursor:
                cursor.executemany(_placeholders(sql), rows)
        except psycopg.OperationalError as exc:
            raise StoreError(f"The metadata store failed: {_message(exc)}") from None


if TYPE_CHECKING:  # the cursor satisfies the interface the shared methods use
    _: type[Cursor] = _PostgresCursor


class PostgresDirect(DirectStore):
    """The run-path methods of `MetadataStore` on one PostgreSQL database (see the
    module doc).

    Args:
        conninfo: The libpq URI of the database (from `postgres_conninfo`).
    """

    dialect = "postgresql"

    def __init__(self, conninfo: str) -> None:
        super().__init__()
        self._conninfo = conninfo
        self.url = redact_url(conninfo)
        self._connection: psycopg.Connection[Any] | None = None
        self._pid = 0

    def close(self) -> None:
        """Close the connection (the next method opens a new one)."""
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None and self._pid == os.getpid():
                connection.close()

    # ------------------------------------------------------------------ plumbing
    def _connect(self) -> psycopg.Connection[Any]:
        connection = self._connection
        if (
            connection is not None
            and self._pid == os.getpid()
            and not connection.closed
            and not connection.broken
        ):
            return connection
        import psycopg
        from psycopg.rows import dict_row

        if connection is not None and self._pid == os.getpid():
            connection.close()
        # A connection inherited through fork() is left alone (psycopg does not close
        # it in the child either): it belongs to the parent.
        self._connection = None
        try:
            connection = psycopg.connect(self._conninfo, autocommit=True, row_factory=dict_row)
        except psycopg.Error as exc:
            raise StoreError(
                f"Cannot reach the metadata store {self.url}: {_message(exc)} Check the "
                "database URL (db_url or CONVEYOR_DB_URL) and the server."
            ) from None
        self._connection, self._pid = connection, os.getpid()
        return connection

    def _load_table(self, name: str) -> Table:
        names = (*_RUN_TABLES, name) if name not in _RUN_TABLES else _RUN_TABLES
        with self._query() as c:
            rows = c.all(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = ANY(?) "
                "ORDER BY table_name, ordinal_position",
                [list(names)],
            )
        columns: dict[str, list[tuple[str, str]]] = {}
        for row in rows:
            columns.setdefault(row["table_name"], []).append(
                (row["column_name"], str(row["data_type"]).lower())
            )
        for table, found in columns.items():
            self._tables.setdefault(table, _PostgresTable(table, found))
        if name not in columns:
            raise StoreError(f"The metadata database {self.url} has no table {name!r}.")
        return self._tables[name]

    @contextmanager
    def _query(self) -> Iterator[Cursor]:
        """Reads outside an explicit transaction (each statement is its own snapshot)."""
        with self._lock:
            yield _PostgresCursor(self, self._connect(), retry=True)

    @contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        import psycopg

        with self._lock:
            cursor = _PostgresCursor(self, self._connect(), retry=True)
            cursor.run("BEGIN")  # a connection found closed is replaced here
            connection = cursor._c
            try:
                yield cursor
            except BaseException:
                if not connection.broken:
                    try:
                        connection.execute("ROLLBACK")
                    except psycopg.OperationalError:
                        pass  # the connection is gone, and the transaction with it
                raise
            try:
                connection.execute("COMMIT")
            except psycopg.OperationalError as exc:
                raise StoreError(f"The metadata store failed to commit: {_message(exc)}") from None

    def _write(self) -> AbstractContextManager[Cursor]:
        """One write transaction."""
        return self._transaction()

    def _read(self) -> AbstractContextManager[Cursor]:
        """One read transaction (several statements on one connection)."""
        return self._transaction()

    # ------------------------------------------------------------------ schema
    def schema_revision(self) -> str | None:
        """The Alembic revision of the database, None when it has no schema yet.

        Raises:
            StoreError: the server cannot be reached.
        """
        import psycopg

        try:
            with self._query() as c:
                row = c.one("SELECT version_num FROM alembic_version")
        except psycopg.ProgrammingError:  # no alembic_version table (yet)
            return None
        return None if row is None else str(row["version_num"])
