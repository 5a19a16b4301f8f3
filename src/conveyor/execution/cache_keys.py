"""Cache keys: every component that goes into a step's key, kept so it can be explained.

A key is the sha256 of its components (see `Component`): the step's name, its code
fingerprint (`conveyor.execution.fingerprint`), ``cache_version``, the declared external
inputs (``env=``, ``files=``, ``packages=`` on ``@step``), the library distributions it
uses when ``cache_packages = true``, and per invocation the typed parameters, the input
artifacts' content hashes and the materializer versions.

One `KeyBuilder` serves one run: the code part of each step is computed once per run
(never reused by a later run, so a redefinition or an edited value always counts).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import sys
import types
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor._internal.hashing import canonical_json, typed_digest
from conveyor.execution.fingerprint import (
    CodeFingerprint,
    Component,
    ProjectScope,
    fingerprint_step,
)
from conveyor.execution.fingerprint_code import stat_memo

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.core.step import Step

_FILE_DIGESTS: dict[str, tuple[tuple[int, ...], str]] = {}
_DISTRIBUTIONS: dict[str, list[str]] | None = None
_MISSING = "missing"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def top_package(module: str | None) -> str:
    return (module or "").partition(".")[0]


def _read_digest(filename: str) -> str:
    h = hashlib.sha256()
    with open(filename, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, or of a folder's relative paths and file contents
    (memoized per file while its stat signature stays the same)."""
    if path.is_dir():
        h = hashlib.sha256(b"dir")
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                child = Path(folder, name)
                h.update(f"{child.relative_to(path).as_posix()}\x00{file_digest(child)}\n".encode())
        return h.hexdigest()
    return stat_memo(_FILE_DIGESTS, str(path), _read_digest) or _MISSING


def _distributions() -> dict[str, list[str]]:
    global _DISTRIBUTIONS
    if _DISTRIBUTIONS is None:
        _DISTRIBUTIONS = {
            k: list(v) for k, v in importlib.metadata.packages_distributions().items()
        }
    return _DISTRIBUTIONS


def _imported_libraries(modules: Iterable[str], scope: ProjectScope) -> set[str]:
    """Top-level library packages imported by (named in the namespace of) `modules`."""
    found: set[str] = set()
    for name in modules:
        module = sys.modules.get(name)
        if module is None:
            continue
        for value in list(vars(module).values()):
            owner: Any = (
                value.__name__
                if isinstance(value, types.ModuleType)
                else getattr(value, "__module__", None)
                if isinstance(value, type) or callable(value)
                else None
            )
            if not isinstance(owner, str):
                continue
            top = top_package(owner)
            if top and not scope.is_project_module(owner):
                found.add(top)
    return {t for t in found if t not in sys.stdlib_module_names and t != "builtins"}


def _param_component(name: str, value: Any) -> Component:
    try:
        digest = typed_digest(value)
    except TypeError:  # JSON-able but not plain (enum members, dict subclasses...)
        digest = _sha(
            f"{type(value).__module__}.{type(value).__qualname__}:" + canonical_json(value)
        )
    preview = repr(value)
    if len(preview) > 60:
        preview = preview[:57] + "..."
    return Component("param", name, digest, value=preview)


@dataclass(frozen=True)
class _StepPart:
    lines: str
    components: tuple[Component, ...]
    json: tuple[dict[str, Any], ...]


class KeyBuilder:
    """Computes cache keys and their components for the steps of one run.

    Args:
        settings: Project root, ``project_packages`` and ``cache_packages``.
        pipeline_module: Module of the pipeline function; its top-level package is
            project code even when installed under site-packages.
        environ: Environment for ``env=`` declarations (default: ``os.environ``).
    """

    def __init__(
        self,
        settings: Settings,
        pipeline_module: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        packages = set(getattr(settings, "project_packages", ()) or ())
        if pipeline_module and pipeline_module != "__main__":
            packages.add(top_package(pipeline_module))
        self.scope = ProjectScope.create(settings.root, packages)
        self.root = Path(settings.root)
        self.cache_packages = bool(getattr(settings, "cache_packages", False))
        self.environ = os.environ if environ is None else environ
        self._steps: dict[int, tuple[Any, _StepPart]] = {}
        self._versions: dict[str, str] = {}
        self._fixed: dict[str, Component] = {}
        self._last: tuple[str, _StepPart, list[Component]] | None = None

    # ------------------------------------------------------------------ components
    def _version(self, distribution: str) -> str:
        known = self._versions.get(distribution)
        if known is None:
            try:
                known = importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                known = "not installed"
            self._versions[distribution] = known
        return known

    def _package(self, distribution: str, note: str = "") -> Component:
        version = self._version(distribution)
        return Component("package", distribution, _sha(version), value=version, note=note)

    def _declared(self, step: Step[Any, Any]) -> list[Component]:
        settings = step.settings
        out = []
        for name in settings.env:
            value = self.environ.get(name)
            out.append(
                Component(
                    "env",
                    name,
                    _sha("unset") if value is None else _sha("set:" + value),
                    value="unset" if value is None else "set",
                )
            )
        for entry in settings.files:
            path = Path(entry)
            if not path.is_absolute():
                path = self.root / path
            digest = file_digest(path)
            out.append(
                Component(
                    "file", entry, digest, value="missing" if digest == _MISSING else digest[:12]
                )
            )
        for distribution in settings.packages:
            out.append(self._package(distribution))
        return out

    def _libraries(
        self, libraries: set[str], modules: Iterable[str], scope: ProjectScope
    ) -> list[Component]:
        if not self.cache_packages:
            return [
                Component(
                    "library",
                    top,
                    _sha("library:" + top),
                    note="named, not hashed: declare packages= or set cache_packages",
                )
                for top in sorted(libraries)
            ]
        tops = libraries | _imported_libraries(modules, scope)
        mapping = _distributions()
        out: dict[str, Component] = {}
        for top in sorted(tops):
            for distribution in mapping.get(top) or [top]:
                if distribution not in out:
                    out[distribution] = self._package(distribution, note=f"imported as `{top}`")
        return list(out.values())

    def step_part(self, step: Step[Any, Any]) -> _StepPart:
        """The components that depend on the step only (memoized for this run)."""
        entry = self._steps.get(id(step))
        if entry is not None and entry[0] is step:
            return entry[1]
        module = getattr(step.fn, "__module__", None)
        scope = self.scope
        if module and module != "__main__":
            scope = scope.with_packages([top_package(module)])
        try:
            code = fingerprint_step(step, scope)
        except Exception as exc:  # never fail (or hit) on code the walker cannot read
            code = CodeFingerprint(
                (
                    Component(
                        "function",
                        f"{module}:{getattr(step.fn, '__qualname__', step.name)}",
                        uuid.uuid4().hex,
                        note=f"could not be fingerprinted ({type(exc).__name__}: {exc}): the "
                        "step re-runs every time",
                    ),
                ),
                frozenset(),
                frozenset(),
            )
        components = [Component("step", step.name, _sha(step.name)), *code.components]
        if step.settings.cache_version:
            version = step.settings.cache_version
            components.append(Component("setting", "cache_version", _sha(version), value=version))
        components += self._declared(step)
        declared = set(step.settings.packages)
        components += [
            c
            for c in self._libraries(set(code.libraries), code.modules, scope)
            if c.name not in declared
        ]
        part = _StepPart(
            "\n".join(sorted(c.line() for c in components)),
            tuple(components),
            tuple(c.to_json() for c in components),
        )
        self._steps[id(step)] = (step, part)
        return part

    def key_for(
        self,
        step: Step[Any, Any],
        params: Mapping[str, Any],
        inputs: Mapping[str, Any],
        materializers: Sequence[str],
        models: Sequence[str] = (),
    ) -> str:
        """The cache key of one invocation; `components` gives what went into it.

        Args:
            step: The step.
            params: Its JSON parameters (hashed with their types kept).
            inputs: Per input name, a JSON description of the input artifacts (content
                hashes and materializers).
            materializers: ``name@version`` of the materializers the inputs need.
            models: ``ref=version`` of the registry references the step declares.
        """
        part = self.step_part(step)
        node = [_param_component(name, params[name]) for name in sorted(params)]
        for name in sorted(inputs):
            text = canonical_json(inputs[name])
            node.append(Component("input", name, _sha(text), value=_preview_hashes(inputs[name])))
        for entry in (*materializers, *models):
            known = self._fixed.get(entry)
            if known is None:  # materializer and model versions repeat across invocations
                if entry in materializers:
                    name, _, version = entry.partition("@")
                    known = Component("materializer", name, _sha(version), value=version)
                else:
                    ref, _, version = entry.rpartition("=")
                    known = Component("model", ref, _sha(version), value=version)
                self._fixed[entry] = known
            node.append(known)
        lines = "\n".join(sorted(c.line() for c in node))
        key = hashlib.sha256(f"{part.lines}\n\x00{lines}".encode()).hexdigest()
        self._last = (key, part, node)
        return key

    def components(self, key: str) -> list[dict[str, Any]] | None:
        """The components (as JSON) of the key `key_for` returned last, else None.

        Built only when asked: a cache hit never needs them.
        """
        if self._last is None or self._last[0] != key:
            return None
        _, part, node = self._last
        return [*part.json, *(c.to_json() for c in node)]


def _preview_hashes(described: Any) -> str:
    if isinstance(described, list) and len(described) == 2 and isinstance(described[0], str):
        return described[0][:12]
    return ""


__all__ = ["KeyBuilder", "file_digest"]
