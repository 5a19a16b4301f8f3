"""Keyset pagination over a real SQLite table: every row once, both directions, ties."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conveyor.api.queries import QueryError
from conveyor.api.queries._page import decode_cursor, encode_cursor, paginate

rows_table = sa.Table(
    "rows",
    sa.MetaData(),
    sa.Column("id", sa.String(10), primary_key=True),
    sa.Column("score", sa.Float, nullable=False),
)


@pytest.fixture
def connection():
    engine = sa.create_engine("sqlite://")
    rows_table.metadata.create_all(engine)
    # Scores repeat, so the id must break ties for the order to be total.
    data = [{"id": f"r{i:03d}", "score": float(i % 7)} for i in range(53)]
    with engine.begin() as c:
        c.execute(rows_table.insert(), data)
    with engine.connect() as c:
        yield c
    engine.dispose()


def _page(connection, *, before=None, after=None, limit=10, descending=True):
    order = [(rows_table.c.score, descending), (rows_table.c.id, descending)]
    rows, nxt, prev = paginate(
        connection,
        sa.select(rows_table),
        order=order,
        key=lambda r: (r.score, r.id),
        before=before,
        after=after,
        limit=limit,
    )
    return [r.id for r in rows], nxt, prev


@pytest.mark.parametrize("descending", [True, False])
def test_forward_pages_cover_every_row_once_in_order(connection, descending) -> None:
    expected = [
        r.id
        for r in connection.execute(
            sa.select(rows_table).order_by(
                *(
                    (c.desc() if descending else c.asc())
                    for c in (rows_table.c.score, rows_table.c.id)
                )
            )
        )
    ]
    seen: list[str] = []
    ids, nxt, prev = _page(connection, limit=10, descending=descending)
    assert prev is None
    pages = [ids]
    while nxt is not None:
        ids, nxt, prev = _page(connection, before=nxt, limit=10, descending=descending)
        assert prev is not None
        pages.append(ids)
    for page in pages:
        seen.extend(page)
    assert seen == expected
    assert [len(p) for p in pages] == [10, 10, 10, 10, 10, 3]


def test_backward_from_a_later_page_returns_the_previous_page(connection) -> None:
    first, nxt, _ = _page(connection, limit=10)
    second, nxt2, prev2 = _page(connection, before=nxt, limit=10)
    _third, _, prev3 = _page(connection, before=nxt2, limit=10)
    assert _page(connection, after=prev3, limit=10)[0] == second
    back, back_next, back_prev = _page(connection, after=prev2, limit=10)
    assert back == first
    assert back_prev is None  # the first page has no previous page
    assert back_next is not None


def test_bad_cursors_and_limits_are_refused_with_a_clear_message(connection) -> None:
    with pytest.raises(QueryError, match="not valid"):
        _page(connection, before="%%%not-base64")
    with pytest.raises(QueryError, match="does not belong to this list"):
        _page(connection, before=encode_cursor(["only-one-value"]))
    with pytest.raises(QueryError, match="either 'before' or 'after'"):
        _page(connection, before=encode_cursor([1.0, "r001"]), after=encode_cursor([1.0, "r001"]))
    with pytest.raises(QueryError, match=r"'limit' parameter must be an int in 1\.\.1000"):
        _page(connection, limit=0)


def test_cursor_round_trips_sort_values() -> None:
    assert decode_cursor(encode_cursor([0.5, "01ABC"]), 2) == [0.5, "01ABC"]
