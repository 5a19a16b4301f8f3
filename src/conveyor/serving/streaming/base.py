"""The broker interface of streaming inference: a `Source` of messages and a `Sink`.

A backend is a pair of small classes; everything else (decoding, validation, batching,
the model call, dead letters, commits, reload, metrics) sits once above them in
`scorer.py`. Adding a broker means implementing the two protocols below and naming the
URL scheme in `_BACKENDS`.

Delivery contract the scorer relies on:

* `Source.fetch` hands out messages at least once: a message not yet passed to
  `Source.commit` is handed out again after a crash (to this consumer on restart or to
  another member of the group).
* `Sink.send` returns only once the broker has accepted every message (Kafka: acked;
  Redis: the XADD pipeline answered). It raises otherwise, and then the scorer does not
  commit.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from conveyor.exceptions import ServingError

Headers = tuple[tuple[str, bytes], ...]


class Message:
    """One message from a source.

    Attributes:
        value: The body as received.
        key: The message key (Kafka key; the ``key`` field of a Redis entry), or None.
        headers: Headers in order (Kafka headers; other Redis entry fields).
        position: Where the message sits, stable across redeliveries: ``topic/partition/
            offset`` for Kafka, ``stream/entry-id`` for Redis. Used as the request id in
            the prediction log and copied into outputs and dead letters.
        timestamp: Broker timestamp in seconds since the epoch, or None.
        token: Backend-private handle used by `Source.commit`.
    """

    __slots__ = ("headers", "key", "position", "timestamp", "token", "value")

    def __init__(
        self,
        value: bytes,
        key: bytes | None,
        headers: Headers,
        position: str,
        timestamp: float | None,
        token: Any,
    ) -> None:
        self.value = value
        self.key = key
        self.headers = headers
        self.position = position
        self.timestamp = timestamp
        self.token = token

    def __repr__(self) -> str:
        return f"Message(position={self.position!r}, key={self.key!r}, {len(self.value)} bytes)"


class OutMessage:
    """One message for a sink."""

    __slots__ = ("headers", "key", "value")

    def __init__(self, value: bytes, key: bytes | None = None, headers: Headers = ()) -> None:
        self.value = value
        self.key = key
        self.headers = headers


class Source(Protocol):
    """Messages of one topic or stream, read as a member of a consumer group.

    Used from one asyncio task; not thread-safe.
    """

    description: str

    async def start(self) -> None:
        """Connect and join the group (creating the group or stream if needed).

        Raises:
            ServingError: the broker cannot be reached or refuses the group.
        """
        ...

    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        """Up to `max_messages` messages; waits at most `timeout` seconds for the first.

        Returns an empty list when nothing arrived in time.

        Raises:
            Exception: a broker error the scorer should retry after a pause.
        """
        ...

    async def commit(self, messages: Sequence[Message]) -> None:
        """Mark `messages` (all from the last `fetch`) as done: never handed out again.

        Raises:
            Exception: a broker error; the messages will then be delivered again.
        """
        ...

    async def lag(self) -> dict[str, int]:
        """Messages not yet consumed, by partition (or stream); may be approximate."""
        ...

    async def close(self) -> None:
        """Leave the group and disconnect. Uncommitted messages stay pending."""
        ...


class Sink(Protocol):
    """A topic or stream receiving messages. Used from one asyncio task."""

    description: str

    async def start(self) -> None:
        """Connect.

        Raises:
            ServingError: the broker cannot be reached.
        """
        ...

    async def send(self, messages: Sequence[OutMessage]) -> None:
        """Write `messages` in order; return once the broker accepted all of them.

        Raises:
            Exception: some message was not accepted (none, some or all may be written).
        """
        ...

    async def close(self) -> None:
        """Flush and disconnect."""
        ...


@dataclass(frozen=True)
class Endpoint:
    """A parsed broker URL: ``kafka://host:port[,host:port]/topic?option=value``.

    Attributes:
        scheme: ``kafka`` or ``redis`` (or a registered scheme).
        hosts: ``host:port`` strings.
        name: Topic or stream name.
        options: Query parameters.
        url: The URL as given.
    """

    scheme: str
    hosts: tuple[str, ...]
    name: str
    options: dict[str, str] = field(default_factory=dict)
    url: str = ""

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Parse a broker URL.

        Raises:
            ServingError: the URL has no scheme, host or topic/stream name.
        """
        parts = urlsplit(url)
        name = parts.path.strip("/")
        if not parts.scheme or not parts.netloc or not name:
            raise ServingError(
                f"{url!r} is not a broker URL. Expected scheme://host:port/name, for example "
                "kafka://127.0.0.1:9092/customer-events or redis://127.0.0.1:6379/events."
            )
        if parts.scheme not in _BACKENDS:
            import difflib

            close = difflib.get_close_matches(parts.scheme, _BACKENDS, n=1)
            hint = f" Did you mean {close[0]}://?" if close else ""
            raise ServingError(
                f"{url!r} uses the scheme {parts.scheme!r}; streaming knows "
                f"{', '.join(s + '://' for s in sorted(_BACKENDS))}.{hint}"
            )
        return cls(
            scheme=parts.scheme,
            hosts=tuple(h for h in parts.netloc.split(",") if h),
            name=name,
            options=dict(parse_qsl(parts.query)),
            url=url,
        )


# scheme -> module exposing `make_source(endpoint, group, consumer, **kw)` and
# `make_sink(endpoint)`; imported on first use so the broker clients load only when needed.
_BACKENDS: dict[str, str] = {
    "kafka": "conveyor.serving.streaming.kafka",
    "redis": "conveyor.serving.streaming.redis_streams",
}


def _backend(endpoint: Endpoint) -> Any:
    try:
        return importlib.import_module(_BACKENDS[endpoint.scheme])
    except ImportError as exc:
        package = {"kafka": "aiokafka", "redis": "redis"}.get(endpoint.scheme, endpoint.scheme)
        raise ServingError(
            f"Streaming from {endpoint.scheme}:// needs the {package!r} package "
            f"({exc}). Install it with: pip install 'conveyor[stream]'"
        ) from exc


def open_source(url: str, *, group: str, consumer: str | None = None, **options: Any) -> Source:
    """A source for a broker URL (not yet started).

    Args:
        url: ``kafka://host:port/topic`` or ``redis://host:port/stream``.
        group: Consumer group; members of a group share the messages.
        consumer: This member's name (Redis needs one; Kafka uses it as client id).
        options: Backend options (Redis: ``claim_idle``).

    Raises:
        ServingError: a malformed URL, an unknown scheme or a missing client package.
    """
    endpoint = Endpoint.parse(url)
    source: Source = _backend(endpoint).make_source(endpoint, group, consumer, **options)
    return source


def open_sink(url: str) -> Sink:
    """A sink for a broker URL (not yet started).

    Raises:
        ServingError: a malformed URL, an unknown scheme or a missing client package.
    """
    endpoint = Endpoint.parse(url)
    sink: Sink = _backend(endpoint).make_sink(endpoint)
    return sink
