"""Message body codecs: bytes on the wire <-> Python values.

JSON (orjson) is built in. Other formats (Avro, Protobuf, MessagePack) plug in through
`register_codec` with any object that has ``name``, ``decode`` and ``encode``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from conveyor.exceptions import ServingError


class Codec(Protocol):
    """Turns message bodies into values and back.

    Implementations must be thread-safe and keep no per-message state.
    """

    name: str

    def decode(self, data: bytes) -> Any:
        """The value in `data`.

        Raises:
            Exception: any error; the message goes to the dead-letter destination with
                the error's text as the reason.
        """
        ...

    def encode(self, value: Any) -> bytes:
        """The bytes of `value` (a dict of JSON-able values and numpy scalars/arrays)."""
        ...


class JsonCodec:
    """JSON bodies through orjson; numpy values serialize natively."""

    name = "json"
    _OPTIONS = orjson.OPT_SERIALIZE_NUMPY

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)

    def encode(self, value: Any) -> bytes:
        return orjson.dumps(value, option=self._OPTIONS)


_CODECS: dict[str, Callable[[], Codec]] = {"json": JsonCodec}


def register_codec(name: str, factory: Callable[[], Codec]) -> None:
    """Make `factory` available as ``--codec NAME`` (replaces a codec of that name)."""
    _CODECS[name] = factory


def get_codec(name: str) -> Codec:
    """The codec registered as `name`.

    Raises:
        ServingError: no codec of that name (close matches are suggested).
    """
    factory = _CODECS.get(name)
    if factory is None:
        import difflib

        close = difflib.get_close_matches(name, _CODECS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ServingError(
            f"No message codec named {name!r}; known: {', '.join(sorted(_CODECS))}.{hint} "
            "Add one with conveyor.serving.streaming.codecs.register_codec."
        )
    return factory()


if TYPE_CHECKING:
    _json: Codec = JsonCodec()
