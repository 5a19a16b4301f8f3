"""Key components on the step run record, read back by key, on every backend."""

from __future__ import annotations

import time

from conveyor._internal.ids import new_id
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata.store import COMPLETED, RUNNING


def _run(store, created: float) -> str:  # type: ignore[no-untyped-def]
    run_id = new_id()
    store.create_run(
        {"id": run_id, "pipeline": "p", "status": COMPLETED, "created_at": created, "params": {}}
    )
    return run_id


def test_components_are_stored_on_the_step_run_and_found_by_key(db_url: str) -> None:
    store = open_metadata_store(db_url, auto_upgrade=True)
    run_id = _run(store, time.time())
    components = [{"kind": "step", "name": "s", "hash": "a" * 16, "detail": {"code": "b" * 16}}]
    key = "k" * 64
    executed = {
        "id": new_id(),
        "run_id": run_id,
        "name": "s",
        "step": "s",
        "status": RUNNING,
        "started_at": time.time(),
        "cache_key": key,
        "cache_components": components,
    }
    hit = {
        "id": new_id(),
        "run_id": run_id,
        "name": "s_2",
        "step": "s",
        "status": COMPLETED,
        "started_at": time.time(),
        "cache_key": key,
        "cache_hit": True,
    }
    store.start_step_runs([executed])
    store.start_step_runs([hit])
    assert store.get_step_run(executed["id"])["cache_components"] == components
    # A cache hit shares the components of the key it matched.
    assert store.cache_key_components([key, "missing"]) == {key: components}
    assert store.cache_key_components([]) == {}


def test_previous_step_run_is_the_latest_executed_run_of_the_step_with_another_key(
    db_url: str,
) -> None:
    store = open_metadata_store(db_url, auto_upgrade=True)
    now = time.time()
    made = []
    for n, (key, hit) in enumerate([("a", False), ("b", False), ("b", True), ("c", False)]):
        run_id = _run(store, now + n)
        row = {
            "id": new_id(),
            "run_id": run_id,
            "name": "s",
            "step": "s",
            "status": COMPLETED,
            "started_at": now + n,
            "cache_key": key * 64,
            "cache_hit": hit,
        }
        store.start_step_runs([row])
        made.append(row)
    previous = store.previous_step_run(made[3])
    assert previous is not None and previous["id"] == made[1]["id"]
    assert store.previous_step_run(made[0]) is None
