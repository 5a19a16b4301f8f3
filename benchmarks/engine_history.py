"""Metadata store with history: 10,000 runs / 200,000 step runs (issue 2 target: `runs list`
and lineage queries under 100 ms). Rows are bulk-inserted with the store's own tables; the
queries are the ones `conveyor runs list`, `runs show` and `conveyor lineage` issue. The
whole `conveyor runs list` process (interpreter start included) is printed for reference.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

from _common import best_of, fresh_settings

from conveyor._internal.ids import new_id
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata import tables as t

RUNS, STEPS_PER_RUN = 10_000, 20


def populate(store) -> str:  # type: ignore[no-untyped-def]
    rng = random.Random(0)
    now = time.time() - RUNS
    last_artifact = ""
    for start in range(0, RUNS, 500):
        runs, steps, artifacts, edges = [], [], [], []
        for r in range(start, start + 500):
            run_id = new_id()
            runs.append(
                {
                    "id": run_id,
                    "pipeline": f"p{r % 7}",
                    "status": "completed",
                    "created_at": now + r,
                    "started_at": now + r,
                    "ended_at": now + r + 1,
                    "params": {"seed": r},
                }
            )
            previous = None
            for s in range(STEPS_PER_RUN):
                sid, aid = new_id(), new_id()
                steps.append(
                    {
                        "id": sid,
                        "run_id": run_id,
                        "name": f"s{s}",
                        "step": f"s{s}",
                        "status": "completed",
                        "attempts": 1,
                        "started_at": now + r,
                        "ended_at": now + r,
                        "duration": 0.001,
                        "cache_key": f"{rng.getrandbits(128):032x}",
                        "cache_hit": False,
                    }
                )
                artifacts.append(
                    {
                        "id": aid,
                        "name": "output",
                        "kind": "output",
                        "content_hash": f"{rng.getrandbits(256):064x}",
                        "uri": "x",
                        "type_name": "int",
                        "materializer": "json",
                        "materializer_version": "1",
                        "size": 1,
                        "summary": {},
                        "created_at": now + r,
                        "run_id": run_id,
                        "step_run_id": sid,
                    }
                )
                edges.append(
                    {
                        "run_id": run_id,
                        "step_run_id": sid,
                        "artifact_id": aid,
                        "direction": "out",
                        "name": "output",
                    }
                )
                if previous:
                    edges.append(
                        {
                            "run_id": run_id,
                            "step_run_id": sid,
                            "artifact_id": previous,
                            "direction": "in",
                            "name": "x",
                        }
                    )
                previous = aid
            last_artifact = previous or ""
        with store.engine.begin() as c:
            c.execute(t.runs.insert(), runs)
            c.execute(t.step_runs.insert(), steps)
            c.execute(t.artifacts.insert(), artifacts)
            c.execute(t.edges.insert(), edges)
    return last_artifact


def main() -> None:
    settings = fresh_settings()
    store = open_metadata_store(settings.db_url)
    began = time.perf_counter()
    artifact = populate(store)
    print(
        f"populated {store.count_runs()} runs / {RUNS * STEPS_PER_RUN} step runs in "
        f"{time.perf_counter() - began:.1f} s"
    )
    page = store.list_runs(limit=50)
    list_best, list_median = best_of(20, lambda: store.list_runs(limit=50))
    next_best, _ = best_of(20, lambda: store.list_runs(limit=50, before=page[-1]["id"]))
    filt_best, _ = best_of(20, lambda: store.list_runs(limit=50, pipeline="p3"))
    show_best, _ = best_of(
        20, lambda: (store.get_run(page[10]["id"]), store.step_runs(page[10]["id"]))
    )
    lineage_best, lineage_median = best_of(20, lambda: store.lineage(artifact))
    graph = store.lineage(artifact)
    assert len(graph["step_runs"]) == STEPS_PER_RUN
    print(
        f"runs list (first page of 50): best {list_best * 1000:.1f} ms, "
        f"median {list_median * 1000:.1f} ms (target < 100 ms)"
    )
    print(f"runs list (next page, --before): best {next_best * 1000:.1f} ms")
    print(f"runs list --pipeline p3: best {filt_best * 1000:.1f} ms")
    print(f"runs show (run + 20 step runs): best {show_best * 1000:.1f} ms")
    print(
        f"lineage of a 20-step chain's last artifact: best {lineage_best * 1000:.1f} ms, "
        f"median {lineage_median * 1000:.1f} ms (target < 100 ms)"
    )
    conveyor = str(Path(sys.executable).with_name("conveyor"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_DB_URL"] = settings.db_url
    times = []
    for _ in range(3):
        began = time.perf_counter()
        subprocess.run(
            [conveyor, "runs", "list", "--json", "--limit", "50"],
            check=True,
            stdout=subprocess.DEVNULL,
            env=env,
            cwd=settings.root,
        )
        times.append(time.perf_counter() - began)
    print(f"`conveyor runs list` whole process incl. interpreter start: best {min(times):.3f} s")


if __name__ == "__main__":
    main()
