"""Whether the project code a long-running scheduler imported is still what is on disk.

A scheduler imports the pipelines once. Runs it starts afterwards execute that in-memory
code, while cache keys and lineage read the source from disk: after an edit they would
disagree, and the retraining would run yesterday's code under today's fingerprint. So the
scheduler remembers every project module it has loaded (files under the project root,
not the virtualenv or conveyor itself) and, before starting a run, checks that none
changed; if one did, it starts nothing and says to restart.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

_SKIP_PARTS = {"site-packages", "dist-packages", ".venv", "venv", "__pycache__"}


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class CodeWatch:
    """Snapshot of the project's imported source files; `changed()` lists edited ones.

    Args:
        root: The project root; only modules whose files are under it are watched.
    """

    def __init__(self, root: Path) -> None:
        import conveyor

        self.root = root.resolve()
        self._own = Path(conveyor.__file__).resolve().parent
        self._files: dict[Path, tuple[int, int, str | None]] = {}
        self.refresh()

    def _project_files(self) -> list[Path]:
        out = []
        for module in list(sys.modules.values()):
            name = getattr(module, "__file__", None)
            if not name or not name.endswith(".py") or not os.path.isabs(name):
                # A relative __file__ (imported through a relative sys.path entry) says
                # nothing about where the module came from once the directory changed.
                continue
            path = Path(name).resolve()
            if path.is_relative_to(self._own) or _SKIP_PARTS & set(path.parts):
                continue
            if path.is_relative_to(self.root):
                out.append(path)
        return out

    def refresh(self) -> None:
        """Watch the project modules loaded now (with their current content)."""
        for path in self._project_files():
            if path not in self._files:
                state = self._state(path)
                if state[2] is not None:  # a module whose file is not there says nothing
                    self._files[path] = state

    @staticmethod
    def _state(path: Path) -> tuple[int, int, str | None]:
        try:
            stat = os.stat(path)
        except OSError:
            return (-1, -1, None)
        return (stat.st_mtime_ns, stat.st_size, _digest(path))

    def changed(self) -> list[str]:
        """Project files edited (or removed) since they were loaded, relative to the root.

        A touched file whose content is the same does not count.
        """
        out = []
        for path, (mtime, size, digest) in self._files.items():
            try:
                stat = os.stat(path)
            except OSError:
                out.append(path)
                continue
            if (stat.st_mtime_ns, stat.st_size) == (mtime, size):
                continue
            if _digest(path) != digest:
                out.append(path)
            else:  # touched only: remember the new stamp, keep the content
                self._files[path] = (stat.st_mtime_ns, stat.st_size, digest)
        return sorted(str(p.relative_to(self.root)) for p in out)


__all__ = ["CodeWatch"]
