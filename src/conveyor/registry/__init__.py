"""The model registry: named models, integer versions, aliases, audit log, lineage."""

from __future__ import annotations

from conveyor.registry.refs import ModelRef, ModelVersion, RegistryEvent
from conveyor.registry.registry import (
    Registry,
    get_registry,
    history,
    load_model,
    promote,
    register_model,
    resolve,
    rollback,
)

register = register_model
load = load_model

__all__ = [
    "ModelRef",
    "ModelVersion",
    "Registry",
    "RegistryEvent",
    "get_registry",
    "history",
    "load",
    "load_model",
    "promote",
    "register",
    "register_model",
    "resolve",
    "rollback",
]
