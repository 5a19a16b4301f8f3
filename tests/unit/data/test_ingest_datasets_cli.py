"""Connectors' bad-input errors, dataset versions, migrations, and the CLI exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.config import Settings
from conveyor.data import ingest
from conveyor.data.datasets import get_dataset, list_datasets, register_dataset
from conveyor.exceptions import DataError, NotFoundError
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store

runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"age": rng.integers(18, 90, 2000), "country": rng.choice(["DE", "FR"], 2000)}
    )
    good = tmp_path / "customers.parquet"
    frame.to_parquet(good)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(good.read_bytes()[:-100])
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1" + b"\x00" * 64 + b"PAR1")
    out = {
        "good": good,
        "truncated": truncated,
        "corrupt": corrupt,
        "empty": tmp_path / "empty.csv",
        "semicolon": tmp_path / "semicolon.csv",
        "ragged": tmp_path / "ragged.csv",
        "dupes": tmp_path / "dupes.csv",
        "typechange": tmp_path / "typechange.csv",
    }
    out["empty"].write_text("")
    out["semicolon"].write_text("a;b;c\n1;2;3\n4;5;6\n")
    out["ragged"].write_text("a,b,c\n1,2,3\n4,5\n")
    out["dupes"].write_text("a,b,a\n1,2,3\n")
    # The type is inferred from the first block; a string far down breaks it.
    out["typechange"].write_text("a,b\n" + "1,2\n" * 400_000 + "oops,3\n")
    return out


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("truncated", "corrupt or truncated"),
        ("corrupt", "corrupt or truncated"),
        ("empty", "is empty"),
        ("semicolon", "delimiter=';'"),
        ("ragged", "ragged rows"),
        ("dupes", "duplicate column names: 'a'"),
        ("typechange", "changed type between chunks"),
    ],
)
def test_bad_input_gives_clear_error_and_exit_code(
    files: dict[str, Path], key: str, message: str, settings: Settings
) -> None:
    with pytest.raises(DataError, match=message):
        list(ingest.iter_batches(files[key], batch_rows=10_000))
    result = runner.invoke(app, ["data", "profile", str(files[key])])
    assert result.exit_code == 1
    assert message.split("'", maxsplit=1)[0].lower() in result.output.lower().replace("\n", " ")
    # No dataset version is written from a failed read.
    store = open_metadata_store(settings.db_url)
    with pytest.raises(DataError):
        register_dataset(
            "customers",
            files[key],
            metadata_store=store,
            artifact_store=open_artifact_store(settings.artifact_url),
        )
    assert list_datasets(metadata_store=store) == []


def test_dataset_versions_are_content_addressed(files: dict[str, Path], settings: Settings) -> None:
    store = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    first = register_dataset(
        "customers", files["good"], metadata_store=store, artifact_store=artifacts
    )
    again = register_dataset(
        "customers", files["good"], metadata_store=store, artifact_store=artifacts
    )
    assert first.ref == "customers@1" and again.id == first.id
    changed = pd.read_parquet(files["good"]).iloc[:100]
    second = register_dataset("customers", changed, metadata_store=store, artifact_store=artifacts)
    assert second.version == 2 and second.row_count == 100
    assert get_dataset("customers", metadata_store=store).version == 2
    assert get_dataset("customers@1", metadata_store=store).row_count == 2000
    assert first.load(artifacts).equals(pd.read_parquet(files["good"]))
    assert first.load_profile(artifacts)["age"].count == 2000
    with pytest.raises(NotFoundError, match="Did you mean 'customers'"):
        get_dataset("customer", metadata_store=store)


def test_migrations_match_declared_tables(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from conveyor.stores.metadata.tables import metadata

    store = open_metadata_store(f"sqlite:///{tmp_path / 'm.db'}")
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert diff == []
    names = set(sa.inspect(store.engine).get_table_names())
    assert {"datasets", "dataset_versions"} <= names


def test_cli_end_to_end(files: dict[str, Path], tmp_path: Path, settings: Settings) -> None:
    opts = ["--db-url", settings.db_url, "--artifact-url", settings.artifact_url]
    schema = tmp_path / "schema.yaml"
    result = runner.invoke(
        app, [*opts, "data", "infer-schema", str(files["good"]), "-o", str(schema)]
    )
    assert result.exit_code == 0, result.output
    profile = runner.invoke(app, [*opts, "data", "profile", str(files["good"]), "--json"])
    assert json.loads(profile.stdout)["row_count"] == 2000
    assert (
        runner.invoke(
            app, [*opts, "datasets", "register", "customers", str(files["good"])]
        ).exit_code
        == 0
    )
    again = runner.invoke(app, [*opts, "datasets", "register", "customers", str(files["good"])])
    assert "no new version" in again.output
    assert "customers@1" in runner.invoke(app, [*opts, "datasets", "list"]).output
    shown = runner.invoke(app, [*opts, "datasets", "show", "customers@1", "--json"])
    assert json.loads(shown.stdout)["profile"]["row_count"] == 2000
    ok = runner.invoke(
        app,
        [
            *opts,
            "data",
            "validate",
            str(files["good"]),
            "--schema",
            str(schema),
            "--reference",
            "customers",
        ],
    )
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.parquet"
    pd.read_parquet(files["good"]).assign(age=200).to_parquet(bad)
    html = tmp_path / "report.html"
    failed = runner.invoke(
        app, [*opts, "data", "validate", str(bad), "--schema", str(schema), "--html", str(html)]
    )
    assert failed.exit_code == 1 and "out_of_range" in failed.output
    assert "<svg" in html.read_text()
    schema.write_text(schema.read_text().replace("kind: numeric", "knd: numeric"))
    typo = runner.invoke(app, [*opts, "data", "validate", str(bad), "--schema", str(schema)])
    assert typo.exit_code == 1 and "Did you mean 'kind'" in typo.output.replace("\n", " ")
