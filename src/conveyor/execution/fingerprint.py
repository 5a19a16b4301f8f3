"""Code fingerprints for cache keys.

A step's fingerprint covers its own source and, transitively, the project-local functions,
classes, modules and simple constants it refers to: change a helper in another module of
the project and every step using it gets a new key. Library code (site-packages, the
standard library) is not hashed: pin libraries with `cache_version` if their upgrades
should invalidate results.
"""

from __future__ import annotations

import hashlib
import inspect
import marshal
import sys
import sysconfig
import threading
import types
from pathlib import Path
from typing import Any

_LIBRARY_ROOTS = tuple(
    {
        str(Path(p).resolve())
        for p in (
            sysconfig.get_paths()["stdlib"],
            sysconfig.get_paths()["purelib"],
            sysconfig.get_paths()["platlib"],
            sys.prefix,
            sys.base_prefix,
        )
        if p
    }
)
# Values keep the function alive so its id cannot be reused by another object.
_CACHE: dict[tuple[int, str], tuple[Any, str]] = {}
_CACHE_LOCK = threading.Lock()
_SIMPLE = (int, float, str, bytes, bool, type(None))


def _is_project_file(filename: str | None, root: str) -> bool:
    if not filename:
        return False
    if filename.startswith("<"):  # notebooks, exec'd code: always the user's own
        return True
    resolved = str(Path(filename).resolve())
    if "site-packages" in resolved or "dist-packages" in resolved:
        return False
    if resolved.startswith(root):
        return True
    return not any(resolved.startswith(lib) for lib in _LIBRARY_ROOTS)


def _is_project(obj: Any, root: str) -> bool:
    module_name = getattr(obj, "__module__", None)
    if module_name is None:
        return False
    if module_name == "__main__":
        return True
    if module_name.split(".")[0] == "conveyor":
        return False
    module = sys.modules.get(module_name)
    return _is_project_file(getattr(module, "__file__", None), root)


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        if code is not None:
            return marshal.dumps(code).hex()
        return repr(obj)


class _Walker:
    def __init__(self, root: str) -> None:
        self.root = root
        self.parts: list[str] = []
        self.seen: set[int] = set()

    def visit(self, obj: Any) -> None:
        obj = getattr(obj, "fn", obj) if type(obj).__name__ == "Step" else obj
        if id(obj) in self.seen:
            return
        self.seen.add(id(obj))
        if isinstance(obj, (types.FunctionType, types.MethodType)):
            function = obj.__func__ if isinstance(obj, types.MethodType) else obj
            self.parts.append(
                f"fn:{function.__module__}.{function.__qualname__}\n{_source(function)}"
            )
            self._refs(function.__code__, function.__globals__)
            for cell in function.__closure__ or ():
                try:
                    value = cell.cell_contents
                except ValueError:
                    continue
                self._value(value, f"closure:{function.__qualname__}")
        elif isinstance(obj, type):
            self.parts.append(f"class:{obj.__module__}.{obj.__qualname__}\n{_source(obj)}")
            for member in vars(obj).values():
                target = (
                    member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                )
                if isinstance(target, types.FunctionType):
                    self._refs(target.__code__, target.__globals__)

    def _value(self, value: Any, label: str) -> None:
        if isinstance(value, _SIMPLE) or (
            isinstance(value, tuple) and all(isinstance(v, _SIMPLE) for v in value)
        ):
            self.parts.append(f"{label}={value!r}")
        elif (
            isinstance(value, (types.FunctionType, type)) or type(value).__name__ == "Step"
        ) and _is_project(getattr(value, "fn", value), self.root):
            self.visit(value)

    def _refs(self, code: types.CodeType, namespace: dict[str, Any]) -> None:
        names = _code_names(code)
        module_name = namespace.get("__name__", "")
        module = sys.modules.get(module_name)
        local_module = module_name == "__main__" or _is_project_file(
            getattr(module, "__file__", None) or namespace.get("__file__"), self.root
        )
        for name in sorted(names):
            if name not in namespace:
                continue
            value = namespace[name]
            if isinstance(value, types.ModuleType):
                if _is_project_file(getattr(value, "__file__", None), self.root) and (
                    value.__name__.split(".")[0] != "conveyor"
                ):
                    for attr in sorted(names):
                        if hasattr(value, attr):
                            self._value(getattr(value, attr), f"{value.__name__}.{attr}")
            elif local_module and isinstance(value, _SIMPLE):
                self.parts.append(f"global:{module_name}.{name}={value!r}")
            else:
                self._value(value, f"{module_name}.{name}")


def fingerprint(fn: Any, root: str | Path) -> str:
    """sha256 over the source of `fn` and the project-local code it reaches.

    Results are memoized per function object for the life of the process.
    """
    root_text = str(Path(root).resolve())
    key = (id(fn), root_text)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached[1]
    walker = _Walker(root_text)
    walker.visit(fn)
    digest = hashlib.sha256("\n\x00".join(walker.parts).encode()).hexdigest()
    with _CACHE_LOCK:
        _CACHE[key] = (fn, digest)
    return digest
