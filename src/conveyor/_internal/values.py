"""Small value conversions shared across layers."""

from __future__ import annotations

from typing import Any


def to_python(value: Any) -> Any:
    """A numpy scalar as the equal Python value (JSON-able); anything else unchanged."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value
