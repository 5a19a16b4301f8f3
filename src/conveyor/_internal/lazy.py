"""Import optional dependencies inside the module that needs them, with an install hint."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from conveyor.exceptions import ConfigError


def require(module: str, extra: str) -> ModuleType:
    """Import `module` or raise a ConfigError naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"This feature needs the optional dependency {module!r}. "
            f"Install it with: pip install 'conveyor[{extra}]'"
        ) from exc


def lazy_exports(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__`` and ``__dir__`` that import public names on first use.

    Args:
        package: The package's ``__name__`` (for the error message).
        exports: Public name -> module defining it.
        namespace: The package's ``globals()``: a resolved name is cached there, so the
            next access does not come back here.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(namespace.get("__all__", exports))

    return __getattr__, __dir__


# Packages of the array libraries scikit-learn's vendored array-API layer wraps. Importing
# `skops.io` walks every scikit-learn package (`sklearn.utils.all_estimators`), and walking
# a package imports it: `sklearn.externals.array_api_compat.torch` runs `from torch import
# *`, so every process that saved or loaded a scikit-learn model paid for importing torch
# (seconds, hundreds of MB) whenever torch was installed. The walk ignores those packages'
# contents anyway, so refusing the import to them, and to nobody else, changes nothing but
# the cost.
_ARRAY_LIBRARIES = frozenset({"torch", "dask", "cupy", "jax", "sparse", "ndonnx"})
_VENDORED_COMPAT = "sklearn.externals.array_api_compat."


class _SkipArrayLibraries:
    """A meta-path finder refusing array libraries to sklearn's vendored compat modules."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] not in _ARRAY_LIBRARIES:
            return None
        frame = sys._getframe(1)
        while frame is not None:
            if str(frame.f_globals.get("__name__", "")).startswith(_VENDORED_COMPAT):
                raise ModuleNotFoundError(f"{name} is not needed here", name=name)
            frame = frame.f_back  # type: ignore[assignment]
        return None


_SKOPS_LOCK = threading.Lock()


def import_skops_io() -> ModuleType:
    """``skops.io``, imported without importing torch, dask.array or other array libraries.

    Only the import of ``skops.io`` itself is guarded, and only imports made by
    scikit-learn's vendored array-API compatibility modules are refused: user code (and
    scikit-learn with array-API dispatch enabled) imports torch as usual.
    """
    module = sys.modules.get("skops.io")
    if module is not None:
        return module
    with _SKOPS_LOCK:
        finder = _SkipArrayLibraries()
        sys.meta_path.insert(0, finder)  # type: ignore[arg-type]
        try:
            return importlib.import_module("skops.io")
        finally:
            sys.meta_path.remove(finder)  # type: ignore[arg-type]
