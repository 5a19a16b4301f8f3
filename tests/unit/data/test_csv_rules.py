"""One CSV reading path with one null rule for every command (issue 18 item 4), Latin-1
text refused with the encoding option named (issue 12 item 10), and `data profile --html`
that is a profile, not a validation verdict (issue 18 item 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.config import Settings
from conveyor.data import ingest
from conveyor.data.datasets import get_dataset
from conveyor.exceptions import DataError
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store

runner = CliRunner(env={"COLUMNS": "200"})

# Empty cells (bare and quoted) in a text and a numeric column, and the NA marker.
CSV = 'plan,age,city\nbasic,31,Berlin\n,40,""\npro,,Paris\nbasic,NA,NA\npro,28,Paris\n'


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    path.write_text(CSV)
    return path


def opts(settings: Settings) -> list[str]:
    return ["--db-url", settings.db_url, "--artifact-url", settings.artifact_url]


def test_every_command_reads_empty_cells_as_null(
    csv_file: Path, settings: Settings, tmp_path: Path
) -> None:
    profile = runner.invoke(app, [*opts(settings), "data", "profile", str(csv_file), "--json"])
    assert profile.exit_code == 0, profile.output
    columns = json.loads(profile.stdout)["columns"]
    nulls = {name: columns[name]["null_count"] for name in ("plan", "age", "city")}
    assert nulls == {"plan": 1, "age": 2, "city": 2}
    assert "" not in dict(columns["plan"]["top_k"]) and "" not in dict(columns["city"]["top_k"])

    schema = tmp_path / "schema.yaml"
    inferred = runner.invoke(
        app, [*opts(settings), "data", "infer-schema", str(csv_file), "-o", str(schema)]
    )
    assert inferred.exit_code == 0, inferred.output
    spec = yaml.safe_load(schema.read_text())["columns"]
    assert spec["plan"]["domain"] == ["basic", "pro"]
    assert spec["city"]["domain"] == ["Berlin", "Paris"]

    registered = runner.invoke(
        app, [*opts(settings), "datasets", "register", "customers", str(csv_file)]
    )
    assert registered.exit_code == 0, registered.output
    version = get_dataset("customers", metadata_store=open_metadata_store(settings.db_url))
    table = version.load_table(open_artifact_store(settings.artifact_url))
    assert table.column("plan").null_count == 1 and table.column("city").null_count == 2
    stored = version.load_profile(open_artifact_store(settings.artifact_url))
    assert {c.name: c.null_count for c in stored} == nulls


def test_predict_reads_csv_with_the_same_rules(csv_file: Path) -> None:
    from conveyor.serving.batch import _read_chunks

    chunks, _ = _read_chunks(str(csv_file), ["plan", "age", "city"], 100)
    scored = pa.Table.from_batches(list(chunks))
    read = ingest.read_csv(csv_file, as_="arrow")
    for name in ("plan", "age", "city"):
        assert scored.column(name).is_null().to_pylist() == read.column(name).is_null().to_pylist()


@pytest.fixture
def latin1(tmp_path: Path) -> Path:
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,city\nJosé,Zürich\nAnaïs,Besançon\n".encode("latin-1"))
    return path


def test_a_latin1_column_is_refused_with_the_encoding_option_named(
    latin1: Path, settings: Settings
) -> None:
    with pytest.raises(DataError, match=r"column 'name'.*not valid UTF-8.*encoding='latin-1'"):
        ingest.read_csv(latin1)
    for command in (["data", "profile"], ["datasets", "register", "people"]):
        done = runner.invoke(app, [*opts(settings), *command, str(latin1)])
        assert done.exit_code != 0
        assert "--encoding latin-1" in done.output and "Traceback" not in done.output
    assert not get_dataset_exists(settings, "people")  # nothing was written


def get_dataset_exists(settings: Settings, name: str) -> bool:
    from conveyor.data.datasets import find_dataset

    return find_dataset(name, metadata_store=open_metadata_store(settings.db_url)) is not None


def test_the_encoding_option_decodes_latin1_text(latin1: Path, settings: Settings) -> None:
    table = ingest.read_csv(latin1, encoding="latin-1", as_="arrow")
    assert table.schema.field("name").type == pa.string()
    assert table.column("city").to_pylist() == ["Zürich", "Besançon"]
    done = runner.invoke(
        app,
        [*opts(settings), "datasets", "register", "people", str(latin1), "--encoding", "latin-1"],
    )
    assert done.exit_code == 0, done.output
    stored = get_dataset("people", metadata_store=open_metadata_store(settings.db_url))
    assert stored.columns["name"] == "string"
    with pytest.raises(DataError, match="Unknown text encoding 'latin-42'"):
        ingest.read_csv(latin1, encoding="latin-42")


def test_latin1_bytes_after_the_first_block_are_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    path.write_bytes(b"name\n" + b"plain\n" * 300_000 + "José\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not valid UTF-8.*encoding='latin-1'"):
        ingest.read_csv(path)


def test_profile_html_is_a_profile_page(csv_file: Path, settings: Settings, tmp_path: Path) -> None:
    page = tmp_path / "profile.html"
    done = runner.invoke(
        app, [*opts(settings), "data", "profile", str(csv_file), "--html", str(page)]
    )
    assert done.exit_code == 0, done.output
    text = page.read_text()
    assert "Validation" not in text and "passed" not in text
    assert "<h1>Profile of" in text and "5 rows, 3 columns" in text and "<svg" in text
