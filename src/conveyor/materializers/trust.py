"""Which types a skops file may name: a fixed allow-list, plus what a database row vouches for.

skops loads without pickle, but it still imports and calls the types and functions that
the file names (a constructor node calls its type with arguments from the file). skops
trusts a default set (scikit-learn estimators, numpy arrays, ufuncs); everything else
must be trusted by the caller. conveyor never takes that list from the file itself. A
name is trusted when

- it is on the fixed allow-list: a class defined in one of the model flavors' libraries
  (scikit-learn, numpy, scipy.sparse/special/stats, LightGBM, XGBoost), a numpy or scipy
  ufunc, or a function defined in scikit-learn; outside the modules that read or write
  files, compile code or run tests; or
- the caller passes it: the list recorded in the database row of a registered model
  version or a stored artifact (written when conveyor made the bytes from a live object),
  or an explicit ``trusted=[...]`` from a user who has reviewed the file.

The allow-list is checked on the object a name resolves to, not on the text: a name such
as ``sklearn.some_module.system`` that resolves to ``os.system`` is refused.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Iterable
from typing import Any

# Top-level packages a name must start with before anything is imported to check it.
_LIBRARIES = frozenset({"sklearn", "numpy", "scipy", "lightgbm", "xgboost"})
# Where allowed classes may be defined (module prefixes).
_CLASS_MODULES = (
    "sklearn",
    "numpy",
    "scipy.sparse",
    "scipy.special",
    "scipy.stats",
    "lightgbm",
    "xgboost",
)
# Module name parts that read or write files, compile code or hold test helpers.
_EXCLUDED_PARTS = frozenset(
    {
        "testing",
        "_testing",
        "tests",
        "conftest",
        "f2py",
        "distutils",
        "_datasource",
        "npyio",
        "_npyio_impl",
        "format",
        "_format_impl",
        "ctypeslib",
        "io",
        "datasets",
        "externals",
        "_build_utils",
        "callback",
        "dask",
        "spark",
    }
)
# Classes of allowed modules that open, create or truncate files from their arguments.
_EXCLUDED_CLASSES = frozenset({"numpy.memmap", "numpy._core.memmap.memmap", "numpy.DataSource"})
# A few plain Python types scikit-learn objects carry, beyond skops' own defaults.
_PYTHON_TYPES = frozenset(
    {
        "builtins.bytes",
        "builtins.bytearray",
        "builtins.complex",
        "builtins.frozenset",
        "builtins.range",
        "builtins.slice",
        "collections.OrderedDict",
        "collections.defaultdict",
    }
)


def _excluded(module: str) -> bool:
    return any(part in _EXCLUDED_PARTS for part in module.split("."))


def _in(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _resolve(name: str) -> Any:
    module, _, attr = name.rpartition(".")
    if not module or module.split(".")[0] not in _LIBRARIES or _excluded(module):
        return None
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        return None


def allowed(name: str) -> bool:
    """Whether the fixed allow-list trusts `name` (``module.Name`` as skops reports it)."""
    if name in _PYTHON_TYPES:
        return True
    obj = _resolve(name)
    if obj is None:
        return False
    home = getattr(obj, "__module__", None)
    if not isinstance(home, str) or _excluded(home):
        return False
    if isinstance(obj, type):
        qualified = f"{home}.{obj.__qualname__}"
        return (
            _in(home, _CLASS_MODULES)
            and qualified not in _EXCLUDED_CLASSES
            and name not in _EXCLUDED_CLASSES
        )
    kind = type(obj)
    if f"{kind.__module__}.{kind.__qualname__}" == "numpy.ufunc":
        return True
    return callable(obj) and _in(home, ("sklearn",)) and type(obj).__name__ == "function"


def refused(names: Iterable[str], trusted: Collection[str] = ()) -> list[str]:
    """The names neither the allow-list nor `trusted` vouches for, sorted."""
    return sorted(n for n in set(names) if n not in trusted and not allowed(n))


def refusal_message(what: str, names: list[str]) -> str:
    """The one-line error for a refused load, naming the types and the explicit opt-in."""
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return (
        f"Refusing to load {what}: it names types that are neither on conveyor's allow-list "
        f"nor recorded in the database for these bytes: {shown}. Loading them could run "
        "code. If you trust where the file came from, opt in explicitly with "
        f"trusted={names[:10]!r} (Model.from_bytes / conveyor.training.model.load; "
        "`conveyor serve --trust NAME`)."
    )
