"""Import optional dependencies inside the module that needs them, with an install hint."""

from __future__ import annotations

import importlib
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
