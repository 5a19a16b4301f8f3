"""Test-side broker clients: produce inputs, read outputs (plain aiokafka / redis-py)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

REDIS = ("127.0.0.1", 6379)


async def create_topics(bootstrap: str, partitions: dict[str, int]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, n, 1) for t, n in partitions.items()])
    finally:
        await admin.close()


async def kafka_produce(
    bootstrap: str, topic: str, bodies: list[bytes], *, headers: bool = True
) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks=1)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                body,
                key=f"k{i}".encode(),
                headers=[("trace", f"t{i}".encode())] if headers else None,
            )
            for i, body in enumerate(bodies)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class KafkaReader:
    """Reads a whole topic from the beginning, without a group."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.records: list[Any] = []
        self._consumer: Any = None

    async def __aenter__(self) -> KafkaReader:
        from aiokafka import AIOKafkaConsumer

        self._consumer = AIOKafkaConsumer(
            self.topic, bootstrap_servers=self.bootstrap, auto_offset_reset="earliest"
        )
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def poll(self) -> list[Any]:
        batches = await self._consumer.getmany(timeout_ms=100)
        for records in batches.values():
            self.records.extend(records)
        return self.records

    def values(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.records]


def redis_produce(stream: str, bodies: list[bytes]) -> None:
    import redis

    client = redis.Redis(*REDIS)
    pipe = client.pipeline(transaction=False)
    for i, body in enumerate(bodies):
        pipe.xadd(stream, {"value": body, "key": f"k{i}", "trace": f"t{i}"})
    pipe.execute()
    client.close()


def redis_read(stream: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    import redis

    client = redis.Redis(*REDIS)
    try:
        return list(client.xrange(stream))
    finally:
        client.close()


def redis_values(stream: str) -> list[dict[str, Any]]:
    return [orjson.loads(fields[b"value"]) for _, fields in redis_read(stream)]
