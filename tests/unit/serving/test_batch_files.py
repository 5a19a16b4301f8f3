"""`conveyor predict` / `score_file` with careless arguments and bad files (issue 12, item 7).

Every failure is one ServingError line (exit 1 on the CLI, no traceback), raised before
anything is scored when it can be known then, and no file (partial output, ``.part``) is
left behind.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.config import Settings
from conveyor.exceptions import ServingError
from conveyor.registry import Registry
from conveyor.serving.batch import score_file
from conveyor.training.model import Model

ROWS = 120


@pytest.fixture
def frame(cancer: tuple[pd.DataFrame, pd.Series]) -> pd.DataFrame:
    return cancer[0].iloc[:ROWS].reset_index(drop=True)


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*") if p.is_file()}


def _refused(
    model: Any, source: Path, out: Path, match: str, **options: Any
) -> tuple[ServingError, list[int]]:
    """score_file must fail with one line, before any chunk is scored, leaving no file."""
    folder = source.parent
    before = _files(folder)
    seen: list[int] = []
    with pytest.raises(ServingError, match=match) as caught:
        score_file(
            model, source, out, chunk_rows=16, progress=lambda d, _: seen.append(d), **options
        )
    assert "\n" not in str(caught.value)
    assert _files(folder) == before, "a failed scoring left a file behind"
    return caught.value, seen


# -- output == input -----------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["same", "relative", "dotted", "symlink", "hardlink"])
def test_the_output_may_not_be_the_input(
    tmp_path: Path, lr_model: Model, frame: pd.DataFrame, spelling: str, monkeypatch: Any
) -> None:
    source = tmp_path / "data" / "in.parquet"
    source.parent.mkdir()
    frame.to_parquet(source)
    original = source.read_bytes()
    monkeypatch.chdir(tmp_path)
    out: Path = {
        "same": source,
        "relative": Path("data/in.parquet"),
        "dotted": tmp_path / "data" / ".." / "data" / "." / "in.parquet",
        "symlink": tmp_path / "data" / "link.parquet",
        "hardlink": tmp_path / "data" / "hard.parquet",
    }[spelling]
    if spelling == "symlink":
        out.symlink_to(source)
    if spelling == "hardlink":
        os.link(source, out)
    _refused(lr_model, source, out, "is the input file")
    assert source.read_bytes() == original


def test_the_reject_file_may_not_be_the_input_or_the_output(
    tmp_path: Path, lr_model: Model, frame: pd.DataFrame
) -> None:
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    _refused(
        lr_model, source, tmp_path / "o.csv", "reject file .* is the input", reject_path=source
    )
    _refused(
        lr_model,
        source,
        tmp_path / "o.csv",
        "reject file and the output file are the same",
        reject_path=tmp_path / "o.csv",
    )


# -- the output's folder and format, checked before anything is loaded or scored --------------


def test_a_missing_output_folder_fails_before_the_model_is_even_resolved(
    tmp_path: Path, frame: pd.DataFrame, registry: Registry
) -> None:
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    # An unknown reference would fail too; the folder check comes first, so it is the one seen.
    _, seen = _refused(
        "no-such-model@production",
        source,
        tmp_path / "missing" / "out.parquet",
        r"folder .* does not exist\. Create it first",
        registry=registry,
    )
    assert seen == []


@pytest.mark.parametrize("name", ["out.txt", "out", "out.json", "out.parquet.bak"])
def test_an_output_name_without_a_known_format_is_refused(
    tmp_path: Path, lr_model: Model, frame: pd.DataFrame, name: str
) -> None:
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    _refused(lr_model, source, tmp_path / name, r"format of the output file .*\.parquet or \.csv")


def test_an_output_that_is_a_folder_is_refused(
    tmp_path: Path, lr_model: Model, frame: pd.DataFrame
) -> None:
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    (tmp_path / "out.parquet").mkdir()
    _refused(lr_model, source, tmp_path / "out.parquet", "is a folder")


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".csv.gz"])
def test_the_output_format_follows_the_extension(
    tmp_path: Path, lr_model: Model, frame: pd.DataFrame, suffix: str
) -> None:
    data = frame.copy()
    data.loc[3, "mean radius"] = None  # one reject, to see the reject file's format too
    source = tmp_path / "in.parquet"
    data.to_parquet(source)
    out = tmp_path / f"scored{suffix}"
    summary = score_file(lr_model, source, out, chunk_rows=50)
    raw = out.read_bytes()
    assert not raw.startswith(b"PAR1")
    text = gzip.decompress(raw).decode() if suffix == ".csv.gz" else raw.decode()
    sep = "\t" if suffix == ".tsv" else ","
    assert text.splitlines()[0].replace('"', "").split(sep)[:2] == ["_row", "prediction"]
    scored = pd.read_csv(out, sep=sep)
    reference = score_file(lr_model, source, tmp_path / "scored.parquet", chunk_rows=50)
    expected = pd.read_parquet(tmp_path / "scored.parquet")
    assert (summary.rows_scored, summary.rows_rejected) == (ROWS - 1, 1)
    assert scored["_row"].tolist() == expected["_row"].tolist()
    assert scored["prediction"].tolist() == expected["prediction"].tolist()
    assert summary.reject_file == str(tmp_path / f"scored.rejects{suffix}")
    rejects = pd.read_csv(summary.reject_file, sep=sep)
    assert rejects["_row"].tolist() == [3]
    assert reference.reject_file == str(tmp_path / "scored.rejects.parquet")
    assert not any(name.endswith(".part") for name in _files(tmp_path))


# -- bad input files --------------------------------------------------------------------------


def test_a_truncated_parquet_file_is_one_line(
    tmp_path: Path, lr_model: Model, frame: pd.DataFrame
) -> None:
    whole = tmp_path / "whole.parquet"
    frame.to_parquet(whole)
    source = tmp_path / "in.parquet"
    source.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    _refused(lr_model, source, tmp_path / "out.parquet", r"in\.parquet is not a readable Parquet")


def test_a_corrupt_page_in_the_middle_fails_without_a_partial_output(
    tmp_path: Path, lr_model: Model, frame: pd.DataFrame
) -> None:
    whole = tmp_path / "whole.parquet"
    # Many small row groups: the footer is intact, a later row group's bytes are not.
    pq.write_table(pa.Table.from_pandas(frame), whole, row_group_size=10, compression="none")
    raw = bytearray(whole.read_bytes())
    meta = pq.ParquetFile(whole).metadata
    group = meta.row_group(meta.num_row_groups - 2).column(0)
    start = group.data_page_offset
    raw[start : start + 64] = b"\xff" * 64
    whole.unlink()
    source = tmp_path / "in.parquet"
    source.write_bytes(bytes(raw))
    _refused(lr_model, source, tmp_path / "out.parquet", r"in\.parquet is not a readable Parquet")


def test_a_utf16_csv_is_one_line(tmp_path: Path, lr_model: Model, frame: pd.DataFrame) -> None:
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False, encoding="utf-16")
    _refused(lr_model, source, tmp_path / "out.parquet", r"not UTF-8 text .*UTF-16")


def test_a_ragged_csv_row_deep_in_the_file_leaves_no_partial_output(
    tmp_path: Path, lr_model: Model, frame: pd.DataFrame
) -> None:
    lines = frame.to_csv(index=False).splitlines()
    lines[100] += ",1.5"  # one cell too many, chunks after the first ones were scored
    source = tmp_path / "in.csv"
    source.write_text("\n".join(lines) + "\n")
    _refused(
        lr_model, source, tmp_path / "out.csv", r"in\.csv is not a readable CSV file: .*columns"
    )


def test_invalid_utf8_in_a_cell_is_one_line(
    tmp_path: Path, lr_model: Model, frame: pd.DataFrame
) -> None:
    text = frame.to_csv(index=False).encode()
    head, _, rest = text.partition(b"\n")
    source = tmp_path / "in.csv"
    cells = rest.split(b",")
    cells[40] = b"\xe9t\xe9"
    source.write_bytes(head + b"\n" + b",".join(cells))
    _refused(lr_model, source, tmp_path / "out.parquet", r"in\.csv is not a readable CSV file")


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_missing_columns_name_them(
    tmp_path: Path, lr_model: Model, frame: pd.DataFrame, kind: str
) -> None:
    source = tmp_path / f"in.{kind}"
    partial = frame.drop(columns=["mean radius", "worst area"])
    if kind == "csv":
        partial.to_csv(source, index=False)
    else:
        partial.to_parquet(source)
    _refused(
        lr_model,
        source,
        tmp_path / "out.parquet",
        r"lacks the column\(s\) 'mean radius', 'worst area'",
    )


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_an_empty_csv_is_one_line(tmp_path: Path, lr_model: Model, content: bytes) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(content)
    _refused(lr_model, source, tmp_path / "out.parquet", "no header row")


def test_an_empty_parquet_file_is_one_line(tmp_path: Path, lr_model: Model) -> None:
    source = tmp_path / "in.parquet"
    source.write_bytes(b"")
    _refused(lr_model, source, tmp_path / "out.parquet", "not a readable Parquet")


# -- through the CLI: exit 1, one line on stderr, no traceback --------------------------------


def test_cli_errors_are_one_line(
    tmp_path: Path,
    settings: Settings,
    registry: Registry,
    lr_model: Model,
    frame: pd.DataFrame,
    monkeypatch: Any,
) -> None:
    # `predict` publishes the store URLs to the environment; restore it after the test.
    monkeypatch.setenv("CONVEYOR_DB_URL", settings.db_url)
    monkeypatch.setenv("CONVEYOR_ARTIFACT_URL", settings.artifact_url)
    registry.register(lr_model, "cancer")
    work = tmp_path / "work"
    work.mkdir()
    source = work / "in.parquet"
    frame.to_parquet(source)
    ragged = work / "ragged.csv"
    lines = frame.to_csv(index=False).splitlines()
    lines[50] += ",9"
    ragged.write_text("\n".join(lines) + "\n")
    cases = {
        (str(source), str(source)): "is the input file",
        (str(source), str(work / "no" / "out.parquet")): "does not exist",
        (str(source), str(work / "out.xlsx")): "format of the output file",
        (str(ragged), str(work / "out.csv")): "not a readable CSV file",
        (str(work / "absent.csv"), str(work / "out.csv")): "does not exist",
    }
    runner = CliRunner()
    base = ["--db-url", settings.db_url, "--artifact-url", settings.artifact_url, "predict"]
    for (given, out), message in cases.items():
        before = _files(work)
        result = runner.invoke(app, [*base, "cancer", given, out])
        stderr = result.stderr if result.stderr_bytes else result.output
        assert result.exit_code == 1, (given, out, result.output)
        assert message in stderr, stderr
        assert "Traceback" not in result.output + stderr
        assert len(stderr.strip().splitlines()) == 1, stderr
        assert _files(work) == before
    result = runner.invoke(app, [*base, "cancer", str(source), str(work / "out.csv")])
    assert result.exit_code == 0, result.output
    assert pd.read_csv(work / "out.csv")["_row"].tolist() == list(range(ROWS))
