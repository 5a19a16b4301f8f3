"""Which code is the project's (hashed into cache keys) and the components of a key."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _stdlib_root() -> str:
    """The standard library's folder, found without `sysconfig` (slow on first use)."""
    return os.path.realpath(os.path.dirname(os.__file__))


@functools.cache
def _library_roots() -> tuple[str, ...]:
    """The interpreter's library folders (not its whole prefix: projects often live under
    /usr/src or /opt next to it)."""
    import sysconfig

    paths = sysconfig.get_paths()
    return tuple(
        sorted(
            {
                os.path.realpath(p)
                for key in ("stdlib", "platstdlib", "purelib", "platlib")
                if (p := paths.get(key))
            }
        )
    )


_STDLIB = _stdlib_root()
_PROJECT_FILES: dict[tuple[str, str], bool] = {}
_WHERE: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Component:
    """One thing that went into a cache key.

    Attributes:
        kind: ``step``, ``function``, ``class``, ``value``, ``global``, ``module``,
            ``library``, ``param``, ``input``, ``materializer``, ``setting``, ``env``,
            ``file`` or ``package``.
        name: What it is, e.g. ``steps.config:CONFIG`` (module:qualified name) or ``API_URL``.
        digest: Its content hash (for env vars, a hash of the value, never the value).
        where: The file it is defined in, relative to the project root when inside it.
        note: Why it was hashed that way (a fallback), when not the usual way.
        value: A short non-secret display value (versions, parameter previews).
        detail: Sub-hashes, e.g. ``(("code", ...), ("defaults", ...))`` for a function.
    """

    kind: str
    name: str
    digest: str
    where: str = ""
    note: str = ""
    value: str = ""
    detail: tuple[tuple[str, str], ...] = ()

    def line(self) -> str:
        return f"{self.kind}\x1f{self.name}\x1f{self.digest}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name, "hash": self.digest[:16]}
        if self.where:
            out["where"] = self.where
        if self.note:
            out["note"] = self.note
        if self.value:
            out["value"] = self.value
        if self.detail:
            out["detail"] = {k: v[:16] for k, v in self.detail}
        return out


@dataclass(frozen=True)
class ProjectScope:
    """Which code is the project's (hashed) and which is library code (named only).

    A module is the project's when its top-level package is in `packages`, it is
    ``__main__`` or has no file (notebooks, exec'd code), or its file is under `root`
    and not in a site-packages folder, or it lives outside every library folder.
    ``conveyor`` itself is library code unless listed in `packages`.
    """

    root: str
    packages: frozenset[str] = frozenset()
    _memo: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def create(cls, root: str | Path, packages: Iterable[str] = ()) -> ProjectScope:
        return cls(os.path.realpath(root), frozenset(p for p in packages if p))

    def with_packages(self, packages: Iterable[str]) -> ProjectScope:
        extra = frozenset(packages) - self.packages
        if not extra:
            return self
        return ProjectScope(self.root, self.packages | extra)

    def is_project_module(self, name: str | None) -> bool:
        if not name:
            return False
        known = self._memo.get(name)
        if known is not None:
            return known
        top = name.partition(".")[0]
        if name == "__main__" or top in self.packages:
            result = True
        elif top == "conveyor" or name in sys.builtin_module_names:
            result = False
        else:
            module = sys.modules.get(name)
            filename = getattr(module, "__file__", None)
            if filename is None:
                # No file: notebooks, exec'd or removed modules are the user's; built-in
                # and frozen modules are not.
                origin = getattr(getattr(module, "__spec__", None), "origin", None)
                result = origin not in ("built-in", "frozen")
            else:
                result = self.is_project_file(filename)
        self._memo[name] = result
        return result

    def is_project_file(self, filename: str) -> bool:
        if filename.startswith("<"):  # notebooks, exec'd code: always the user's own
            return True
        key = (self.root, filename)
        known = _PROJECT_FILES.get(key)
        if known is None:
            resolved = os.path.realpath(filename)
            parts = Path(resolved).parts
            if "site-packages" in parts or "dist-packages" in parts:
                known = False
            elif resolved.startswith(self.root + os.sep):
                known = True
            elif resolved.startswith(_STDLIB + os.sep):
                known = False
            else:
                known = not any(resolved.startswith(lib + os.sep) for lib in _library_roots())
            _PROJECT_FILES[key] = known
        return known

    def is_project_function(self, fn: types.FunctionType) -> bool:
        if self.is_project_module(fn.__module__):
            return True
        if (fn.__module__ or "").partition(".")[0] == "conveyor":
            return False
        return self.is_project_file(fn.__code__.co_filename)

    def where(self, filename: str | None) -> str:
        """`filename` relative to the root (or to site-packages) for display."""
        if not filename or filename.startswith("<"):
            return filename or ""
        key = (self.root, filename)
        known = _WHERE.get(key)
        if known is None:
            known = resolved = os.path.realpath(filename)
            parts = Path(resolved).parts
            if resolved.startswith(self.root + os.sep):
                known = os.path.relpath(resolved, self.root)
            else:
                for marker in ("site-packages", "dist-packages"):
                    if marker in parts:
                        known = str(Path(*parts[parts.index(marker) + 1 :]))
            _WHERE[key] = known
        return known


@dataclass(frozen=True)
class CodeFingerprint:
    """The code part of a cache key.

    Attributes:
        components: Functions, classes, values, bindings and whole-module fallbacks.
        libraries: Top-level names of library modules the code uses (not hashed).
        modules: The project modules the walk reached.
    """

    components: tuple[Component, ...]
    libraries: frozenset[str]
    modules: frozenset[str]

    @property
    def digest(self) -> str:
        return hashlib.sha256(
            "\n".join(sorted(c.line() for c in self.components)).encode()
        ).hexdigest()


__all__ = ["CodeFingerprint", "Component", "ProjectScope"]
