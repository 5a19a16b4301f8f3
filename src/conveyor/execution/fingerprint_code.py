"""Code objects and module sources for fingerprints: normalized hashes (comments and
formatting do not count), names, dynamic lookups, and where imported values come from.

Only immutable inputs are memoized: each code object by identity (kept alive so its id is
never reused) and each source file by path, size, inode and times.
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
import textwrap
import threading
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from conveyor._internal.hashing import canonical_bytes

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
T = TypeVar("T")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MODULE_NAME = re.compile(r"\.*[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_LOCK = threading.Lock()
# id(code) -> (code, info): the code object is kept alive, so its id is never reused.
_CODE_INFO: dict[int, tuple[types.CodeType, CodeInfo]] = {}
# path -> (stat signature, digest of the module's AST)
_SOURCE_DIGESTS: dict[str, tuple[tuple[int, ...], str]] = {}
_IMPORTS: dict[str, tuple[tuple[int, ...], dict[str, tuple[str, str]]]] = {}
_ABSENT = object()


@dataclass(frozen=True)
class CodeInfo:
    """What a code object contributes, independent of the values its names are bound to."""

    digest: str
    names: frozenset[str]
    dynamic: tuple[str, ...]
    imports: tuple[str, ...] = ()
    strings: frozenset[str] = frozenset()


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
    strings: set[str] = set()
    for c in _walk_code(code):
        names.update(c.co_names)
        strings.update(
            s for s in c.co_consts if isinstance(s, str) and _MODULE_NAME.match(s) is not None
        )
    names.update(s for s in strings if _IDENTIFIER.match(s) is not None)
    dynamic = [reason for name, reason in _DYNAMIC_NAMES.items() if name in names]
    if "sys" in names and "modules" in names:
        dynamic.append("sys.modules")
    if not names.isdisjoint(_ATTRIBUTE_LOOKUPS) and _dynamic_attribute_lookup(code):
        dynamic.append("getattr() with a computed name")
    info = CodeInfo(
        _code_digest(code), frozenset(names), tuple(dynamic), _imports(code), frozenset(strings)
    )
    with _LOCK:
        _CODE_INFO[key] = (code, info)
    return info


def stat_memo(
    memo: dict[str, tuple[tuple[int, ...], T]], filename: str, compute: Callable[[str], T]
) -> T | None:
    """`compute(filename)`, memoized by path while the file's size, inode, modification
    and change times stay the same (the change time cannot be set back by tools that keep
    modification times); None when the file cannot be read."""
    try:
        stat = os.stat(filename)
    except OSError:
        return None
    signature = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)
    with _LOCK:
        entry = memo.get(filename)
    if entry is not None and entry[0] == signature:
        return entry[1]
    try:
        value = compute(filename)
    except OSError:
        return None
    with _LOCK:
        memo[filename] = (signature, value)
    return value


def _parse_imports(filename: str) -> dict[str, tuple[str, str]]:
    try:
        with open(filename, "rb") as handle:
            tree = ast.parse(handle.read())
    except (SyntaxError, ValueError):
        return {}
    origins: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            source = "." * node.level + (node.module or "")
            for alias in node.names:
                origins[alias.asname or alias.name] = (source, alias.name)
    return origins


def _import_origins(filename: str) -> dict[str, tuple[str, str]]:
    """Top-level ``from X import a as b`` of a module file: ``{b: (X, a)}`` (X relative
    names kept with their leading dots)."""
    return stat_memo(_IMPORTS, filename, _parse_imports) or {}


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


def _source_digest(filename: str) -> str:
    with open(filename, "rb") as handle:
        source = handle.read()
    try:
        return hashlib.sha256(ast.dump(ast.parse(source)).encode()).hexdigest()
    except (SyntaxError, ValueError):
        return hashlib.sha256(source).hexdigest()


def module_source_digest(filename: str | None) -> str | None:
    """Hash of a module file's AST (comments and formatting do not count), or None."""
    if not filename or not filename.endswith(".py"):
        return None
    return stat_memo(_SOURCE_DIGESTS, filename, _source_digest)


__all__ = ["CodeInfo", "code_info", "defining_module", "module_source_digest", "stat_memo"]
