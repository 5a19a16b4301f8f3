"""Durable, atomic local file writes.

A file is written under a temporary name, flushed to disk (``fsync``), renamed over its
real name and then the folder holding it is flushed too, so that the rename itself
survives a power loss. A reader therefore sees the old file or the whole new one, never
an empty or partial file under the real name; a failed write removes its temporary file.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk.

    Windows cannot open a folder for this and makes renames durable itself: a no-op there.
    """
    if sys.platform == "win32":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a closed file's bytes to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Durably move a complete temporary file over `target`; remove it when that fails.

    Args:
        tmp: The fully written (and closed) temporary file, on the same file system.
        target: Its real name.

    Raises:
        OSError: flushing or renaming failed (`tmp` is removed, `target` is untouched).
    """
    try:
        fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(Path(target).parent)


def temp_name(target: str | os.PathLike[str]) -> Path:
    """A unique temporary name beside `target` (a hidden ``.part`` file in its folder)."""
    target = Path(target)
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.part")


def write_atomic(
    target: str | os.PathLike[str],
    data: bytes,
    *,
    tmp_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Write `data` to `target` atomically and durably.

    Args:
        target: The file to (re)place; its folder must exist.
        data: Its complete contents.
        tmp_dir: Where the temporary file goes (same file system as `target`); by
            default beside `target`.

    Raises:
        OSError: the write failed; no temporary file is left and `target` is untouched.
    """
    tmp = Path(tmp_dir) / f"{uuid.uuid4().hex}.part" if tmp_dir is not None else temp_name(target)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(Path(target).parent)
