"""Content hashes of the values a step's code reaches (module globals, defaults, closures).

Plain data (dicts, lists, tuples, sets, scalars) is hashed by its typed canonical bytes
(`conveyor._internal.hashing.canonical_bytes`). Everything else is walked: functions,
classes and modules become tokens of the code fingerprint (so a dict of callables follows
the code of each callable), ``functools.partial`` by function, arguments and keywords,
bound methods by function and instance, enums by member, dataclasses and instances of
project classes by class and attributes, and any other object by its pickled bytes (with
the functions and classes inside it replaced by their tokens). A value whose bytes pass
`max_bytes`, or that cannot be pickled, raises `Unhashable`: the caller hashes the source
of the defining module instead.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import io
import marshal
import pickle
import types
from typing import Any, Protocol

from conveyor._internal.hashing import canonical_bytes

DEFAULT_MAX_BYTES = 8 * 2**20
"""Values whose encoding passes this size are replaced by the source of their module."""
MAX_OBJECTS = 10_000
"""Likewise for values made of more objects than this (walking them would be slow)."""

_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})
_CONTAINERS = frozenset({dict, list, tuple, set, frozenset})
_BUILTIN_CALLABLES = (
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
)
_MAX_DEPTH = 60


class Unhashable(Exception):
    """A value that cannot be hashed by content (too large, or not picklable)."""


class CodeFollower(Protocol):
    """What the encoder asks of the code walker."""

    def token(self, obj: Any) -> str | None:
        """A stable token for a function, class, module or step (visiting its code), or
        None when `obj` is none of those."""

    def is_project_type(self, cls: type) -> bool:
        """Whether instances of `cls` are hashed by attributes (project classes)."""


def _spend(budget: list[int]) -> None:
    budget[1] -= 1
    if budget[1] < 0:
        raise Unhashable(f"is made of more than {MAX_OBJECTS:,} objects")


def _is_wrapper(value: Any) -> bool:
    return hasattr(value, "__wrapped__") and callable(value) and not isinstance(value, type)


def _token(text: str) -> str:  # the reducer of tokens inside pickles; never called
    return text


class _Sink(io.RawIOBase):
    """A write-only file that hashes what it receives and stops at a size."""

    def __init__(self, digest: Any, budget: list[int]) -> None:
        self.digest = digest
        self.budget = budget

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = memoryview(data).nbytes
        self.budget[0] -= size
        if self.budget[0] < 0:
            raise Unhashable("too large")
        self.digest.update(data)
        return size


class _TokenPickler(pickle.Pickler):
    def __init__(self, sink: _Sink, encoder: ValueEncoder) -> None:
        super().__init__(sink, protocol=5, buffer_callback=self._buffer)
        self.sink = sink
        self.encoder = encoder

    def _buffer(self, buffer: pickle.PickleBuffer) -> bool:
        self.sink.write(buffer.raw())
        return False

    def reducer_override(self, obj: Any) -> Any:
        if obj is _token:  # the reducer of the tokens themselves: pickled by name
            return NotImplemented
        token = self.encoder.follower.token(obj)
        if token is not None:
            return _token, (token,)
        if _is_wrapper(obj) or isinstance(obj, (types.MethodType, functools.partial)):
            return _token, (self.encoder.digest(obj),)
        return NotImplemented


class ValueEncoder:
    """Hashes values by content; one per fingerprint walk (it is not thread safe)."""

    def __init__(self, follower: CodeFollower, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.follower = follower
        self.max_bytes = max_bytes
        self._active: set[int] = set()

    def digest(self, value: Any) -> str:
        """sha256 of `value` by content.

        Raises:
            Unhashable: the value is larger than `max_bytes` or cannot be pickled.
        """
        kind = type(value)
        if kind in _SCALARS or kind in _CONTAINERS:
            try:
                data = canonical_bytes(value)
            except TypeError:
                pass
            else:
                if len(data) > self.max_bytes:
                    raise Unhashable(f"too large ({len(data):,} bytes)")
                return hashlib.sha256(data).hexdigest()
        digest = hashlib.sha256()
        self._encode(value, digest, [self.max_bytes, MAX_OBJECTS], 0)
        return digest.hexdigest()

    # ------------------------------------------------------------------ walking
    def _encode(self, value: Any, digest: Any, budget: list[int], depth: int) -> None:
        kind = type(value)
        if kind in _SCALARS:
            digest.update(marshal.dumps(value, 2))
            return
        if depth > _MAX_DEPTH:
            raise Unhashable("nested too deeply")
        if kind in _CONTAINERS:
            try:
                data = canonical_bytes(value)
            except TypeError:
                self._encode_container(value, digest, budget, depth)
            else:
                budget[0] -= len(data)
                if budget[0] < 0:
                    raise Unhashable("too large")
                digest.update(data)
            return
        token = self.follower.token(value)
        if token is not None:
            digest.update(b"T" + token.encode())
            return
        if id(value) in self._active:
            digest.update(b"R")  # a cycle back to an object being encoded
            return
        self._active.add(id(value))
        try:
            self._encode_object(value, digest, budget, depth)
        finally:
            self._active.discard(id(value))

    def _encode_container(self, value: Any, digest: Any, budget: list[int], depth: int) -> None:
        _spend(budget)
        if id(value) in self._active:
            digest.update(b"R")
            return
        self._active.add(id(value))
        try:
            kind = type(value)
            digest.update(b"%s%d:" % (kind.__name__.encode(), len(value)))
            if kind is dict:
                for key, item in value.items():
                    self._encode(key, digest, budget, depth + 1)
                    self._encode(item, digest, budget, depth + 1)
            elif kind is list or kind is tuple:
                for item in value:
                    self._encode(item, digest, budget, depth + 1)
            else:
                members = []
                for item in value:
                    member = hashlib.sha256()
                    self._encode(item, member, budget, depth + 1)
                    members.append(member.digest())
                digest.update(b"".join(sorted(members)))
        finally:
            self._active.discard(id(value))

    def _encode_object(self, value: Any, digest: Any, budget: list[int], depth: int) -> None:
        _spend(budget)
        kind = type(value)
        again = functools.partial(self._encode, digest=digest, budget=budget, depth=depth + 1)
        if isinstance(value, types.MethodType):
            digest.update(b"M")
            again(value.__func__)
            again(value.__self__)
        elif isinstance(value, _BUILTIN_CALLABLES):
            owner = getattr(value, "__self__", None)
            digest.update(
                b"B%s.%s"
                % (
                    str(getattr(value, "__module__", None) or type(owner).__name__).encode(),
                    str(getattr(value, "__qualname__", repr(value))).encode(),
                )
            )
            if owner is not None and not isinstance(owner, types.ModuleType):
                again(owner)
        elif kind is functools.partial:
            digest.update(b"P")
            again(value.func)
            again(value.args)
            again(value.keywords)
            again(dict(vars(value)))
        elif kind is types.MappingProxyType:
            digest.update(b"mappingproxy")
            again(dict(value))
        elif kind is dataclasses.Field:
            digest.update(b"Field")
            flags = (value.init, value.repr, value.hash, value.compare, value.kw_only)
            again((value.name, value.default, value.default_factory, flags))
            again(dict(value.metadata))
        elif kind is property:
            digest.update(b"p")
            again((value.fget, value.fset, value.fdel))
        elif kind is staticmethod or kind is classmethod:
            digest.update(kind.__name__.encode())
            again(value.__func__)
        elif kind is functools.cached_property:
            digest.update(b"cached_property")
            again(value.func)
        elif _is_wrapper(value):
            # functools.lru_cache / cache wrappers and other callable wrapper objects.
            digest.update(b"W")
            again(kind)
            again(value.__wrapped__)
            parameters = getattr(value, "cache_parameters", None)
            if callable(parameters):
                again(parameters())
        elif isinstance(value, enum.Enum):
            digest.update(b"E" + value.name.encode())
            again(kind)
            again(value.value)
        elif dataclasses.is_dataclass(value):
            digest.update(b"D")
            again(kind)
            again({f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)})
        elif self.follower.is_project_type(kind) and (
            hasattr(value, "__dict__") or hasattr(kind, "__slots__")
        ):
            digest.update(b"O")
            again(kind)
            again(dict(getattr(value, "__dict__", {})))
            slots = [s for c in kind.__mro__ for s in getattr(c, "__slots__", ())]
            again({s: getattr(value, s, None) for s in slots if isinstance(s, str)})
        else:
            self._pickle(value, digest, budget)

    def _pickle(self, value: Any, digest: Any, budget: list[int]) -> None:
        digest.update(b"K")
        try:
            _TokenPickler(_Sink(digest, budget), self).dump(value)
        except Unhashable:
            raise
        except Exception as exc:  # pickling runs user code (__reduce__): anything can fail
            raise Unhashable(
                f"cannot be pickled ({type(exc).__name__}: {str(exc)[:120]})"
            ) from None
