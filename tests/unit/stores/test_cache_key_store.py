"""Key components in the metadata store: written once per key, on every backend."""

from __future__ import annotations

import time

from conveyor._internal.ids import new_id
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata.store import COMPLETED, RUNNING


def test_components_are_written_once_per_key_with_the_step_runs(db_url: str) -> None:
    store = open_metadata_store(db_url, auto_upgrade=True)
    run_id = new_id()
    store.create_run(
        {"id": run_id, "pipeline": "p", "status": RUNNING, "created_at": time.time(), "params": {}}
    )
    first = [{"kind": "step", "name": "s", "hash": "a" * 16}]
    rows = [
        {
            "id": new_id(),
            "run_id": run_id,
            "name": f"s_{n}",
            "step": "s",
            "status": RUNNING,
            "started_at": time.time(),
            "cache_key": "k" * 64,
        }
        for n in range(2)
    ]
    store.start_step_runs(rows[:1], cache_keys={"k" * 64: first})
    # The same key again (a concurrent run, a retry): kept as first written, no error.
    store.start_step_runs(
        rows[1:], cache_keys={"k" * 64: [{"kind": "other", "name": "x", "hash": "b"}]}
    )
    assert store.cache_key_components(["k" * 64, "missing"]) == {"k" * 64: first}
    assert store.cache_key_components([]) == {}


def test_previous_step_run_is_the_latest_executed_run_of_the_step_with_another_key(
    db_url: str,
) -> None:
    store = open_metadata_store(db_url, auto_upgrade=True)
    now = time.time()
    made = []
    for n, (key, hit) in enumerate([("a", False), ("b", False), ("b", True), ("c", False)]):
        run_id = new_id()
        store.create_run(
            {
                "id": run_id,
                "pipeline": "p",
                "status": COMPLETED,
                "created_at": now + n,
                "params": {},
            }
        )
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
