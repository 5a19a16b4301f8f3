"""SQL connector on the running PostgreSQL, Delta Lake on a real local Delta table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from conveyor.config import Settings
from conveyor.core.context import StepContext, enter_context, exit_context
from conveyor.data import ingest
from conveyor.data.datasets import register_dataset
from conveyor.data.profile import Profile
from conveyor.exceptions import DataError
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store


@pytest.mark.postgres
def test_read_sql_on_postgres(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE customers (id int, country text, income float)")
        c.exec_driver_sql(
            "INSERT INTO customers SELECT g, CASE WHEN mod(g, 2) = 0 THEN 'DE' ELSE 'FR' END, "
            "g * 1.5 FROM generate_series(1, 5000) g"
        )
    engine.dispose()
    frame = ingest.read_sql(
        postgres_url, "SELECT * FROM customers WHERE id > :low", params={"low": 1000}
    )
    assert len(frame) == 4000 and list(frame.columns) == ["id", "country", "income"]
    batches = list(
        ingest.iter_batches(postgres_url, query="SELECT * FROM customers", batch_rows=1000)
    )
    assert [b.num_rows for b in batches] == [1000] * 5
    profile = Profile.from_batches(batches)
    assert profile["country"].frequencies() == {"DE": 2500, "FR": 2500}
    with pytest.raises(DataError, match="SQL query failed"):
        ingest.read_sql(postgres_url, "SELECT * FROM no_such_table")


def test_delta_version_pin_recorded(tmp_path: Path, settings: Settings) -> None:
    from deltalake import write_deltalake

    path = tmp_path / "events"
    write_deltalake(str(path), pd.DataFrame({"x": [1, 2, 3]}))
    write_deltalake(str(path), pd.DataFrame({"x": [4, 5]}), mode="append")
    assert len(ingest.read_delta(path)) == 5
    context = StepContext(run_id="r", step_run_id="s", step_name="load")
    token = enter_context(context)
    try:
        old = ingest.read_delta(path, version=0)
    finally:
        exit_context(token)
    assert old["x"].tolist() == [1, 2, 3]
    assert context.params["data_sources"][0]["version"] == 0
    store = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    pinned = register_dataset(
        "events", path, metadata_store=store, artifact_store=artifacts, delta_version=0
    )
    assert (pinned.external_version, pinned.row_count, pinned.content_hash) == ("0", 3, None)
    latest = register_dataset("events", path, metadata_store=store, artifact_store=artifacts)
    assert (latest.version, latest.external_version, latest.row_count) == (2, "1", 5)
    again = register_dataset(
        "events", path, metadata_store=store, artifact_store=artifacts, delta_version=0
    )
    assert again.version == 1
    assert pinned.load(artifacts)["x"].tolist() == [1, 2, 3]
    with pytest.raises(DataError, match="version"):
        ingest.read_delta(path, version=9)
