"""Canonical hashing of parameters and bytes."""

from __future__ import annotations

import gc
import hashlib
import json
import marshal
from typing import Any


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _default(value: Any) -> Any:
    # Stable forms for common non-JSON values found in parameters.
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, bytes):
        return {"__bytes__": value.hex()}
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not a canonical parameter")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default)


def hash_parts(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\x00")
    return h.hexdigest()


# ---------------------------------------------------------------------------- typed values
_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})
_SETS = frozenset({set, frozenset})
_NESTED = frozenset({dict, list, tuple, set, frozenset})


def _has_set(value: Any) -> bool:
    """Whether plain data holds a set anywhere (breadth first, at C speed per level)."""
    level = [value]
    while level:
        if not _SETS.isdisjoint(map(type, level)):
            return True
        level = [o for o in gc.get_referents(*level) if type(o) in _NESTED]
    return False


def _sorted_encoding(value: Any, out: list[bytes]) -> None:
    kind = type(value)
    if kind is dict:
        out.append(b"{%d:" % len(value))
        for key, item in value.items():
            _sorted_encoding(key, out)
            _sorted_encoding(item, out)
    elif kind is list or kind is tuple:
        out.append(b"[%d:" % len(value) if kind is list else b"(%d:" % len(value))
        for item in value:
            _sorted_encoding(item, out)
    elif kind in _SETS:  # iteration order is arbitrary: sort the encoded members
        members = []
        for item in value:
            part: list[bytes] = []
            _sorted_encoding(item, part)
            members.append(b"".join(part))
        out.append(b"<%d:" % len(members) if kind is set else b">%d:" % len(members))
        out.extend(sorted(members))
    else:
        out.append(marshal.dumps(value, 2))


def canonical_bytes(value: Any) -> bytes:
    """Canonical bytes of plain data that keep its types.

    ``[1, 2]`` and ``(1, 2)``, ``{1: "x"}`` and ``{"1": "x"}``, ``True`` and ``1``, ``1``
    and ``1.0`` all give different bytes; equal values of the same types give equal bytes
    in every process (sets are sorted; dicts keep their order, which code can observe).

    Raises:
        TypeError: `value` holds something other than None, bool, int, float, complex,
            str, bytes, list, tuple, dict, set and frozenset (exact types, no subclasses),
            or is nested too deeply.
    """
    try:
        # Version 2 writes no back-references, so the bytes depend on the value only.
        data = marshal.dumps(value, 2)
    except ValueError as exc:
        raise TypeError(f"{type(value).__name__} is not plain data: {exc}") from None
    if not _has_set(value):
        return b"m" + data
    out: list[bytes] = [b"s"]
    _sorted_encoding(value, out)
    return b"".join(out)


def typed_digest(value: Any) -> str:
    """sha256 of `canonical_bytes(value)`.

    Raises:
        TypeError: `value` is not plain data.
    """
    return hashlib.sha256(canonical_bytes(value)).hexdigest()
