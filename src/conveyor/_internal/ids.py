"""Sortable unique ids (ULID layout: 48-bit milliseconds + 80 random bits, base32)."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LOCK = threading.Lock()
_last = 0


def new_id() -> str:
    """A 26-character id that sorts by creation time (millisecond resolution).

    Within one process ids are strictly increasing: a second id in the same millisecond
    is the previous one plus one (monotonic ULID), so steps created in one millisecond
    still list in the order they were created.
    """
    global _last
    now = time.time_ns() // 1_000_000
    with _LOCK:
        value = now << 80 | int.from_bytes(os.urandom(10), "big")
        if value <= _last:
            value = _last + 1
        _last = value
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
