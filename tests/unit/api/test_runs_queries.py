"""The runs list on every metadata-store backend: filters, keyset pages both ways, and
the leaderboard sort across the runs that lack the metric."""

from __future__ import annotations

import pytest

from conveyor._internal.ids import new_id
from conveyor.api.queries import QueryError
from conveyor.api.queries import runs as rq
from conveyor.stores.metadata import MetadataStore, open_metadata_store

RUNS = 23


@pytest.fixture
def store(db_url: str) -> tuple[MetadataStore, list[str]]:
    store = open_metadata_store(db_url, auto_upgrade=True)
    ids = []
    for i in range(RUNS):
        run_id = new_id()
        ids.append(run_id)
        store.create_run(
            {
                "id": run_id,
                "pipeline": "train" if i % 2 else "etl",
                "status": "failed" if i % 5 == 0 else "completed",
                "created_at": 1000.0 + i // 2,  # pairs share a time: the id breaks ties
                "started_at": 1000.0,
                "ended_at": 1000.0 + i,
                "params": {"i": i},
                "trigger": {"kind": "drift"} if i % 7 == 0 else None,
            },
            tags={"team": "a" if i < 10 else "b"},
        )
        if i % 3:  # two of every three runs log the metric, the last value counts
            step_id = new_id()
            store.record_step(
                step_run_id=step_id,
                run_id=run_id,
                insert=True,
                fields={"name": "fit", "step": "fit", "status": "completed", "attempts": 1},
                metrics=[
                    {
                        "run_id": run_id,
                        "step_run_id": step_id,
                        "key": "acc",
                        "value": -1.0,
                        "step": 0,
                        "timestamp": 1.0,
                    },
                    {
                        "run_id": run_id,
                        "step_run_id": step_id,
                        "key": "acc",
                        "value": float(i % 4),
                        "step": 1,
                        "timestamp": 2.0,
                    },
                ],
            )
    return store, ids


def _walk(store: MetadataStore, **kwargs: object) -> list[list[rq.RunSummary]]:
    pages = []
    cursor = None
    while True:
        page = rq.list_runs(store, limit=4, before=cursor, **kwargs)  # type: ignore[arg-type]
        pages.append(list(page.items))
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def test_filters_and_pages(store) -> None:
    db, ids = store
    everything = [r.id for page in _walk(db) for r in page]
    assert sorted(everything) == sorted(ids)
    keys = [(r.created_at, r.id) for page in _walk(db) for r in page]
    assert keys == sorted(keys, reverse=True)
    train_failed = {r.id for page in _walk(db, pipeline="train", status="failed") for r in page}
    assert train_failed == {ids[i] for i in range(RUNS) if i % 2 and i % 5 == 0}
    assert {r.id for r in rq.list_runs(db, trigger="drift").items} == {
        ids[i] for i in range(RUNS) if i % 7 == 0
    }
    assert len(rq.list_runs(db, trigger="none", limit=100).items) == RUNS - 4
    assert {r.id for r in rq.list_runs(db, tags={"team": "a"}, limit=100).items} == set(ids[:10])
    first = rq.list_runs(db, limit=5)
    second = rq.list_runs(db, limit=5, before=first.next_cursor)
    assert [r.id for r in rq.list_runs(db, limit=5, after=second.prev_cursor).items] == [
        r.id for r in first.items
    ]


@pytest.mark.parametrize("descending", [True, False])
def test_metric_sort_puts_runs_without_the_metric_last(store, descending: bool) -> None:
    db, ids = store
    sort = ("-" if descending else "") + "metric:acc"
    pages = _walk(db, sort=sort)
    rows = [r for page in pages for r in page]
    assert sorted(r.id for r in rows) == sorted(ids)
    scored = [r for r in rows if "acc" in r.metrics]
    assert [r.metrics["acc"] for r in scored] == sorted(
        (float(i % 4) for i in range(RUNS) if i % 3), reverse=descending
    )
    assert rows[: len(scored)] == scored  # every run with the metric comes first
    assert all("acc" not in r.metrics for r in rows[len(scored) :])
    # Walking back from the last page returns every earlier page unchanged, across the
    # seam between the runs with the metric and those without.
    page = rq.list_runs(db, sort=sort, limit=4)
    forward = [page]
    while page.next_cursor is not None:
        page = rq.list_runs(db, sort=sort, limit=4, before=page.next_cursor)
        forward.append(page)
    for index in range(len(forward) - 1, 0, -1):
        back = rq.list_runs(db, sort=sort, limit=4, after=forward[index].prev_cursor)
        assert [r.id for r in back.items] == [r.id for r in forward[index - 1].items]


def test_unknown_sort_is_a_query_error(store) -> None:
    db, _ = store
    with pytest.raises(QueryError, match="Cannot sort runs by 'params'"):
        rq.list_runs(db, sort="params")


@pytest.mark.parametrize("descending", [True, False])
def test_param_sort_orders_numbers_then_text_then_runs_without_it(
    db_url: str, descending: bool
) -> None:
    db = open_metadata_store(db_url, auto_upgrade=True)
    values: list[object] = [0.5, 3, -2, "b", 10.25, "a", None, 3, True, "c"]
    ids: dict[str, object] = {}
    for i, value in enumerate([*values, "missing", "missing"]):
        run_id = new_id()
        params: dict[str, object] = {"other": i}
        if value != "missing":
            params["lr"] = value
        ids[run_id] = value
        db.create_run(
            {
                "id": run_id,
                "pipeline": "p",
                "status": "completed",
                "created_at": 10.0 + i,
                "params": params,
            }
        )
    sort = ("-" if descending else "") + "param:lr"
    rows = [r for page in _walk(db, sort=sort) for r in page]
    assert sorted(r.id for r in rows) == sorted(ids)
    got = [r.params.get("lr", "missing") for r in rows]
    numbers = sorted(
        (v for v in values if isinstance(v, int | float) and not isinstance(v, bool)),
        reverse=descending,
    )
    assert got[: len(numbers)] == numbers
    texts = got[len(numbers) : len(numbers) + 4]
    assert sorted(t for t in texts if isinstance(t, str)) == ["a", "b", "c"]
    assert [t for t in texts if isinstance(t, str)] == sorted(["a", "b", "c"], reverse=descending)
    assert True in texts
    # Runs without the parameter (or with null) come last, newest first.
    tail = rows[len(numbers) + 4 :]
    assert [r.params.get("lr", "missing") for r in tail] == ["missing", "missing", None]
    # Walking back from the last page gives every earlier page unchanged.
    page = rq.list_runs(db, sort=sort, limit=4)
    forward = [page]
    while page.next_cursor is not None:
        page = rq.list_runs(db, sort=sort, limit=4, before=page.next_cursor)
        forward.append(page)
    for index in range(len(forward) - 1, 0, -1):
        back = rq.list_runs(db, sort=sort, limit=4, after=forward[index].prev_cursor)
        assert [r.id for r in back.items] == [r.id for r in forward[index - 1].items]


def test_param_sort_combines_with_filters_and_rejects_bad_names(store) -> None:
    db, _ = store
    rows = [r for page in _walk(db, sort="-param:i", pipeline="train") for r in page]
    assert [r.params["i"] for r in rows] == sorted((i for i in range(RUNS) if i % 2), reverse=True)
    with pytest.raises(QueryError, match="parameter name"):
        rq.list_runs(db, sort='param:a"b')
    with pytest.raises(QueryError, match="parameter name"):
        rq.list_runs(db, sort="param:")
