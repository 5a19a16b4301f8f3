"""Kafka source and sink (aiokafka).

The source is a consumer-group member with auto-commit off: the scorer commits the
offsets of a batch after the sink accepted its outputs. When the group rebalances, the
member giving up a partition first waits (up to ``revoke_timeout``) for the batch in
flight to be committed, so a clean hand-over redelivers nothing.

The sink is a producer with ``acks=all`` (``?acks=1`` to relax) and idempotence off
(not every Kafka-protocol broker supports it); a batch is accepted when every send is
acknowledged. Keys and headers of the input are kept on the output.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ServingError
from conveyor.serving.streaming.base import Endpoint, Message, OutMessage

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from conveyor.serving.streaming.base import Sink, Source

logger = logging.getLogger("conveyor.serving.streaming")


class KafkaSource:
    """Records of one topic, read as a member of `group`.

    Args:
        endpoint: ``kafka://host:port[,host:port]/topic``. Options: ``offset_reset=latest``
            starts a new group at the end of the topic (default: the beginning);
            ``heartbeat_interval_ms`` (3000) and ``session_timeout_ms`` (10000) set how
            fast the group notices members joining and dying.
        group: Consumer group id; members share the topic's partitions.
        client_id: Client id shown by the broker.
        revoke_timeout: Seconds a rebalance waits for the in-flight batch's commit.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        group: str,
        client_id: str | None = None,
        *,
        revoke_timeout: float = 10.0,
    ) -> None:
        self.endpoint = endpoint
        self.topic = endpoint.name
        self.group = group
        self.client_id = client_id
        self.revoke_timeout = revoke_timeout
        self.description = f"kafka topic {endpoint.name!r} (group {group!r})"
        self._consumer: AIOKafkaConsumer | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._in_flight = 0  # fetched batches not yet committed (the scorer prefetches one)
        self._done: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
        from aiokafka.errors import KafkaError

        source = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            async def on_partitions_revoked(self, revoked: Any) -> None:
                await source._wait_idle()
                for tp in revoked:
                    source._done.pop(tp, None)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                logger.info("%s: assigned %s", source.description, sorted(assigned))

        options = self.endpoint.options
        kwargs: dict[str, Any] = {"client_id": self.client_id} if self.client_id else {}
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=list(self.endpoint.hosts),
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset=options.get("offset_reset", "earliest"),
            max_partition_fetch_bytes=int(options.get("max_partition_fetch_bytes", 4 << 20)),
            # The broker answers a fetch at once when data is there; this bounds the wait
            # when it is not, which is what an idle stream adds to a message's latency.
            fetch_max_wait_ms=int(options.get("fetch_max_wait_ms", 20)),
            heartbeat_interval_ms=int(options.get("heartbeat_interval_ms", 3000)),
            session_timeout_ms=int(options.get("session_timeout_ms", 10000)),
            **kwargs,
        )
        self._consumer.subscribe([self.topic], listener=Listener())
        try:
            await self._consumer.start()
        except KafkaError as exc:
            raise ServingError(f"Cannot reach Kafka for {self.description}: {exc}") from exc

    async def _wait_idle(self) -> None:
        try:
            async with asyncio.timeout(self.revoke_timeout):
                await self._idle.wait()
        except TimeoutError:
            logger.warning(
                "%s: rebalance went ahead before the batch in flight was committed; "
                "its messages will be delivered again",
                self.description,
            )

    def _kafka(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise ServingError(f"{self.description} is not started; call start() first.")
        return self._consumer

    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        batches = await self._kafka().getmany(
            timeout_ms=int(timeout * 1000), max_records=max_messages
        )
        out: list[Message] = []
        for tp, records in batches.items():
            prefix = f"{tp.topic}/{tp.partition}/"
            for r in records:
                headers = tuple(r.headers) if r.headers else ()
                out.append(
                    Message(
                        r.value if r.value is not None else b"",
                        r.key,
                        headers,
                        prefix + str(r.offset),
                        r.timestamp / 1000.0 if r.timestamp is not None else None,
                        (tp, r.offset),
                    )
                )
        if out:
            self._in_flight += 1
            self._idle.clear()
        return out

    async def commit(self, messages: Sequence[Message]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for m in messages:
            tp, offset = m.token
            if offset + 1 > offsets.get(tp, -1):
                offsets[tp] = offset + 1
        try:
            if offsets:
                await self._kafka().commit(offsets)
                self._done.update(offsets)
        finally:
            self._in_flight = max(0, self._in_flight - 1)
            if not self._in_flight:
                self._idle.set()

    async def lag(self) -> dict[str, int]:
        consumer = self._kafka()
        out = {}
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            done = self._done.get(tp)
            if done is None:
                committed = await consumer.committed(tp)
                done = self._done[tp] = committed if committed is not None else 0
            out[f"{tp.topic}/{tp.partition}"] = max(0, high - done)
        return out

    async def close(self) -> None:
        self._idle.set()
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()


class KafkaSink:
    """Produces to one topic.

    ``?acks=1`` or ``?acks=all`` (default), ``?linger_ms=5``, ``?compression=lz4|gzip|zstd``.
    """

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.topic = endpoint.name
        self.description = f"kafka topic {endpoint.name!r}"
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        options = self.endpoint.options
        acks: int | str = options.get("acks", "all")
        if acks != "all":
            acks = int(acks)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=list(self.endpoint.hosts),
            enable_idempotence=False,
            acks=acks,
            linger_ms=int(options.get("linger_ms", 5)),
            max_batch_size=int(options.get("max_batch_size", 1 << 20)),
            compression_type=options.get("compression"),
        )
        try:
            await self._producer.start()
        except KafkaError as exc:
            raise ServingError(f"Cannot reach Kafka for {self.description}: {exc}") from exc

    async def send(self, messages: Sequence[OutMessage]) -> None:
        if not messages:
            return
        producer = self._producer
        if producer is None:
            raise ServingError(f"{self.description} is not started; call start() first.")
        topic = self.topic
        futures = []
        for m in messages:
            futures.append(
                await producer.send(
                    topic, m.value, key=m.key, headers=list(m.headers) if m.headers else None
                )
            )
        try:
            await asyncio.gather(*futures)
        except BaseException:
            for f in futures:  # do not leave "exception never retrieved" behind
                if f.done() and not f.cancelled():
                    f.exception()
            raise

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            with contextlib.suppress(Exception):
                await producer.flush()
            await producer.stop()


def make_source(
    endpoint: Endpoint, group: str, consumer: str | None, **options: Any
) -> KafkaSource:
    return KafkaSource(endpoint, group, consumer, **options)


def make_sink(endpoint: Endpoint) -> KafkaSink:
    return KafkaSink(endpoint)


if TYPE_CHECKING:
    _source: Source = KafkaSource(Endpoint("kafka", ("h:1",), "t"), "g")
    _sink: Sink = KafkaSink(Endpoint("kafka", ("h:1",), "t"))
