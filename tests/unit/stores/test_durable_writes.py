"""Local writes are atomic and durable (issue 12, item 12): the file is flushed before it
is renamed over its real name, the folder is flushed after, and a failure leaves nothing.

The kernel calls are observed, not replaced: `os.fsync` is wrapped to record which file
or folder each call flushed, and still flushes it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from conveyor._internal import files
from conveyor.data.schema import ColumnSchema, Schema
from conveyor.exceptions import SchemaFileError
from conveyor.stores.artifacts import LocalArtifactStore


@dataclass(frozen=True)
class Flush:
    inode: int
    is_dir: bool
    watched_exists: bool  # did the final file exist when this flush happened?


class FsyncLog:
    def __init__(self) -> None:
        self.flushes: list[Flush] = []
        self.watch: Path | None = None

    def files_flushed(self) -> set[int]:
        return {f.inode for f in self.flushes if not f.is_dir}

    def dirs_flushed_after_rename(self) -> set[int]:
        return {f.inode for f in self.flushes if f.is_dir and f.watched_exists}

    def file_flushed_before_rename(self, inode: int) -> bool:
        return any(f.inode == inode and not f.is_dir and not f.watched_exists for f in self.flushes)


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> FsyncLog:
    log = FsyncLog()
    real: Callable[[int], None] = os.fsync

    def recording(fd: int) -> None:
        info = os.fstat(fd)
        exists = log.watch is not None and log.watch.exists()
        log.flushes.append(Flush(info.st_ino, stat.S_ISDIR(info.st_mode), exists))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return log


def _assert_durable(log: FsyncLog, target: Path) -> None:
    assert log.file_flushed_before_rename(target.stat().st_ino), "file not flushed before rename"
    assert target.parent.stat().st_ino in log.dirs_flushed_after_rename(), "folder not flushed"


def test_a_blob_is_flushed_then_renamed_then_its_folder_flushed(
    tmp_path: Path, fsyncs: FsyncLog
) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    data = b"the bytes of a model" * 100
    digest = hashlib.sha256(data).hexdigest()
    fsyncs.watch = tmp_path / "store" / "objects" / digest[:2] / digest
    content_hash, uri = store.put(data)
    assert content_hash == digest and Path(uri) == fsyncs.watch
    _assert_durable(fsyncs, fsyncs.watch)
    assert list((tmp_path / "store" / "tmp").iterdir()) == []
    # The new fan-out folder's own entry was flushed in objects/ as well.
    objects = (tmp_path / "store" / "objects").stat().st_ino
    assert objects in {f.inode for f in fsyncs.flushes if f.is_dir}


def test_a_named_file_is_durable_too(tmp_path: Path, fsyncs: FsyncLog) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    fsyncs.watch = tmp_path / "store" / "files" / "reports" / "r.html"
    store.write_file("reports/r.html", b"<html></html>")
    _assert_durable(fsyncs, fsyncs.watch)
    assert fsyncs.watch.read_bytes() == b"<html></html>"


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    (tmp_path / "store" / "files" / "taken").mkdir(parents=True)  # a folder under the name
    with pytest.raises(OSError):
        store.write_file("taken", b"x")
    assert list((tmp_path / "store" / "tmp").iterdir()) == []
    assert (tmp_path / "store" / "files" / "taken").is_dir()


def test_write_atomic_replaces_whole_or_not_at_all(tmp_path: Path, fsyncs: FsyncLog) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(b"old")
    fsyncs.watch = target
    files.write_atomic(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert target.stat().st_ino in fsyncs.files_flushed()
    assert tmp_path.stat().st_ino in {f.inode for f in fsyncs.flushes if f.is_dir}
    with pytest.raises(OSError):
        files.write_atomic(tmp_path / "missing" / "x.txt", b"y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_schema_save_is_atomic_and_durable(tmp_path: Path, fsyncs: FsyncLog) -> None:
    schema = Schema({"age": ColumnSchema(kind="numeric", min=0, max=120)})
    fsyncs.watch = tmp_path / "schema.yaml"
    schema.save(fsyncs.watch)
    _assert_durable(fsyncs, fsyncs.watch)
    assert Schema.from_yaml(fsyncs.watch) == schema
    with pytest.raises(SchemaFileError, match="Cannot write schema file"):
        schema.save(tmp_path / "missing" / "schema.yaml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["schema.yaml"]


def test_batch_scoring_output_is_durable(tmp_path: Path, fsyncs: FsyncLog) -> None:
    from sklearn.linear_model import LogisticRegression

    from conveyor.serving.batch import score_file
    from conveyor.training.model import Model

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "z": [1.0, 0.0, 1.0, 0.0]})
    model = Model.from_fitted(LogisticRegression().fit(frame, [0, 0, 1, 1]), frame, profile=False)
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    fsyncs.watch = tmp_path / "out.csv"
    score_file(model, source, fsyncs.watch)
    _assert_durable(fsyncs, fsyncs.watch)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.csv"]


def test_an_empty_file_under_a_key_is_rewritten_by_the_next_put(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    data = b"a blob whose earlier write was cut short"
    digest = hashlib.sha256(data).hexdigest()
    damaged = tmp_path / "store" / "objects" / digest[:2] / digest
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"")  # what a power loss after an unflushed rename leaves
    store.put(data)
    assert store.get(digest) == data
