"""A throwaway project on disk for cache-key tests: write files, import them fresh, run.

Each `CacheProject` is a package with a unique name under a temporary folder (or under a
fake site-packages folder, to test projects installed as packages). `edit` changes files
on disk; `load` drops every module of the package from `sys.modules` and imports it again,
as a new process would.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import cloudpickle

from conveyor.config import Settings
from conveyor.execution.orchestrator import run_pipeline
from tests.conftest import make_settings


class CacheProject:
    def __init__(
        self,
        tmp_path: Path,
        files: dict[str, str],
        *,
        installed: bool = False,
        **settings: Any,
    ) -> None:
        self.package = f"cp_{uuid.uuid4().hex[:10]}"
        self.root = tmp_path / "project"
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "conveyor.toml").write_text("[conveyor]\n")
        base = tmp_path / "env" / "lib" / "site-packages" if installed else self.root
        base.mkdir(parents=True, exist_ok=True)
        self.base = base
        self.folder = base / self.package
        self.folder.mkdir()
        (self.folder / "__init__.py").write_text("")
        for name, text in files.items():
            self.write(name, text)
        self.settings: Settings = make_settings(self.root, **settings)
        self.by_value = False
        self._registered = False

    def write(self, name: str, text: str) -> None:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).replace("PKG", self.package))

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.folder / name
        text = path.read_text()
        old = textwrap.dedent(old).replace("PKG", self.package)
        assert old in text, f"{old!r} is not in {name}"
        path.write_text(text.replace(old, textwrap.dedent(new).replace("PKG", self.package), 1))

    def unload(self) -> None:
        for name in [
            m for m in sys.modules if m == self.package or m.startswith(self.package + ".")
        ]:
            del sys.modules[name]
        importlib.invalidate_caches()

    def load(self, module: str = "pipe") -> Any:
        """Import `module` of the package afresh (every module of the package reloaded)."""
        self._unregister()
        self.unload()
        loaded = importlib.import_module(f"{self.package}.{module}")
        if self.by_value:
            # Workers of other processes get the code as loaded here, not a stale import.
            cloudpickle.register_pickle_by_value(sys.modules[self.package])
            self._registered = True
        return loaded

    def _unregister(self) -> None:
        if self._registered:
            cloudpickle.unregister_pickle_by_value(sys.modules[self.package])
            self._registered = False

    def ship_by_value(self) -> None:
        self.by_value = True

    def run(self, executor: Any = "inline", module: str = "pipe", **params: Any) -> Any:
        pipe = self.load(module)
        return run_pipeline(pipe.p, params, settings=self.settings, executor=executor)

    def direct(self, module: str = "pipe") -> Any:
        """What the current code computes, called as plain Python (no cache involved)."""
        pipe = importlib.import_module(f"{self.package}.{module}")
        return pipe.p.fn()

    def close(self) -> None:
        self._unregister()
        self.unload()
