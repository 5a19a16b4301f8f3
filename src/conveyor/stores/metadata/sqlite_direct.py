"""The run path of the metadata store on SQLite, through the standard library's sqlite3.

A `conveyor run` writes a run, its step runs, artifacts, lineage, metrics, logs and events,
and reads cache hits: a few hundred small statements. Through SQLAlchemy each costs tens
of microseconds of statement building and the import alone a third of a second, so on a
SQLite file these methods speak to the database directly with bound parameters. The
methods themselves are shared with PostgreSQL (`direct_base`); this module supplies the
connection, its transactions and the encoding of values.

The schema has one source of truth, `tables` and its Alembic migrations: this module
writes no DDL and learns each table's columns and their declared types (``JSON``,
``BOOLEAN``) from the database itself (``PRAGMA table_info``), so values are encoded
exactly as SQLAlchemy encodes them (JSON text by `json.dumps`, an explicit None as
``null``; booleans as 0/1) and decoded back the same way. A test compares the rows both
paths write.

Connections are configured like the SQLAlchemy engine's (WAL, ``synchronous=NORMAL``,
``BEGIN IMMEDIATE`` for writers, a 60 s busy timeout), one per database and process,
serialized by a lock, so methods are thread safe. Every method that writes does so in one
transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from conveyor.exceptions import StoreError
from conveyor.stores.metadata.direct_base import Cursor, DirectStore, Row, Table

_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")
_OPEN: dict[str, SqliteDirect] = {}
_OPEN_LOCK = threading.Lock()


def sqlite_file(url: str) -> str | None:
    """The database file of a plain ``sqlite:///path`` URL, else None.

    In-memory databases, URI filenames, query options and percent-escapes are left to
    SQLAlchemy, which understands all of them.
    """
    for prefix in _PREFIXES:
        if url.startswith(prefix):
            path = url[len(prefix) :]
            break
    else:
        return None
    if not path or path == ":memory:" or path.startswith("file:") or any(c in path for c in "?%"):
        return None
    return path


def absolute_url(url: str) -> str:
    """`url` with a relative SQLite file path made absolute (against the current folder).

    A relative path names another database in another folder; resolving it once, where
    the store is opened, keeps the process's shared connections from mixing them up.
    """
    path = sqlite_file(url)
    if path is None or os.path.isabs(path):
        return url
    prefix = url[: len(url) - len(path)]
    return prefix + os.path.abspath(path)


def open_direct(url: str) -> SqliteDirect | None:
    """The process's direct connection to the SQLite file of `url`, or None for any
    other URL."""
    path = sqlite_file(url)
    if path is None:
        return None
    with _OPEN_LOCK:
        direct = _OPEN.get(url)
        if direct is None:
            direct = _OPEN[url] = SqliteDirect(path)
    direct.reopen_if_replaced()
    return direct


class _SqliteTable(Table):
    """JSON as text by `json.dumps` (an explicit None as ``null``), booleans as 0/1."""

    def encode(self, name: str, value: Any) -> Any:
        return json.dumps(value) if name in self.json else value

    def decode(self, row: Row) -> dict[str, Any]:
        out = dict(row)
        for name in self.json:
            value = out.get(name)
            if value is not None:
                out[name] = json.loads(value)
        for name in self.booleans:
            value = out.get(name)
            if value is not None:
                out[name] = bool(value)
        return out


class _SqliteCursor:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._c = connection

    # sqlite3.Row reads by column name like a mapping (and by position).
    def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return cast("list[Row]", self._c.execute(sql, args).fetchall())

    def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        return cast("Row | None", self._c.execute(sql, args).fetchone())

    def run(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._c.execute(sql, args)

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._c.executemany(sql, rows)


if TYPE_CHECKING:  # the cursor satisfies the interface the shared methods use
    _: type[Cursor] = _SqliteCursor


class SqliteDirect(DirectStore):
    """The run-path methods of `MetadataStore` on one SQLite file (see the module doc)."""

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._file: tuple[int, int] | None = None

    def _identity(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_dev, stat.st_ino

    def reopen_if_replaced(self) -> None:
        """Reconnect when the file was deleted or replaced since the connection opened
        (a connection would go on writing to the old, unlinked file)."""
        with self._lock:
            if self._connection is not None and self._identity() != self._file:
                self._connection.close()
                self._connection = None

    # ------------------------------------------------------------------ plumbing
    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        folder = Path(self.path).parent
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
        # Autocommit at the driver level: transactions are begun explicitly below.
        connection = sqlite3.connect(
            self.path, timeout=60, isolation_level=None, check_same_thread=False
        )
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=60000")
        connection.execute("PRAGMA foreign_keys=ON")
        # A connection inherited through fork() is never used: it belongs to the parent.
        self._connection, self._pid, self._tables = connection, os.getpid(), {}
        self._file = self._identity()
        return connection

    def _load_table(self, name: str) -> Table:
        rows = self._connect().execute(f"PRAGMA table_info({name})").fetchall()
        if not rows:
            raise StoreError(f"The metadata database {self.path} has no table {name!r}.")
        return _SqliteTable(name, [(r[1], str(r[2]).lower()) for r in rows])

    @contextmanager
    def _query(self) -> Iterator[Cursor]:
        """Statements outside an explicit transaction (each is its own snapshot)."""
        with self._lock:
            yield _SqliteCursor(self._connect())

    @contextmanager
    def _write(self) -> Iterator[Cursor]:
        """One write transaction, holding the write lock from its start."""
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteCursor(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[Cursor]:
        """One read transaction: a consistent snapshot that takes no write lock."""
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN")
            try:
                yield _SqliteCursor(connection)
            finally:
                connection.execute("COMMIT")

    # ------------------------------------------------------------------ schema
    def schema_revision(self) -> str | None:
        """The Alembic revision of the database, None when it has no schema yet."""
        with self._lock:
            try:
                row = self._connect().execute("SELECT version_num FROM alembic_version").fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return None
                raise StoreError(f"Cannot read the metadata store {self.path}: {exc}") from exc
        return None if row is None else str(row[0])
