"""Turn step values into bytes and back, chosen by the value's type."""

from conveyor.materializers.base import (
    Materializer,
    MaterializerRegistry,
    default_registry,
    register_materializer,
)

__all__ = ["Materializer", "MaterializerRegistry", "default_registry", "register_materializer"]
