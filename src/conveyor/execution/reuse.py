"""Skip serializing a value identical to one this process has already stored.

Writing a DataFrame as Parquet costs several times what hashing it does, and a pipeline
run again in the same process (a notebook, a scheduler, a server) often produces the same
frame each time. A materializer that sets ``reuse_identical = True`` has each value it
stores fingerprinted: SHA-256 over its pickled state (protocol 5, array buffers hashed
where they lie), so type, values, index, dtypes and attributes all count. When the same
fingerprint was stored before by the same materializer and version, and its blob is still
in the store, the earlier content hash, size and summary are reused without serializing
again: identical state gives identical bytes. Nothing leaves the process; the memo holds
fingerprints only and forgets the oldest past `MAX_ENTRIES`.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections import OrderedDict
from typing import Any

from conveyor.materializers.base import Materializer

MAX_ENTRIES = 512
_LOCK = threading.Lock()
# Summaries are kept pickled: a fresh copy per recall for a fifth of what deepcopy costs.
_MEMO: OrderedDict[tuple[str, str, str], tuple[str, int, bytes]] = OrderedDict()


def fingerprint(materializer: Materializer, value: Any) -> tuple[str, str, str] | None:
    """The memo key of `value` for `materializer`, or None when it does not take part
    (the materializer does not opt in, or the value cannot be pickled)."""
    if not getattr(materializer, "reuse_identical", False):
        return None
    digest = hashlib.sha256()
    buffers: list[pickle.PickleBuffer] = []
    try:
        # Protocol 5 hands array buffers out of band: they are hashed where they lie.
        digest.update(pickle.dumps(value, protocol=5, buffer_callback=buffers.append))
        for buffer in buffers:
            raw = buffer.raw()
            digest.update(len(raw).to_bytes(8, "little"))
            digest.update(raw)
    except Exception:  # an unpicklable member: serialize as usual
        return None
    return (materializer.name, materializer.version, digest.hexdigest())


def recall(key: tuple[str, str, str]) -> tuple[str, int, dict[str, Any]] | None:
    """Content hash, size and (a copy of the) summary stored under `key`, if any."""
    with _LOCK:
        hit = _MEMO.get(key)
        if hit is None:
            return None
        _MEMO.move_to_end(key)
    content_hash, size, summary = hit
    return content_hash, size, pickle.loads(summary)  # bytes this process pickled itself


def remember(
    key: tuple[str, str, str], content_hash: str, size: int, summary: dict[str, Any]
) -> None:
    try:
        frozen = pickle.dumps(summary, protocol=5)
    except Exception:  # a summary that does not pickle: the value is serialized each time
        return
    with _LOCK:
        _MEMO[key] = (content_hash, size, frozen)
        _MEMO.move_to_end(key)
        while len(_MEMO) > MAX_ENTRIES:
            _MEMO.popitem(last=False)


def forget_all() -> None:
    """Empty the memo (tests)."""
    with _LOCK:
        _MEMO.clear()
