"""A pipeline run on an existing store, SQLite or PostgreSQL, never imports SQLAlchemy."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata.engine import make_engine
from conveyor.stores.metadata.store import MetadataStore


def test_running_a_pipeline_on_an_existing_store_does_not_import_sqlalchemy(
    tmp_path: Path, db_url: str
) -> None:
    open_metadata_store(db_url, auto_upgrade=True)  # an existing store, at head
    script = textwrap.dedent(
        f"""
        import json, sys
        from conveyor import pipeline, step
        from pathlib import Path
        from conveyor.config import load_settings
        from conveyor.execution.orchestrator import run_pipeline

        @step
        def inc(x: int) -> int:
            return x + 1

        @pipeline
        def chain(start: int = 0):
            return inc(inc(start))

        settings = load_settings(
            root=Path({str(tmp_path)!r}), env={{}}, db_url={db_url!r},
            artifact_url={str(tmp_path / "artifacts")!r},
        )
        first = run_pipeline(chain, {{"start": 1}}, settings=settings)
        again = run_pipeline(chain, {{"start": 1}}, settings=settings)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "alembic"))
        print(json.dumps({{
            "output": again.output(),
            "first": [s["cache_hit"] for s in first.steps()],
            "again": [s["cache_hit"] for s in again.steps()],
            "loaded": loaded,
        }}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"output": 3, "first": [False, False], "again": [True, True], "loaded": []}
    # What that process wrote reads back the same through SQLAlchemy.
    sql = MetadataStore(db_url, engine=make_engine(db_url))
    runs = sql.list_runs()
    assert len(runs) == 2 and {r["status"] for r in runs} == {"completed"}
    assert [s["cache_hit"] for s in sql.step_runs(runs[0]["id"])] == [True, True]
