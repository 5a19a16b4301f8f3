"""Content-addressed artifact store on a local folder or any fsspec URL.

Layout under the root::

    objects/ab/abcdef...   immutable blobs named by the sha256 of their bytes
    files/<relative path>  named files (prediction logs, reports); written atomically
    tmp/                   partial writes, renamed into place when complete

A blob is written to tmp/, flushed to disk and renamed (and the rename flushed), so
neither a killed process nor a power loss leaves a partial or empty blob under a real
key. Reads verify the hash, so a damaged blob is an error, never a wrong value.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from conveyor._internal.files import fsync_dir, write_atomic
from conveyor._internal.urls import redact_text, redact_url
from conveyor.exceptions import ArtifactCorruptError, ConfigError, StoreError

_HEX = set("0123456789abcdef")


def _check_hash(content_hash: str) -> str:
    if len(content_hash) != 64 or not _HEX.issuperset(content_hash):
        raise StoreError(f"{content_hash!r} is not a sha256 content hash.")
    return content_hash


def _check_relative(path: str) -> str:
    """A normalized relative path with no way out of the store's root."""
    normalized = posixpath.normpath(path.replace("\\", "/"))
    if (
        normalized.startswith(("/", "../"))
        or normalized in ("..", ".", "")
        or "\x00" in normalized
        or ":" in normalized.split("/")[0]
    ):
        raise StoreError(
            f"{path!r} is not a relative path inside the artifact store. Use a path like "
            "'predictions/churn/segment-0001.parquet'."
        )
    return normalized


@runtime_checkable
class ArtifactStore(Protocol):
    """Where artifact bytes live.

    Implementations are safe to share between threads. `put` is atomic and idempotent;
    `get` raises rather than return bytes that do not match the requested hash.
    """

    url: str
    is_local: bool

    def put(self, data: bytes) -> tuple[str, str]:
        """Store bytes; return (sha256, uri). Existing content is not written again."""
        ...

    def get(self, content_hash: str) -> bytes:
        """The bytes of a blob.

        Raises:
            ArtifactCorruptError: the blob is missing or its bytes do not match the hash.
        """
        ...

    def exists(self, content_hash: str) -> bool: ...

    def uri(self, content_hash: str) -> str: ...

    def write_file(self, path: str, data: bytes) -> str:
        """Atomically write a named file under files/; returns its URI."""
        ...

    def read_file(self, path: str) -> bytes:
        """Raises: StoreError: the file does not exist."""
        ...

    def list_files(self, prefix: str) -> list[str]:
        """Relative paths of named files under `prefix`, sorted."""
        ...


class LocalArtifactStore:
    """Artifact store on a local (or shared, mounted) folder."""

    is_local = True

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.url = str(self.root)
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
        self._made: set[str] = set()

    def _dir(self, path: Path) -> None:
        key = str(path)
        if key not in self._made:
            if not path.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                fsync_dir(path.parent)  # the new folder's own entry survives a power loss
            self._made.add(key)

    def _path(self, content_hash: str) -> Path:
        _check_hash(content_hash)
        return self._objects / content_hash[:2] / content_hash

    def uri(self, content_hash: str) -> str:
        return str(self._path(content_hash))

    def _atomic_write(self, target: Path, data: bytes) -> None:
        self._dir(self._tmp)
        self._dir(target.parent)
        # fsync of the file and of its folder: after a power loss a key holds its whole
        # blob or does not exist, never an empty file.
        write_atomic(target, data, tmp_dir=self._tmp)

    def put(self, data: bytes) -> tuple[str, str]:
        content_hash = hashlib.sha256(data).hexdigest()
        target = self._path(content_hash)
        try:
            # A file of another size under the key was damaged (by a crash of an older
            # release, say): write it again rather than keep it.
            present = target.stat().st_size == len(data)
        except FileNotFoundError:
            present = False
        if not present:
            self._atomic_write(target, data)
        return content_hash, str(target)

    def get(self, content_hash: str) -> bytes:
        path = self._path(content_hash)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactCorruptError(
                f"The artifact blob {content_hash} is missing from {self.url}. It was "
                "deleted or the store moved; re-run the step with --no-cache to recreate it."
            ) from None
        if hashlib.sha256(data).hexdigest() != content_hash:
            raise ArtifactCorruptError(
                f"The artifact blob {content_hash} in {self.url} is corrupt: its bytes no "
                "longer match their hash. Delete it and re-run the producing step with "
                "--no-cache."
            )
        return data

    def exists(self, content_hash: str) -> bool:
        _check_hash(content_hash)
        return os.path.exists(f"{self._objects}/{content_hash[:2]}/{content_hash}")

    def write_file(self, path: str, data: bytes) -> str:
        target = self.root / "files" / _check_relative(path)
        self._atomic_write(target, data)
        return str(target)

    def read_file(self, path: str) -> bytes:
        target = self.root / "files" / _check_relative(path)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            raise StoreError(f"No file {path!r} in the artifact store {self.url}.") from None

    def list_files(self, prefix: str) -> list[str]:
        base = self.root / "files"
        start = base / _check_relative(prefix)
        if not start.exists():
            return []
        return sorted(p.relative_to(base).as_posix() for p in start.rglob("*") if p.is_file())


# Object stores where a single PUT is atomic: write in place, no rename needed.
_ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"}


class FsspecArtifactStore:
    """Artifact store on any fsspec URL (s3://, gs://, memory://, ...)."""

    is_local = False

    def __init__(self, url: str, **storage_options: Any) -> None:
        import fsspec

        self.url = url.rstrip("/")
        self._shown = redact_url(self.url)  # for messages: no credentials in the URL
        self.fs, self._root = fsspec.core.url_to_fs(self.url, **storage_options)
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self._direct = bool(set(protocols) & _ATOMIC_PUT)
        self._root = self._root.rstrip("/")

    def _key(self, content_hash: str) -> str:
        _check_hash(content_hash)
        return f"{self._root}/objects/{content_hash[:2]}/{content_hash}"

    def uri(self, content_hash: str) -> str:
        return self.fs.unstrip_protocol(self._key(content_hash))  # type: ignore[no-any-return]

    def _write(self, key: str, data: bytes) -> None:
        if self._direct:
            self.fs.pipe_file(key, data)
            return
        tmp = f"{self._root}/tmp/{uuid.uuid4().hex}.part"
        self.fs.makedirs(posixpath.dirname(tmp), exist_ok=True)
        self.fs.makedirs(posixpath.dirname(key), exist_ok=True)
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, key)

    def put(self, data: bytes) -> tuple[str, str]:
        content_hash = hashlib.sha256(data).hexdigest()
        key = self._key(content_hash)
        if not self.fs.exists(key):
            self._write(key, data)
        return content_hash, self.uri(content_hash)

    def get(self, content_hash: str) -> bytes:
        key = self._key(content_hash)
        try:
            data: bytes = self.fs.cat_file(key)
        except FileNotFoundError:
            raise ArtifactCorruptError(
                f"The artifact blob {content_hash} is missing from {self._shown}. Re-run the "
                "producing step with --no-cache to recreate it."
            ) from None
        if hashlib.sha256(data).hexdigest() != content_hash:
            raise ArtifactCorruptError(
                f"The artifact blob {content_hash} in {self._shown} is corrupt: its bytes no "
                "longer match their hash."
            )
        return data

    def exists(self, content_hash: str) -> bool:
        return bool(self.fs.exists(self._key(content_hash)))

    def write_file(self, path: str, data: bytes) -> str:
        key = f"{self._root}/files/{_check_relative(path)}"
        self._write(key, data)
        return self.fs.unstrip_protocol(key)  # type: ignore[no-any-return]

    def read_file(self, path: str) -> bytes:
        key = f"{self._root}/files/{_check_relative(path)}"
        try:
            return self.fs.cat_file(key)  # type: ignore[no-any-return]
        except FileNotFoundError:
            raise StoreError(f"No file {path!r} in the artifact store {self._shown}.") from None

    def list_files(self, prefix: str) -> list[str]:
        base = f"{self._root}/files/"
        start = base + _check_relative(prefix)
        if not self.fs.exists(start):
            return []
        return sorted(p[len(base) :] for p in self.fs.find(start))


_STORES: dict[str, ArtifactStore] = {}


def open_artifact_store(url: str) -> ArtifactStore:
    """The artifact store for a folder path or fsspec URL (one instance per process).

    Raises:
        ConfigError: the URL's protocol has no installed fsspec implementation.
    """
    store = _STORES.get(url)
    if store is not None:
        return store
    if url.startswith("file://"):
        store = LocalArtifactStore(url[len("file://") :])
    elif "://" not in url:
        store = LocalArtifactStore(url)
    else:
        try:
            store = FsspecArtifactStore(url)
        except (ImportError, ValueError) as exc:
            raise ConfigError(
                f"Cannot open the artifact store {redact_url(url)!r}: {redact_text(str(exc))}. "
                "Install the fsspec implementation for its protocol (s3fs for s3://, gcsfs "
                "for gs://)."
            ) from None
    _STORES[url] = store
    return store


if TYPE_CHECKING:
    _local: ArtifactStore = LocalArtifactStore(".")
    _remote: ArtifactStore = FsspecArtifactStore("memory://x")
