"""Find a pipeline from a target like ``pipelines/training.py:training`` or ``pkg.mod:name``."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
from pathlib import Path
from typing import Any

from conveyor.core.pipeline import Pipeline
from conveyor.exceptions import ConfigError, UnknownParameterError, did_you_mean


def load_pipeline(target: str, root: Path) -> Pipeline[Any, Any]:
    """Import the module named by `target` (with `root` on sys.path) and return the pipeline.

    Raises:
        ConfigError: the file, module or attribute does not exist, or is not a pipeline.
    """
    location, _, attribute = target.rpartition(":")
    if not location:
        raise ConfigError(
            f"{target!r} does not name a pipeline. Use FILE.py:NAME or package.module:NAME, "
            "e.g. pipelines/training.py:training."
        )
    root = root.resolve()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    if location.endswith(".py") or "/" in location:
        path = Path(location)
        if not path.is_absolute():
            path = (Path.cwd() / path).resolve()
        if not path.is_file():
            raise ConfigError(f"No such pipeline file: {location}.")
        try:
            relative = path.with_suffix("").relative_to(root)
            module_name = ".".join(relative.parts)
        except ValueError:
            module_name = path.stem
            if str(path.parent) not in sys.path:
                sys.path.insert(0, str(path.parent))
        module = sys.modules.get(module_name)
        if module is None or getattr(module, "__file__", None) != str(path):
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ConfigError(f"Cannot import {path}.")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[module_name]
                raise
    else:
        try:
            module = importlib.import_module(location)
        except ModuleNotFoundError as exc:
            raise ConfigError(f"Cannot import module {location!r}: {exc}.") from exc
    value = getattr(module, attribute, None)
    if value is None:
        names = [n for n, v in vars(module).items() if isinstance(v, Pipeline)]
        raise ConfigError(
            f"{location} has no attribute {attribute!r}."
            + did_you_mean(attribute, names)
            + (f" Pipelines there: {', '.join(names)}." if names else "")
        )
    if not isinstance(value, Pipeline):
        raise ConfigError(
            f"{target} is a {type(value).__name__}, not a pipeline. Decorate it with @pipeline."
        )
    return value


def _convert(raw: str, annotation: Any, name: str) -> Any:
    if annotation is str or annotation == "str":
        return raw
    if annotation in (bool, "bool"):
        lowered = raw.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"Parameter {name!r} must be true or false. Got {raw!r} instead.")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    if annotation in (int, "int") and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"Parameter {name!r} must be an int. Got {raw!r} instead.")
    if annotation in (float, "float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"Parameter {name!r} must be a number. Got {raw!r} instead.")
        value = float(value)
    return value


def parse_params(pipeline: Pipeline[Any, Any], pairs: list[str]) -> dict[str, Any]:
    """Turn ``key=value`` strings into typed parameters, using the pipeline's annotations.

    Raises:
        ConfigError: a pair without '=' or a value of the wrong type.
        UnknownParameterError: a key the pipeline does not take (with a suggestion).
    """
    known = pipeline.signature.parameters
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ConfigError(f"Parameter {pair!r} must look like key=value.")
        key = key.strip()
        if key not in known:
            raise UnknownParameterError(key, f"pipeline {pipeline.name!r}", list(known))
        annotation = known[key].annotation
        if (
            annotation is inspect.Parameter.empty
            and known[key].default is not inspect.Parameter.empty
        ):
            annotation = type(known[key].default)
        out[key] = _convert(raw, annotation, key)
    return out
