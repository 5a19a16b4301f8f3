"""Code fingerprints for cache keys: the project code and values a step reaches.

Starting from the step's function, the walker follows code and values together:

- functions by their bytecode, constants and names (comments and formatting do not count),
  their defaults, keyword defaults, closure cells and attributes; ``__wrapped__`` chains,
  ``functools.partial`` (function, arguments, keywords) and cached wrappers
  (``functools.lru_cache``) through to the wrapped function;
- the globals a function names, in its own module and through attribute chains of project
  modules (``import pkg.sub`` then ``pkg.sub.f()``), and what each name is bound to;
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

import ast
import dis
import hashlib
import importlib.util
import inspect
import os
import re
import sys
import sysconfig
import textwrap
import threading
import types
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor._internal.hashing import canonical_bytes
from conveyor.core.step import Step
from conveyor.execution.fingerprint_values import DEFAULT_MAX_BYTES, Unhashable, ValueEncoder

_LIBRARY_ROOTS = tuple(
    sorted(
        {
            os.path.realpath(p)
            for p in (
                sysconfig.get_paths()["stdlib"],
                sysconfig.get_paths()["platstdlib"],
                sysconfig.get_paths()["purelib"],
                sysconfig.get_paths()["platlib"],
                sys.prefix,
                sys.base_prefix,
            )
            if p
        }
    )
)
_DYNAMIC_NAMES = {
    "globals": "globals()",
    "vars": "vars()",
    "eval": "eval()",
    "exec": "exec()",
    "__import__": "__import__()",
    "import_module": "importlib.import_module()",
    "__builtins__": "__builtins__",
}
_ATTRIBUTE_LOOKUPS = frozenset(
    {"getattr", "hasattr", "setattr", "delattr", "attrgetter", "methodcaller"}
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_IPYTHON_NAMES = re.compile(r"_(i{0,3}|i?\d+|oh|ih|dh)?\Z|In\Z|Out\Z|exit\Z|quit\Z|get_ipython\Z")
# Members that say nothing about behaviour (or, like the ABC cache, cannot be hashed).
_SKIPPED_MEMBERS = frozenset({"__dict__", "__weakref__", "__module__", "__qualname__", "_abc_impl"})

_LOCK = threading.Lock()
# id(code) -> (code, info): the code object is kept alive, so its id is never reused.
_CODE_INFO: dict[int, tuple[types.CodeType, CodeInfo]] = {}
# path -> (stat signature, digest of the module's AST)
_SOURCE_DIGESTS: dict[str, tuple[tuple[int, ...], str]] = {}
_PROJECT_FILES: dict[tuple[str, str], bool] = {}
_WHERE: dict[tuple[str, str], str] = {}
_IMPORTS: dict[str, tuple[tuple[int, ...], dict[str, tuple[str, str]]]] = {}
_ABSENT = object()


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
class CodeInfo:
    """What a code object contributes, independent of the values its names are bound to."""

    digest: str
    names: frozenset[str]
    dynamic: tuple[str, ...]
    imports: tuple[str, ...] = ()


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
            else:
                known = not any(resolved.startswith(lib + os.sep) for lib in _LIBRARY_ROOTS)
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


# ---------------------------------------------------------------------------- code objects
def _const_bytes(value: Any) -> bytes:
    if isinstance(value, types.CodeType):
        return b"C" + _code_digest(value).encode()
    if type(value) in (tuple, frozenset) and any(isinstance(v, types.CodeType) for v in value):
        return b"(" + b",".join(_const_bytes(v) for v in value) + b")"
    try:
        return canonical_bytes(value)
    except TypeError:
        return repr(value).encode()  # Ellipsis and other compiler constants


def _code_digest(code: types.CodeType) -> str:
    """Hash of what a code object does: bytecode, constants, names; not lines or file."""
    h = hashlib.sha256()
    h.update(
        repr(
            (
                code.co_name,
                code.co_argcount,
                code.co_posonlyargcount,
                code.co_kwonlyargcount,
                code.co_flags,
                code.co_names,
                code.co_varnames,
                code.co_freevars,
                code.co_cellvars,
            )
        ).encode()
    )
    h.update(code.co_code)
    h.update(code.co_exceptiontable)
    for const in code.co_consts:
        h.update(b"\x00" + _const_bytes(const))
    return h.hexdigest()


def _walk_code(code: types.CodeType) -> Iterable[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _walk_code(const)


def _dynamic_attribute_lookup(code: types.CodeType) -> bool:
    """Whether `getattr` & co. are used with a name that is not a string literal."""
    loads = sum(
        1
        for c in _walk_code(code)
        for ins in dis.get_instructions(c)
        if ins.opname.startswith("LOAD") and ins.argval in _ATTRIBUTE_LOOKUPS
    )
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(code)))
    except (OSError, TypeError, SyntaxError, ValueError):
        return True  # no source to check: assume the worst
    calls = 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name not in _ATTRIBUTE_LOOKUPS:
            continue
        calls += 1
        position = 0 if name in ("attrgetter", "methodcaller") else 1
        args = node.args
        if len(args) <= position or any(isinstance(a, ast.Starred) for a in args):
            return True
        literal = args[position]
        if not (isinstance(literal, ast.Constant) and isinstance(literal.value, str)):
            return True
    # The source must account for every lookup in the bytecode (it may be newer on disk).
    return loads > calls


def _imports(code: types.CodeType) -> tuple[str, ...]:
    """Modules imported inside the code (``import a.b``, ``from .x import y`` in a body),
    relative ones with their leading dots."""
    found = []
    for c in _walk_code(code):
        previous: list[Any] = []
        for ins in dis.get_instructions(c):
            if ins.opname == "IMPORT_NAME":
                level = previous[-2] if len(previous) >= 2 and isinstance(previous[-2], int) else 0
                found.append("." * level + str(ins.argval))
            previous.append(ins.argval if ins.opname == "LOAD_CONST" else None)
    return tuple(found)


def code_info(code: types.CodeType) -> CodeInfo:
    """The (memoized) digest, names and dynamic-lookup reasons of a code object."""
    key = id(code)
    with _LOCK:
        entry = _CODE_INFO.get(key)
    if entry is not None and entry[0] is code:
        return entry[1]
    names: set[str] = set()
    for c in _walk_code(code):
        names.update(c.co_names)
        names.update(
            s for s in c.co_consts if isinstance(s, str) and _IDENTIFIER.match(s) is not None
        )
    dynamic = [reason for name, reason in _DYNAMIC_NAMES.items() if name in names]
    if "sys" in names and "modules" in names:
        dynamic.append("sys.modules")
    if not names.isdisjoint(_ATTRIBUTE_LOOKUPS) and _dynamic_attribute_lookup(code):
        dynamic.append("getattr() with a computed name")
    info = CodeInfo(_code_digest(code), frozenset(names), tuple(dynamic), _imports(code))
    with _LOCK:
        _CODE_INFO[key] = (code, info)
    return info


def _import_origins(filename: str) -> dict[str, tuple[str, str]]:
    """Top-level ``from X import a as b`` of a module file: ``{b: (X, a)}`` (X relative
    names kept with their leading dots), memoized by path and stat signature."""
    try:
        stat = os.stat(filename)
    except OSError:
        return {}
    signature = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)
    with _LOCK:
        entry = _IMPORTS.get(filename)
    if entry is not None and entry[0] == signature:
        return entry[1]
    origins: dict[str, tuple[str, str]] = {}
    try:
        with open(filename, "rb") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError, ValueError):
        tree = ast.Module(body=[], type_ignores=[])
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            source = "." * node.level + (node.module or "")
            for alias in node.names:
                origins[alias.asname or alias.name] = (source, alias.name)
    with _LOCK:
        _IMPORTS[filename] = (signature, origins)
    return origins


def defining_module(module: str, name: str, value: Any) -> tuple[str, str]:
    """Where a module-level value bound as `module.name` was defined: follows
    ``from X import name`` chains while X holds the very same object."""
    for _ in range(8):
        current = sys.modules.get(module)
        filename = getattr(current, "__file__", None)
        if not filename or not filename.endswith(".py"):
            break
        origin = _import_origins(filename).get(name)
        if origin is None:
            break
        source, original = origin
        try:
            resolved = importlib.util.resolve_name(
                source, getattr(current, "__package__", None) or ""
            )
        except (ImportError, ValueError):
            break
        holder = sys.modules.get(resolved)
        if holder is None or vars(holder).get(original, _ABSENT) is not value:
            break
        module, name = resolved, original
    return module, name


def module_source_digest(filename: str | None) -> str | None:
    """Hash of a module file's AST (comments and formatting do not count), or None."""
    if not filename or not filename.endswith(".py"):
        return None
    try:
        stat = os.stat(filename)
    except OSError:
        return None
    signature = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)
    with _LOCK:
        entry = _SOURCE_DIGESTS.get(filename)
    if entry is not None and entry[0] == signature:
        return entry[1]
    try:
        with open(filename, "rb") as handle:
            tree = ast.parse(handle.read())
        digest = hashlib.sha256(ast.dump(tree).encode()).hexdigest()
    except (OSError, SyntaxError, ValueError):
        with open(filename, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
    with _LOCK:
        _SOURCE_DIGESTS[filename] = (signature, digest)
    return digest


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
        for label, value in (
            ("defaults", (fn.__defaults__, fn.__kwdefaults__)),
            ("closure", tuple(cells)),
            ("attributes", dict(vars(fn))),
        ):
            if value in ((None, None), (), {}):
                continue
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
        return token

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

    def _import_project_module(self, name: str) -> types.ModuleType | None:
        """Import a project module the step imports in its body but nothing has imported
        yet (the step will, when it runs); library modules are only named."""
        try:
            spec = importlib.util.find_spec(name)
        except Exception:  # a parent package failed to import, or a bad name
            spec = None
        origin = getattr(spec, "origin", None)
        if spec is None or not origin:
            return None
        if not (
            name.partition(".")[0] in self.scope.packages or self.scope.is_project_file(origin)
        ):
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
