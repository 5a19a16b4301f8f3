"""Redis Streams source and sink (redis-py's asyncio client).

An entry carries the message body in its ``value`` field and the key in ``key``; other
fields are headers. The source reads as a consumer-group member:

1. On start it re-reads its own pending entries (``XREADGROUP ... 0``): a scorer that
   restarts under the same consumer name finishes what it had fetched.
2. Every ``claim_idle / 2`` seconds it takes over entries left pending by other consumers
   for longer than ``claim_idle`` (``XAUTOCLAIM``): the work of a dead scorer.
3. Otherwise it reads new entries (``XREADGROUP ... >`` with ``COUNT`` and ``BLOCK``).

Commits are one ``XACK`` per batch. The sink writes a batch as one pipelined run of
``XADD`` commands (optionally capped with ``MAXLEN ~``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ServingError
from conveyor.serving.streaming.base import Endpoint, Message, OutMessage

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from conveyor.serving.streaming.base import Sink, Source

logger = logging.getLogger("conveyor.serving.streaming")

_VALUE = b"value"
_KEY = b"key"


def _client(endpoint: Endpoint) -> aioredis.Redis:
    import redis.asyncio as aioredis

    if len(endpoint.hosts) != 1:
        raise ServingError(
            f"{endpoint.url!r} names {len(endpoint.hosts)} hosts; a Redis URL names one."
        )
    host, _, port = endpoint.hosts[0].rpartition(":")
    if not host:
        host, port = port, "6379"
    db = int(endpoint.options.get("db", "0"))
    return aioredis.Redis(
        host=host, port=int(port), db=db, password=endpoint.options.get("password")
    )


def _entries(reply: Any) -> list[Any]:
    """The entries of a one-stream XREADGROUP reply (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(next(iter(reply.values()))[0] if reply else [])
    return list(reply[0][1])


def _message(stream: str, entry_id: bytes, fields: dict[bytes, bytes]) -> Message:
    value = b""
    key = None
    headers: list[tuple[str, bytes]] = []
    for name, data in fields.items():
        if name == _VALUE:
            value = data
        elif name == _KEY:
            key = data
        else:
            headers.append((name.decode("utf-8", "replace"), data))
    ident = entry_id.decode()
    millis = ident.partition("-")[0]
    return Message(value, key, tuple(headers), f"{stream}/{ident}", int(millis) / 1000.0, entry_id)


class RedisStreamSource:
    """Entries of one stream, read as member `consumer` of `group`.

    Args:
        endpoint: ``redis://host:port/stream[?db=N]``.
        group: Consumer group (created at the start of the stream when missing).
        consumer: This member's name; keep it stable across restarts to resume its own
            pending entries at once instead of after `claim_idle`.
        claim_idle: Seconds after which another member's pending entry is taken over.
    """

    def __init__(
        self, endpoint: Endpoint, group: str, consumer: str, *, claim_idle: float = 30.0
    ) -> None:
        if claim_idle <= 0:
            raise ServingError(
                "The 'claim_idle' parameter of RedisStreamSource must be > 0 seconds. Got "
                f"{claim_idle!r} instead."
            )
        self.endpoint = endpoint
        self.stream = endpoint.name
        self.group = group
        self.consumer = consumer
        self.claim_idle = claim_idle
        self.description = (
            f"redis stream {endpoint.name!r} (group {group!r}, consumer {consumer!r})"
        )
        self._client: aioredis.Redis | None = None
        self._own_cursor: bytes | None = b"0"
        self._claim_cursor = b"0-0"
        self._next_claim = 0.0
        self.claimed = 0

    async def start(self) -> None:
        import redis.exceptions

        self._client = _client(self.endpoint)
        try:
            await self._client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise ServingError(f"Cannot create the group on {self.description}: {exc}") from exc
        except redis.exceptions.ConnectionError as exc:
            raise ServingError(f"Cannot reach Redis for {self.description}: {exc}") from exc
        self._next_claim = time.monotonic() + self.claim_idle / 2

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            raise ServingError(f"{self.description} is not started; call start() first.")
        return self._client

    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        client = self._redis()
        if self._own_cursor is not None:
            reply: Any = await client.xreadgroup(
                self.group, self.consumer, {self.stream: self._own_cursor}, count=max_messages
            )
            entries = _entries(reply)
            if entries:
                self._own_cursor = entries[-1][0]
                return await self._convert(entries)
            self._own_cursor = None
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + self.claim_idle / 2
            claimed = await self._claim(max_messages)
            if claimed:
                return claimed
        reply = await client.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=max_messages,
            block=max(1, int(timeout * 1000)),
        )
        return await self._convert(_entries(reply))

    async def _claim(self, max_messages: int) -> list[Message]:
        reply: Any = await self._redis().xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=int(self.claim_idle * 1000),
            start_id=self._claim_cursor,
            count=max_messages,
        )
        cursor, entries = reply[0], reply[1]
        self._claim_cursor = cursor
        if cursor != b"0-0":
            self._next_claim = 0.0  # more to claim: keep going next fetch
        if entries:
            self.claimed += len(entries)
            logger.warning(
                "claimed %d entries left pending by another consumer on %s",
                len(entries),
                self.description,
            )
        return await self._convert(entries)

    async def _convert(self, entries: list[Any]) -> list[Message]:
        stream = self.stream
        out = []
        gone = []
        for entry_id, fields in entries:
            if fields is None:  # deleted from the stream while pending
                gone.append(entry_id)
            else:
                out.append(_message(stream, entry_id, fields))
        if gone:
            await self._redis().xack(self.stream, self.group, *gone)
        return out

    async def commit(self, messages: Sequence[Message]) -> None:
        if messages:
            await self._redis().xack(self.stream, self.group, *[m.token for m in messages])

    async def lag(self) -> dict[str, int]:
        groups = await self._redis().xinfo_groups(self.stream)
        for info in groups:
            name = info.get("name")
            if name in (self.group, self.group.encode()):
                lag = info.get("lag")
                pending = int(info.get("pending") or 0)
                return {self.stream: int(lag if lag is not None else 0) + pending}
        return {}

    async def close(self) -> None:
        if self._client is None:
            return
        client, self._client = self._client, None
        try:
            # A consumer with nothing pending leaves the group, so names with a pid in
            # them do not pile up; one with pending entries stays so they can be claimed.
            mine = await client.xpending_range(
                self.stream, self.group, min="-", max="+", count=1, consumername=self.consumer
            )
            if not mine:
                await client.xgroup_delconsumer(self.stream, self.group, self.consumer)
        except Exception as exc:
            logger.debug("could not remove consumer %s: %s", self.consumer, exc)
        finally:
            await client.aclose()


class RedisStreamSink:
    """Appends to one stream; ``?maxlen=N`` caps it approximately (``MAXLEN ~ N``)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.stream = endpoint.name
        maxlen = endpoint.options.get("maxlen")
        self.maxlen = int(maxlen) if maxlen else None
        self.description = f"redis stream {endpoint.name!r}"
        self._client: aioredis.Redis | None = None

    async def start(self) -> None:
        import redis.exceptions

        self._client = _client(self.endpoint)
        try:
            await self._client.ping()
        except redis.exceptions.ConnectionError as exc:
            raise ServingError(f"Cannot reach Redis for {self.description}: {exc}") from exc

    async def send(self, messages: Sequence[OutMessage]) -> None:
        if not messages:
            return
        if self._client is None:
            raise ServingError(f"{self.description} is not started; call start() first.")
        pipe = self._client.pipeline(transaction=False)
        stream, maxlen = self.stream, self.maxlen
        for m in messages:
            fields: dict[Any, Any] = {"value": m.value}
            if m.key is not None:
                fields["key"] = m.key
            for name, data in m.headers:
                if name not in ("value", "key"):
                    fields[name] = data
            pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)
        await pipe.execute()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def make_source(
    endpoint: Endpoint, group: str, consumer: str | None, **options: Any
) -> RedisStreamSource:
    if consumer is None:
        import os
        import socket

        consumer = f"{socket.gethostname()}-{os.getpid()}"
    return RedisStreamSource(endpoint, group, consumer, **options)


def make_sink(endpoint: Endpoint) -> RedisStreamSink:
    return RedisStreamSink(endpoint)


if TYPE_CHECKING:
    _source: Source = RedisStreamSource(Endpoint("redis", ("h:1",), "s"), "g", "c")
    _sink: Sink = RedisStreamSink(Endpoint("redis", ("h:1",), "s"))
