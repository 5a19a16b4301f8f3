"""Code fingerprints for cache keys: the project code and values a step reaches.

Starting from the step's function, the walker follows code and values together:

- functions by their bytecode, constants and names (comments and formatting do not count),
  their defaults, keyword defaults, closure cells and attributes; ``__wrapped__`` chains,
  ``functools.partial`` (function, arguments, keywords) and cached wrappers
  (``functools.lru_cache``) through to the wrapped function;
- the globals a function names, in its own module and through attribute chains of project
  modules (``import pkg.sub`` then ``pkg.sub.f()``), modules imported in function bodies
  and module-level ``__getattr__``, and what each name is bound to;
- module-level values of any kind by content (see `fingerprint_values`), so a change to
  ``CONFIG = {...}`` in any module the step reaches is a new key;
- project classes with every member (methods, properties, class and static methods, class
  attributes) and their project base classes (the MRO);
- instances of project classes by class and attributes.

Where code looks names up dynamically (``globals()``, ``vars()``, ``eval``/``exec``,
``__import__``/``importlib.import_module``, ``getattr`` with a non-literal name), the walker
cannot see what is used, so it hashes the whole defining module (its source, ignoring
comments and formatting, and every global in it) and records why.

Library code (the standard library, site-packages outside the project's packages) is
named, not hashed; `conveyor.execution.cache_keys` adds distribution versions for it when
asked. Results are never memoized across calls: only the normalized hash of each code
object (immutable) and of each module source file (by path, size and times) are cached,
so redefining a function in a notebook always changes the fingerprint.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
import types
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from conveyor.core.step import Step
from conveyor.execution.fingerprint_code import (
    CodeInfo,
    code_info,
    defining_module,
    module_source_digest,
)
from conveyor.execution.fingerprint_scope import CodeFingerprint, Component, ProjectScope
from conveyor.execution.fingerprint_values import DEFAULT_MAX_BYTES, Unhashable, ValueEncoder

_IPYTHON_NAMES = re.compile(r"_(i{0,3}|i?\d+|oh|ih|dh)?\Z|In\Z|Out\Z|exit\Z|quit\Z|get_ipython\Z")
# Members that say nothing about behaviour (or, like the ABC cache, cannot be hashed).
_SKIPPED_MEMBERS = frozenset({"__dict__", "__weakref__", "__module__", "__qualname__", "_abc_impl"})


def _combine(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


# ---------------------------------------------------------------------------- the walk
class _Walk:
    def __init__(self, scope: ProjectScope, max_bytes: int) -> None:
        self.scope = scope
        self.encoder = ValueEncoder(self, max_bytes)
        self.components: dict[str, Component] = {}
        self.tokens: dict[int, str] = {}
        self.alive: list[Any] = []  # keeps visited objects alive so ids stay unique
        self.bound: set[tuple[str, str]] = set()
        self.followed: set[tuple[str, int]] = set()
        self.whole: dict[str, Component] = {}
        self.libraries: set[str] = set()
        self.modules: set[str] = set()

    # -------------------------------------------------------------- CodeFollower
    def token(self, obj: Any) -> str | None:
        if isinstance(obj, types.FunctionType):
            return self.visit_function(obj)
        if isinstance(obj, type):
            return self.visit_class(obj)
        if isinstance(obj, types.ModuleType):
            if self.scope.is_project_module(obj.__name__):
                self.fallback(obj.__name__, vars(obj), f"module `{obj.__name__}` used as a value")
            else:
                self._library(obj.__name__)
            return f"module:{obj.__name__}"
        if isinstance(obj, Step):
            return (
                self.visit_function(obj.fn, force=True)
                if isinstance(obj.fn, types.FunctionType)
                else None
            )
        return None

    def is_project_type(self, cls: type) -> bool:
        return self.scope.is_project_module(cls.__module__)

    # -------------------------------------------------------------- helpers
    def _library(self, module: str | None) -> None:
        if module:
            top = module.partition(".")[0]
            if top not in sys.stdlib_module_names and top != "builtins":
                self.libraries.add(top)

    def _add(self, component: Component, obj: Any) -> Component:
        name = component.name
        count = 1
        while f"{component.kind}:{name}" in self.components:
            count += 1
            name = f"{component.name}#{count}"
        if name != component.name:
            component = Component(
                component.kind,
                name,
                component.digest,
                component.where,
                component.note,
                component.value,
                component.detail,
            )
        self.components[f"{component.kind}:{name}"] = component
        self.alive.append(obj)
        return component

    def _value_digest(self, value: Any, module: str, label: str) -> tuple[str, str]:
        """(digest, note) of a value, falling back to its module's source."""
        try:
            return self.encoder.digest(value), ""
        except RecursionError:
            exc = Unhashable("is nested too deeply")
        except Unhashable as error:
            exc = error
        except Exception as error:  # user objects may raise anything from __getattr__ & co.
            exc = Unhashable(f"could not be read ({type(error).__name__}: {str(error)[:80]})")
        module_obj = sys.modules.get(module)
        source = module_source_digest(getattr(module_obj, "__file__", None))
        if source is not None:
            return (
                _combine("source", source, type(value).__qualname__),
                f"{label} {exc}: hashed the source of module `{module}` instead",
            )
        return (
            uuid.uuid4().hex,
            f"{label} {exc} and module `{module}` has no source: the step re-runs every time",
        )

    # -------------------------------------------------------------- functions
    def visit_function(self, fn: types.FunctionType, force: bool = False) -> str:
        known = self.tokens.get(id(fn))
        if known is not None:
            return known
        module = fn.__module__ or fn.__globals__.get("__name__") or ""
        if not force and not self.scope.is_project_function(fn):
            self._library(module)
            token = f"lib:{module}.{fn.__qualname__}"
            self.tokens[id(fn)] = token
            self.alive.append(fn)
            return token
        # Register the token first: recursive helpers refer back to themselves.
        provisional = f"fn:{module}:{fn.__qualname__}"
        self.tokens[id(fn)] = provisional
        self.alive.append(fn)
        info = code_info(fn.__code__)
        home = fn.__globals__.get("__name__") or module
        cells = []
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
            try:
                cells.append((name, cell.cell_contents))
            except ValueError:  # an empty cell (a name assigned later)
                cells.append((name, "<empty cell>"))
        detail = [("code", info.digest)]
        notes = []
        parts: list[tuple[str, Any]] = []
        if fn.__defaults__ is not None or fn.__kwdefaults__ is not None:
            parts.append(("defaults", (fn.__defaults__, fn.__kwdefaults__)))
        if cells:
            parts.append(("closure", tuple(cells)))
        if vars(fn):
            parts.append(("attributes", dict(vars(fn))))
        for label, value in parts:
            digest, note = self._value_digest(value, home, f"the {label} of `{fn.__qualname__}`")
            detail.append((label, digest))
            if note:
                notes.append(note)
        if info.dynamic:
            notes.append(f"uses {', '.join(info.dynamic)}: the whole module `{home}` is hashed")
        component = self._add(
            Component(
                "function",
                f"{module}:{fn.__qualname__}",
                _combine(*(f"{k}={v}" for k, v in detail)),
                self.scope.where(fn.__code__.co_filename),
                "; ".join(notes),
                detail=tuple(detail),
            ),
            fn,
        )
        token = f"fn:{component.name}"
        self.tokens[id(fn)] = token
        self.modules.add(home)
        self.follow(fn.__globals__, home, info.names)
        for imported in info.imports:
            self._follow_import(imported, fn.__globals__, info.names)
        if info.dynamic:
            reason = f"{', '.join(info.dynamic)} in `{fn.__qualname__}`"
            self.fallback(home, fn.__globals__, reason)
            if "getattr() with a computed name" in info.dynamic:
                for name in sorted(info.names):
                    target = fn.__globals__.get(name)
                    if isinstance(target, types.ModuleType) and self.scope.is_project_module(
                        target.__name__
                    ):
                        self.fallback(target.__name__, vars(target), reason)
            if "importlib.import_module()" in info.dynamic or "__import__()" in info.dynamic:
                # Modules named by string literals are what such code most likely imports.
                for text in sorted(info.strings):
                    self._dynamic_import(text, fn.__globals__, reason)
        return token

    def _dynamic_import(self, text: str, namespace: Mapping[str, Any], reason: str) -> None:
        try:
            name = importlib.util.resolve_name(text, namespace.get("__package__") or "")
        except (ImportError, ValueError):
            return
        if not name.startswith(".") and (name in sys.modules or "." in name):
            module = sys.modules.get(name) or self._import_project_module(name)
            if module is not None and self.scope.is_project_module(name):
                self.fallback(name, vars(module), reason)

    def _follow_import(
        self, imported: str, namespace: Mapping[str, Any], names: frozenset[str]
    ) -> None:
        """Follow a module a function imports in its body, as if it were a global."""
        try:
            resolved = importlib.util.resolve_name(imported, namespace.get("__package__") or "")
        except (ImportError, ValueError):
            return
        for candidate in sorted({resolved, resolved.partition(".")[0]}):
            module = sys.modules.get(candidate) or self._import_project_module(candidate)
            if module is None:
                continue
            if self.scope.is_project_module(candidate):
                self.follow(vars(module), candidate, names)
            else:
                self._library(candidate)

    def _project_origin(self, top: str, origin: str | None) -> bool:
        return top in self.scope.packages or bool(origin and self.scope.is_project_file(origin))

    def _import_project_module(self, name: str) -> types.ModuleType | None:
        """Import a project module the step imports in its body but nothing has imported
        yet (the step will, when it runs); library modules are only named."""
        top = name.partition(".")[0]
        try:
            # The top-level spec first: finding `a.b` imports `a`, which for a library may
            # be heavy and is not needed to name it.
            spec = importlib.util.find_spec(top) if top not in sys.modules else None
            if spec is not None and not self._project_origin(top, spec.origin):
                self._library(name)
                return None
            spec = importlib.util.find_spec(name)
        except Exception:  # a parent package failed to import, or a bad name
            spec = None
        origin = getattr(spec, "origin", None)
        if spec is None or not origin:
            return None
        if not self._project_origin(top, origin):
            self._library(name)
            return None
        try:
            return importlib.import_module(name)
        except Exception as exc:
            self._add(
                Component(
                    "module",
                    name,
                    _combine("module", module_source_digest(origin) or uuid.uuid4().hex),
                    self.scope.where(origin),
                    f"could not be imported to follow ({type(exc).__name__}): source hashed",
                ),
                name,
            )
            return None

    # -------------------------------------------------------------- classes
    def visit_class(self, cls: type) -> str:
        known = self.tokens.get(id(cls))
        if known is not None:
            return known
        if not self.scope.is_project_module(cls.__module__):
            self._library(cls.__module__)
            token = f"lib:{cls.__module__}.{cls.__qualname__}"
            self.tokens[id(cls)] = token
            self.alive.append(cls)
            return token
        self.tokens[id(cls)] = f"class:{cls.__module__}:{cls.__qualname__}"
        self.alive.append(cls)
        detail = []
        notes = []
        bases = ",".join(self.token(base) or "" for base in cls.__bases__)
        meta = type(cls)
        detail.append(
            ("bases", _combine(bases, (self.token(meta) or "") if meta is not type else ""))
        )
        for name in sorted(vars(cls)):
            if name in _SKIPPED_MEMBERS:
                continue
            digest, note = self._value_digest(
                vars(cls)[name], cls.__module__, f"`{cls.__qualname__}.{name}`"
            )
            detail.append((name, digest))
            if note:
                notes.append(note)
        module = sys.modules.get(cls.__module__)
        component = self._add(
            Component(
                "class",
                f"{cls.__module__}:{cls.__qualname__}",
                _combine(*(f"{k}={v}" for k, v in detail)),
                self.scope.where(getattr(module, "__file__", None)),
                "; ".join(notes),
                detail=tuple(detail),
            ),
            cls,
        )
        token = f"class:{component.name}"
        self.tokens[id(cls)] = token
        self.modules.add(cls.__module__)
        return token

    # -------------------------------------------------------------- globals
    def follow(self, namespace: Mapping[str, Any], module: str, names: Iterable[str]) -> None:
        """Hash what each of `names` is bound to in a module's namespace."""
        wanted = names if isinstance(names, (set, frozenset)) else set(names)
        key = (module, id(wanted))
        if key in self.followed:
            return
        self.followed.add(key)
        self.alive.append(wanted)
        for name in sorted(wanted.intersection(namespace)):
            self.binding(namespace, module, name, wanted)
        if "__getattr__" in namespace and not wanted.issubset(namespace):
            # A module-level __getattr__ (PEP 562) answers the names it does not hold.
            self.binding(namespace, module, "__getattr__", wanted)

    def binding(
        self, namespace: Mapping[str, Any], module: str, name: str, names: frozenset[str] | set[str]
    ) -> None:
        value = namespace[name]
        key = (module, name)
        seen = key in self.bound
        self.bound.add(key)
        if isinstance(value, types.ModuleType):
            # Followed again for each new set of names: other code may use other attributes.
            target = value.__name__
            if self.scope.is_project_module(target):
                self.follow(vars(value), target, names)
            else:
                self._library(target)
            if not seen and target.rpartition(".")[2] != name:
                where = self.scope.where(namespace.get("__file__"))
                self._add(
                    Component(
                        "global",
                        f"{module}:{name}",
                        _combine("module", target),
                        where,
                        value=f"module {target}",
                    ),
                    value,
                )
            return
        if seen:
            return
        where = self.scope.where(namespace.get("__file__"))
        token = self.token(value)
        if token is not None:
            canonical = (
                getattr(value, "__module__", None) == module
                and getattr(value, "__qualname__", None) == name
            )
            if not canonical:
                self._add(
                    Component(
                        "global",
                        f"{module}:{name}",
                        _combine(token),
                        where,
                        value=token.partition(":")[2],
                    ),
                    value,
                )
            return
        # Named after the module that defines it, so one value imported in several
        # places is one component, reported where a user would edit it.
        home, original = defining_module(module, name, value)
        if (home, original) != (module, name):
            if original != name:  # `from .config import A as CONFIG`: the alias counts
                self._add(
                    Component(
                        "global",
                        f"{module}:{name}",
                        _combine("value", home, original),
                        where,
                        value=f"{home}:{original}",
                    ),
                    value,
                )
            if (home, original) in self.bound:
                return
            self.bound.add((home, original))
            where = self.scope.where(getattr(sys.modules.get(home), "__file__", None))
        digest, note = self._value_digest(value, home, f"`{original}`")
        self._add(Component("value", f"{home}:{original}", digest, where, note), value)

    # -------------------------------------------------------------- fallback
    def fallback(self, module: str, namespace: Mapping[str, Any], reason: str) -> None:
        """Hash a whole module: its source and every global in it."""
        existing = self.whole.get(module)
        if existing is not None:
            if reason not in existing.note:
                updated = Component(
                    existing.kind,
                    existing.name,
                    existing.digest,
                    existing.where,
                    f"{existing.note}; {reason}",
                )
                self.components[f"module:{existing.name}"] = updated
                self.whole[module] = updated
            return
        filename = namespace.get("__file__")
        source = module_source_digest(filename) or ""
        component = self._add(
            Component(
                "module",
                module,
                _combine("module", source),
                self.scope.where(filename),
                f"hashed whole because of {reason}",
            ),
            namespace,
        )
        self.whole[module] = component
        ipython = module == "__main__" and "get_ipython" in namespace
        names = {
            n
            for n in namespace
            if not (n.startswith("__") and n.endswith("__"))
            and not (ipython and _IPYTHON_NAMES.match(n))
        }
        self.follow(namespace, module, names)


def fingerprint_step(
    step: Any, scope: ProjectScope, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> CodeFingerprint:
    """The code components of a step (or plain function): everything its code reaches.

    The step's own function is always hashed, wherever it is defined.
    """
    function = getattr(step, "fn", step)
    walk = _Walk(scope, max_bytes)
    if isinstance(function, types.FunctionType):
        walk.visit_function(function, force=True)
    else:
        digest, note = walk._value_digest(function, getattr(function, "__module__", ""), "step")
        walk._add(Component("function", repr(function), digest, note=note), function)
    return CodeFingerprint(
        tuple(walk.components.values()), frozenset(walk.libraries), frozenset(walk.modules)
    )


def fingerprint(fn: Any, root: str | Path) -> str:
    """sha256 over the code and values `fn` reaches (see `fingerprint_step`)."""
    return fingerprint_step(fn, ProjectScope.create(root)).digest


__all__ = [
    "CodeFingerprint",
    "CodeInfo",
    "Component",
    "ProjectScope",
    "code_info",
    "fingerprint",
    "fingerprint_step",
    "module_source_digest",
]
