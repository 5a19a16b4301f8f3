"""The materializer interface and the registry that picks one by type."""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol, runtime_checkable

from conveyor.exceptions import MaterializerError

logger = logging.getLogger("conveyor.materializers")


@runtime_checkable
class Materializer(Protocol):
    """Converts values of some types to bytes and back.

    Attributes:
        name: Unique name recorded with each artifact (selects the loader later).
        version: Bump when the byte format changes; part of cache keys.

    Optionally, ``reuse_identical = True`` says that saving costs much more than
    pickling the value: a value whose pickled state equals one this process stored
    before is then not saved again while its blob is in the store. Set it only when
    `save` and `summary` depend on nothing but the value's state.
    """

    name: str
    version: str

    def save(self, value: Any) -> bytes: ...

    def load(self, data: bytes, summary: dict[str, Any]) -> Any: ...

    def summary(self, value: Any, data: bytes) -> dict[str, Any]:
        """Small JSON-able description (shape, columns, dtypes, length) for the UI/CLI."""
        ...


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class MaterializerRegistry:
    """Maps types (or fully qualified type names, to avoid importing heavy libraries) to
    materializers. Lookups walk the value's MRO, so subclasses inherit a registration."""

    def __init__(self) -> None:
        self._by_type: dict[type | str, Materializer] = {}
        self._by_name: dict[str, Materializer] = {}
        self._fallback: Materializer | None = None
        self.self_serializing: Materializer | None = None
        # Tried before the fallback: dicts, lists and tuples of frames and arrays.
        self.container: Materializer | None = None
        self._lock = threading.Lock()

    def register(self, key: type | str, materializer: Materializer) -> None:
        with self._lock:
            self._by_type[key] = materializer
            self._by_name[materializer.name] = materializer
            fallback = getattr(materializer, "fallback", None)
            if fallback is not None:
                self._by_name[fallback.name] = fallback

    def dump(self, value: Any) -> tuple[Materializer, bytes, dict[str, Any]]:
        """Serialize `value`: the materializer used, its bytes and its summary.

        Raises:
            MaterializerError: no registered materializer can store the value.
        """
        materializer = self.for_value(value)
        try:
            data = materializer.save(value)
        except MaterializerError:
            raise
        except Exception as exc:
            fallback = getattr(materializer, "fallback", None)
            if fallback is None:
                raise MaterializerError(
                    f"The {materializer.name!r} materializer cannot store a "
                    f"{qualified_name(type(value))}: {exc}. Register a materializer for this "
                    "type with conveyor.register_materializer."
                ) from exc
            logger.warning(
                "%s cannot store %s (%s); using %s instead.",
                materializer.name,
                qualified_name(type(value)),
                exc,
                fallback.name,
            )
            materializer = fallback
            data = materializer.save(value)
        return materializer, data, materializer.summary(value, data)

    def set_container(self, materializer: Materializer) -> None:
        """The materializer for containers no type-registered one accepts."""
        self.container = materializer
        self._by_name[materializer.name] = materializer

    @property
    def fallback(self) -> Materializer | None:
        """The materializer of values nothing else stores (None: such values fail)."""
        return self._fallback

    def set_fallback(self, materializer: Materializer) -> None:
        self._fallback = materializer
        self._by_name[materializer.name] = materializer

    def by_name(self, name: str) -> Materializer:
        try:
            return self._by_name[name]
        except KeyError:
            raise MaterializerError(
                f"No materializer named {name!r} is registered, so this artifact cannot be "
                "loaded. Register it (conveyor.register_materializer) before loading; known: "
                + ", ".join(sorted(self._by_name))
                + "."
            ) from None

    def for_value(self, value: Any) -> Materializer:
        if self.self_serializing is not None and getattr(
            type(value), "__conveyor_artifact__", False
        ):
            return self.self_serializing
        for cls in type(value).__mro__:
            materializer = self._by_type.get(cls) or self._by_type.get(qualified_name(cls))
            if materializer is not None and getattr(materializer, "accepts", lambda v: True)(value):
                return materializer
        container = self.container
        if container is not None and getattr(container, "accepts", lambda v: False)(value):
            return container
        if self._fallback is None:
            raise MaterializerError(
                f"No materializer for values of type {qualified_name(type(value))}."
            )
        return self._fallback

    def for_type(self, cls: Any) -> Materializer | None:
        """The materializer a value annotated `cls` would get, when the annotation says."""
        if not isinstance(cls, type):
            return None
        for base in cls.__mro__:
            materializer = self._by_type.get(base) or self._by_type.get(qualified_name(base))
            if materializer is not None:
                return materializer
        return None


_DEFAULT: MaterializerRegistry | None = None


def default_registry() -> MaterializerRegistry:
    """The process-wide registry with the built-in materializers."""
    global _DEFAULT
    if _DEFAULT is None:
        from conveyor.materializers.builtin import install

        registry = MaterializerRegistry()
        install(registry)
        _DEFAULT = registry
    return _DEFAULT


def register_materializer(key: type | str, materializer: Materializer) -> None:
    """Register `materializer` for values of type `key` (or a 'module.QualName' string).

    Example:
        >>> class TextMaterializer:
        ...     name, version = "text", "1"
        ...     def save(self, value): return value.text.encode()
        ...     def load(self, data, summary): return Document(data.decode())
        ...     def summary(self, value): return {"chars": len(value.text)}
        >>> register_materializer(Document, TextMaterializer())
    """
    default_registry().register(key, materializer)
