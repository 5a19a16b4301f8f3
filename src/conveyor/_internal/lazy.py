"""Import optional dependencies inside the module that needs them, with an install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

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
