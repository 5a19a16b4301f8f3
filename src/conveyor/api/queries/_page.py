"""Keyset pagination shared by every list query: opaque cursors, never OFFSET.

A list is ordered by a tuple of sort values ending in a unique id. A cursor encodes the
sort tuple of one row; ``before=cursor`` returns the rows that come after it in the list's
order (the next page), ``after=cursor`` the rows that come before it (the previous page),
both in the list's order. Each page fetches ``limit + 1`` rows to know whether another
page exists, so it costs one query whatever its position.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import sqlalchemy as sa

from conveyor.exceptions import ConveyorError
from conveyor.stores.metadata.engine import READ_ONLY

if TYPE_CHECKING:
    from conveyor.stores.metadata import MetadataStore

T = TypeVar("T")

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50


class QueryError(ConveyorError, ValueError):
    """A query parameter is not usable (bad cursor, limit, sort key or filter)."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a keyset-paginated list.

    Attributes:
        items: The rows of this page, in the list's order.
        next_cursor: Pass as ``before`` for the next page; None on the last page.
        prev_cursor: Pass as ``after`` for the previous page; None on the first page.
        limit: The page size asked for.
    """

    items: tuple[T, ...]
    next_cursor: str | None
    prev_cursor: str | None
    limit: int


def reading(db: MetadataStore) -> sa.Connection:
    """A connection for reads only: one snapshot, no write lock (see engine.READ_ONLY)."""
    return db.engine.connect().execution_options(**{READ_ONLY: True})


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque, URL-safe cursor for a row's sort tuple."""
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, width: int) -> list[Any]:
    """The sort tuple inside `cursor`.

    Raises:
        QueryError: the cursor was not made by `encode_cursor` for a list of this shape.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise QueryError(
            f"The cursor {cursor[:40]!r} is not valid. Use the next_cursor or prev_cursor "
            "of a previous page."
        ) from exc
    if not isinstance(values, list) or len(values) != width:
        raise QueryError(
            f"The cursor {cursor[:40]!r} does not belong to this list. Use the next_cursor "
            "or prev_cursor of a page of the same list and sort order."
        )
    return values


def check_limit(limit: int, maximum: int = MAX_LIMIT) -> int:
    """`limit` when it is between 1 and `maximum`.

    Raises:
        QueryError: out of range.
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= maximum:
        raise QueryError(f"The 'limit' parameter must be an int in 1..{maximum}. Got {limit!r}.")
    return limit


def _after_condition(
    columns: Sequence[sa.ColumnElement[Any]],
    descending: Sequence[bool],
    values: Sequence[Any],
    *,
    forward: bool,
) -> sa.ColumnElement[bool]:
    """Rows strictly after (forward) or before the tuple `values` in the given order."""
    if len(set(descending)) == 1:
        # One direction for every column: a row-value comparison, which both SQLite and
        # PostgreSQL turn into one index range (the OR form below defeats PostgreSQL's).
        left, right = sa.tuple_(*columns), sa.tuple_(*[sa.literal(v) for v in values])
        return left < right if descending[0] == forward else left > right
    clauses: list[sa.ColumnElement[bool]] = []
    for i, (column, desc) in enumerate(zip(columns, descending, strict=True)):
        later = (column < values[i]) if desc == forward else (column > values[i])
        equal_prefix = [columns[j] == values[j] for j in range(i)]
        clauses.append(sa.and_(*equal_prefix, later) if equal_prefix else later)
    return sa.or_(*clauses)


def paginate(
    connection: sa.Connection,
    query: sa.Select[Any],
    *,
    order: Sequence[tuple[sa.ColumnElement[Any], bool]],
    key: Callable[[Any], Sequence[Any]],
    before: str | None,
    after: str | None,
    limit: int,
) -> tuple[list[Any], str | None, str | None]:
    """Run `query` for one page; returns (rows, next_cursor, prev_cursor).

    Args:
        connection: Where to run it.
        query: The filtered select, without ORDER BY or LIMIT.
        order: The sort columns with their direction (True = descending); the last one
            must be unique so the order is total. Sort values must not be NULL (wrap a
            nullable column in COALESCE).
        key: The sort tuple of a result row (what a cursor encodes).
        before: Cursor of the last row of the previous page (next page).
        after: Cursor of the first row of the following page (previous page).
        limit: Page size.

    Raises:
        QueryError: both cursors given, a bad cursor or limit.
    """
    check_limit(limit)
    if before is not None and after is not None:
        raise QueryError("Pass either 'before' or 'after', not both.")
    columns = [c for c, _ in order]
    descending = [d for _, d in order]
    backwards = after is not None
    cursor = before if before is not None else after
    if cursor is not None:
        values = decode_cursor(cursor, len(columns))
        query = query.where(_after_condition(columns, descending, values, forward=not backwards))
    if backwards:
        query = query.order_by(*[c.asc() if d else c.desc() for c, d in order])
    else:
        query = query.order_by(*[c.desc() if d else c.asc() for c, d in order])
    rows = list(connection.execute(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
        has_next, has_prev = True, more
    else:
        has_next, has_prev = more, cursor is not None
    next_cursor = encode_cursor(key(rows[-1])) if rows and has_next else None
    prev_cursor = encode_cursor(key(rows[0])) if rows and has_prev else None
    return rows, next_cursor, prev_cursor


@dataclass(frozen=True)
class Segment:
    """One part of a list made of consecutive parts (e.g. runs with a metric, sorted by
    it, then runs without it). Each part is keyset-paginated on its own order."""

    query: sa.Select[Any]
    order: Sequence[tuple[sa.ColumnElement[Any], bool]]
    key: Callable[[Any], Sequence[Any]]


def _segment_rows(
    connection: sa.Connection,
    segment: Segment,
    values: Sequence[Any] | None,
    *,
    backwards: bool,
    limit: int,
) -> list[Any]:
    columns = [c for c, _ in segment.order]
    descending = [d for _, d in segment.order]
    query = segment.query
    if values is not None:
        query = query.where(_after_condition(columns, descending, values, forward=not backwards))
    # Descending columns run descending going forward and ascending going back.
    query = query.order_by(*[c.desc() if d != backwards else c.asc() for c, d in segment.order])
    return list(connection.execute(query.limit(limit)))


def paginate_segments(
    connection: sa.Connection,
    segments: Sequence[Segment],
    *,
    before: str | None,
    after: str | None,
    limit: int,
) -> tuple[list[Any], str | None, str | None]:
    """Like `paginate` over the concatenation of `segments`, one query per segment
    touched (usually one). Cursors hold the segment index and that segment's sort tuple.

    Raises:
        QueryError: both cursors given, a bad cursor or limit.
    """
    check_limit(limit)
    if before is not None and after is not None:
        raise QueryError("Pass either 'before' or 'after', not both.")
    backwards = after is not None
    cursor = before if before is not None else after
    index, values = (len(segments) - 1 if backwards else 0), None
    if cursor is not None:
        padded = cursor + "=" * (-len(cursor) % 4)
        try:
            raw = json.loads(base64.urlsafe_b64decode(padded.encode()))
        except (ValueError, UnicodeDecodeError) as exc:
            raise QueryError(
                f"The cursor {cursor[:40]!r} is not valid. Use the next_cursor or prev_cursor "
                "of a previous page."
            ) from exc
        if (
            not isinstance(raw, list)
            or not raw
            or not isinstance(raw[0], int)
            or not 0 <= raw[0] < len(segments)
            or len(raw) != 1 + len(segments[raw[0]].order)
        ):
            raise QueryError(
                f"The cursor {cursor[:40]!r} does not belong to this list. Use the next_cursor "
                "or prev_cursor of a page of the same list and sort order."
            )
        index, values = raw[0], raw[1:]
    found: list[tuple[int, Any]] = []
    step = -1 if backwards else 1
    while 0 <= index < len(segments) and len(found) <= limit:
        rows = _segment_rows(
            connection, segments[index], values, backwards=backwards, limit=limit + 1 - len(found)
        )
        found.extend((index, row) for row in rows)
        index, values = index + step, None
    more = len(found) > limit
    found = found[:limit]
    if backwards:
        found.reverse()
        has_next, has_prev = True, more
    else:
        has_next, has_prev = more, cursor is not None

    def encode(item: tuple[int, Any]) -> str:
        return encode_cursor([item[0], *segments[item[0]].key(item[1])])

    next_cursor = encode(found[-1]) if found and has_next else None
    prev_cursor = encode(found[0]) if found and has_prev else None
    return [row for _, row in found], next_cursor, prev_cursor
