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


def _segments():
    from conveyor.api.queries._page import Segment

    scored = sa.select(rows_table).where(rows_table.c.score > 2)
    unscored = sa.select(rows_table).where(rows_table.c.score <= 2)
    return [
        Segment(
            scored,
            [(rows_table.c.score, True), (rows_table.c.id, True)],
            lambda r: (r.score, r.id),
        ),
        Segment(unscored, [(rows_table.c.id, False)], lambda r: (r.id,)),
    ]


def test_segments_read_as_one_list_across_the_seam(connection) -> None:
    from conveyor.api.queries._page import paginate_segments

    first_part = [
        r.id
        for r in connection.execute(
            sa.select(rows_table)
            .where(rows_table.c.score > 2)
            .order_by(rows_table.c.score.desc(), rows_table.c.id.desc())
        )
    ]
    second_part = [
        r.id
        for r in connection.execute(
            sa.select(rows_table).where(rows_table.c.score <= 2).order_by(rows_table.c.id)
        )
    ]
    pages: list[list[str]] = []
    cursors: list[str | None] = []
    nxt: str | None = None
    while True:
        rows, nxt, prev = paginate_segments(
            connection, _segments(), before=nxt, after=None, limit=8
        )
        pages.append([r.id for r in rows])
        cursors.append(prev)
        if nxt is None:
            break
    assert [i for page in pages for i in page] == first_part + second_part
    # A page that straddles the seam is one page, and walking back returns the same pages.
    assert any(set(p) & set(first_part) and set(p) & set(second_part) for p in pages)
    for index in range(len(pages) - 1, 0, -1):
        rows, _, _ = paginate_segments(
            connection, _segments(), before=None, after=cursors[index], limit=8
        )
        assert [r.id for r in rows] == pages[index - 1]


def test_segment_cursor_of_another_list_is_refused(connection) -> None:
    from conveyor.api.queries._page import paginate_segments

    with pytest.raises(QueryError, match="does not belong"):
        paginate_segments(
            connection, _segments(), before=encode_cursor([5, 1.0]), after=None, limit=5
        )
    with pytest.raises(QueryError, match="does not belong"):
        paginate_segments(
            connection, _segments(), before=encode_cursor([1.0, "r001"]), after=None, limit=5
        )
