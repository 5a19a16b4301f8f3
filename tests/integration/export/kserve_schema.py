"""A strict check of KServe manifests against the API models the `kserve` wheel ships.

The KServe Python SDK (PyPI ``kserve``) carries the OpenAPI definition of its CRDs as
generated model classes: per type, ``openapi_types`` (field -> type) and ``attribute_map``
(field -> JSON key), and a ``must not be `None``` check per required field. The wheel is
read as text (``ast.literal_eval`` of those two literals, never imported: its dependencies
pin pandas < 3), and the Kubernetes types it refers to (``V1Container``, ``V1Volume`` ...)
come the same way from the installed ``kubernetes`` client. A document is then checked as
a strict API server would: every key known, every required key present, every value of its
declared type.
"""

from __future__ import annotations

import ast
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_REQUIRED = re.compile(r"Invalid value for `(\w+)`, must not be `None`")
_PRIMITIVES = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "datetime": (str,),
    "date": (str,),
}


@dataclass(frozen=True)
class Model:
    """One API type: JSON key -> type, and the JSON keys that must be present."""

    fields: dict[str, str]
    required: frozenset[str]


def _models_in(source: str) -> Iterator[tuple[str, Model]]:
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        literals: dict[str, dict[str, str]] = {}
        for item in node.body:
            if (
                isinstance(item, ast.Assign)
                and len(item.targets) == 1
                and isinstance(item.targets[0], ast.Name)
                and item.targets[0].id in ("openapi_types", "attribute_map")
            ):
                literals[item.targets[0].id] = ast.literal_eval(item.value)
        if set(literals) != {"openapi_types", "attribute_map"}:
            continue
        types, keys = literals["openapi_types"], literals["attribute_map"]
        required = frozenset(keys[name] for name in _REQUIRED.findall(source) if name in keys)
        yield node.name, Model({keys[n]: types[n] for n in types}, required)


def load_models(kserve_wheel: Path, kubernetes_models: Path) -> dict[str, Model]:
    """Every model of the Kubernetes client folder and of the kserve wheel, by class name."""
    models: dict[str, Model] = {}
    for path in sorted(kubernetes_models.glob("v1*.py")):
        models.update(_models_in(path.read_text()))
    with zipfile.ZipFile(kserve_wheel) as wheel:
        for name in sorted(wheel.namelist()):
            if name.startswith("kserve/models/v1") and name.endswith(".py"):
                models.update(_models_in(wheel.read(name).decode()))
    return models


def validate(document: dict[str, Any], models: dict[str, Model]) -> list[str]:
    """Problems of `document` as ``path: message`` lines; empty when it is valid."""
    group, _, version = str(document.get("apiVersion", "")).rpartition("/")
    if group != "serving.kserve.io":
        return [f"apiVersion: {document.get('apiVersion')!r} is not a KServe API version"]
    name = f"{version.capitalize()}{document.get('kind')}"
    if name not in models:
        return [f"kind: no KServe type {name} in the wheel"]
    return list(_check(document, name, "", models))


def _check(value: Any, kind: str, path: str, models: dict[str, Model]) -> Iterator[str]:
    where = path or "."
    if kind == "object":
        return
    if kind in _PRIMITIVES:
        is_bool = isinstance(value, bool)
        if not isinstance(value, _PRIMITIVES[kind]) or is_bool != (kind == "bool"):
            yield f"{where}: expected {kind}, got {type(value).__name__}"
        return
    inner = re.fullmatch(r"list\[(.+)\]", kind)
    if inner:
        if not isinstance(value, list):
            yield f"{where}: expected a list, got {type(value).__name__}"
            return
        for i, item in enumerate(value):
            yield from _check(item, inner.group(1), f"{path}[{i}]", models)
        return
    inner = re.fullmatch(r"dict\(str, (.+)\)", kind)
    if inner:
        if not isinstance(value, dict):
            yield f"{where}: expected a mapping, got {type(value).__name__}"
            return
        for key, item in value.items():
            yield from _check(item, inner.group(1), f"{path}.{key}", models)
        return
    model = models.get(kind)
    if model is None:
        yield f"{where}: type {kind} is in neither the kserve wheel nor the kubernetes client"
        return
    if not isinstance(value, dict):
        yield f"{where}: expected a {kind} mapping, got {type(value).__name__}"
        return
    for key in sorted(model.required - set(value)):
        yield f"{path}.{key}: required by {kind}"
    for key, item in value.items():
        if key not in model.fields:
            yield f"{path}.{key}: not a field of {kind}"
        else:
            yield from _check(item, model.fields[key], f"{path}.{key}", models)
