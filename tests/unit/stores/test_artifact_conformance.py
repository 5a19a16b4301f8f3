"""One conformance suite for the artifact store: local folder and an fsspec object store."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from conveyor.exceptions import ArtifactCorruptError, StoreError
from conveyor.stores.artifacts import (
    ArtifactStore,
    FsspecArtifactStore,
    LocalArtifactStore,
    open_artifact_store,
)


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    return FsspecArtifactStore(f"memory://conveyor-test-{uuid.uuid4().hex}")


def test_put_is_content_addressed_and_deduplicated(store: ArtifactStore) -> None:
    digest, uri = store.put(b"hello")
    assert digest == hashlib.sha256(b"hello").hexdigest()
    assert digest[:2] in uri and digest in uri
    assert store.put(b"hello") == (digest, uri)
    assert store.exists(digest) and store.get(digest) == b"hello"
    assert not store.exists(hashlib.sha256(b"other").hexdigest())


def test_missing_blob_is_an_error(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactCorruptError, match="missing"):
        store.get(hashlib.sha256(b"never stored").hexdigest())


def test_invalid_hash_is_rejected(store: ArtifactStore) -> None:
    with pytest.raises(StoreError, match="not a sha256"):
        store.get("../../etc/passwd")


@pytest.mark.parametrize("path", ["../escape", "/abs/path", "a/../../b", "", "."])
def test_named_files_cannot_escape_the_store(store: ArtifactStore, path: str) -> None:
    with pytest.raises(StoreError, match="not a relative path"):
        store.write_file(path, b"x")


def test_named_files_round_trip_and_list(store: ArtifactStore) -> None:
    store.write_file("predictions/m/2026/seg-1.parquet", b"one")
    store.write_file("predictions/m/2026/seg-0.parquet", b"zero")
    assert store.read_file("predictions/m/2026/seg-1.parquet") == b"one"
    assert store.list_files("predictions/m") == [
        "predictions/m/2026/seg-0.parquet",
        "predictions/m/2026/seg-1.parquet",
    ]
    assert store.list_files("nothing/here") == []
    with pytest.raises(StoreError, match="No file"):
        store.read_file("predictions/missing")


def test_corrupted_local_blob_is_detected(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest, uri = store.put(b"payload")
    Path(uri).write_bytes(b"tampered")
    with pytest.raises(ArtifactCorruptError, match="corrupt"):
        store.get(digest)


def test_local_writes_leave_no_partial_file_under_a_real_key(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    digest, _ = store.put(b"x" * 1000)
    blobs = [p for p in (tmp_path / "objects").rglob("*") if p.is_file()]
    assert [p.name for p in blobs] == [digest]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_open_by_url_picks_the_implementation(tmp_path: Path) -> None:
    assert isinstance(open_artifact_store(str(tmp_path / "a")), LocalArtifactStore)
    assert isinstance(open_artifact_store(f"file://{tmp_path / 'b'}"), LocalArtifactStore)
    assert isinstance(
        open_artifact_store(f"memory://conveyor-{uuid.uuid4().hex}"), FsspecArtifactStore
    )
