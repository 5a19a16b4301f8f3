"""The scorer on real brokers, in process: Redis Streams and Kafka (Tansu)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest

from conveyor.registry import ModelVersion, Registry
from conveyor.serving.servable import RegistrySource
from conveyor.serving.streaming.base import open_sink, open_source
from conveyor.serving.streaming.scorer import StreamOptions, StreamScorer, run_stream
from conveyor.training.model import Model
from tests.unit.streaming.support import bodies, until

from .brokers import (
    KafkaReader,
    create_topics,
    kafka_produce,
    redis_produce,
    redis_read,
    redis_values,
)
from .conftest import free_port

POISON = {7: b"{broken", 11: orjson.dumps({"mean radius": "big"})}


def inputs(n: int) -> list[bytes]:
    data = bodies(n)
    for i, body in POISON.items():
        if i < n:
            data[i] = body
    return data


def scorer_for(
    registry: Registry,
    source: str,
    sink: str,
    dlq: str | None = None,
    *,
    group: str | None = None,
    consumer: str | None = None,
    source_options: dict[str, Any] | None = None,
    **options: Any,
) -> StreamScorer:
    if group is None:
        # Kafka groups are broker-wide: one per input topic keeps tests from rebalancing
        # with members that earlier tests left behind. Redis groups live on their stream.
        topic = source.rsplit("/", 1)[-1].split("?", maxsplit=1)[0]
        group = f"scorer-{topic}" if source.startswith("kafka") else "scorer"
    options.setdefault("prediction_log", None)
    options.setdefault("reload_interval", None)
    return StreamScorer(
        RegistrySource("churn@production", registry),
        open_source(source, group=group, consumer=consumer, **(source_options or {})),
        open_sink(sink),
        dead_letter=open_sink(dlq) if dlq else None,
        options=StreamOptions(**options),
    )


def check_outputs(values: list[dict[str, Any]], n: int, version: int = 1) -> None:
    keys = Counter(v["key"] for v in values)
    assert set(keys) == {f"k{i}" for i in range(n) if i not in POISON}
    assert all(v["model"] == "churn" and v["version"] == str(version) for v in values)
    assert all(v["prediction"] in (0, 1) for v in values)


@pytest.mark.redis
def test_redis_end_to_end_with_dead_letters(
    registry: Registry, churn: ModelVersion, redis_prefix: str
) -> None:
    import redis

    n = 600
    src, out, dlq = (f"{redis_prefix}-{x}" for x in ("events", "scores", "dlq"))
    redis_produce(src, inputs(n))
    scorer = scorer_for(
        registry,
        f"redis://127.0.0.1:6379/{src}",
        f"redis://127.0.0.1:6379/{out}",
        f"redis://127.0.0.1:6379/{dlq}",
        consumer="one",
        max_batch=256,
    )

    async def main() -> None:
        task = asyncio.create_task(scorer.run())
        await scorer.wait_ready(10)
        await until(lambda: scorer.stats.messages_in >= n, what="all messages")
        scorer.stop()
        await task

    asyncio.run(main())

    check_outputs(redis_values(out), n)
    entries = redis_read(out)
    assert len(entries) == n - len(POISON)
    _, fields = entries[0]
    assert fields[b"key"] == b"k0" and fields[b"trace"] == b"t0"
    dead = {d["key"]: d for d in redis_values(dlq)}
    assert set(dead) == {"k7", "k11"}
    assert dead["k7"]["problem"] == "decode" and dead["k11"]["problem"] == "wrong_type"
    client = redis.Redis("127.0.0.1", 6379)
    (group,) = client.xinfo_groups(src)
    assert group["pending"] == 0 and group["lag"] == 0
    assert group["consumers"] == 0  # a clean stop leaves the group
    client.close()


@pytest.mark.redis
def test_redis_claims_entries_left_pending_by_a_dead_consumer(
    registry: Registry, churn: ModelVersion, redis_prefix: str
) -> None:
    import redis

    src, out = f"{redis_prefix}-events", f"{redis_prefix}-scores"
    redis_produce(src, bodies(50))
    client = redis.Redis("127.0.0.1", 6379)
    client.xgroup_create(src, "scorer", id="0")
    taken = client.xreadgroup("scorer", "dead-one", {src: ">"}, count=30)  # never acked
    assert len(taken[0][1]) == 30
    scorer = scorer_for(
        registry,
        f"redis://127.0.0.1:6379/{src}",
        f"redis://127.0.0.1:6379/{out}",
        consumer="alive",
        source_options={"claim_idle": 0.2},
    )

    async def main() -> None:
        task = asyncio.create_task(scorer.run())
        await scorer.wait_ready(10)
        await until(lambda: scorer.stats.messages_out >= 50, what="all 50 scored")
        scorer.stop()
        await task

    asyncio.run(main())
    keys = sorted(v["key"] for v in redis_values(out))
    assert keys == sorted(f"k{i}" for i in range(50))
    assert client.xinfo_groups(src)[0]["pending"] == 0
    client.close()


@pytest.mark.redis
def test_redis_two_scorers_share_one_group(
    registry: Registry, churn: ModelVersion, redis_prefix: str
) -> None:
    n = 4000
    src, out = f"{redis_prefix}-events", f"{redis_prefix}-scores"
    url_in, url_out = f"redis://127.0.0.1:6379/{src}", f"redis://127.0.0.1:6379/{out}"
    a = scorer_for(registry, url_in, url_out, consumer="a", max_batch=100)
    b = scorer_for(registry, url_in, url_out, consumer="b", max_batch=100)

    async def main() -> None:
        tasks = [asyncio.create_task(s.run()) for s in (a, b)]
        await a.wait_ready(10)
        await b.wait_ready(10)
        redis_produce(src, bodies(n))
        await until(lambda: a.stats.messages_out + b.stats.messages_out >= n, what="all")
        a.stop()
        b.stop()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert a.stats.messages_out > 0 and b.stats.messages_out > 0
    keys = Counter(v["key"] for v in redis_values(out))
    assert len(keys) == n and max(keys.values()) == 1


@pytest.mark.redis
def test_hot_reload_when_the_alias_moves(
    registry: Registry, churn: ModelVersion, model_v2: Model, redis_prefix: str
) -> None:
    src, out = f"{redis_prefix}-events", f"{redis_prefix}-scores"
    scorer = scorer_for(
        registry,
        f"redis://127.0.0.1:6379/{src}",
        f"redis://127.0.0.1:6379/{out}",
        consumer="one",
        reload_interval=0.1,
    )

    async def main() -> None:
        task = asyncio.create_task(scorer.run())
        await scorer.wait_ready(10)
        redis_produce(src, bodies(20))
        await until(lambda: scorer.stats.messages_out >= 20, what="first batch")
        registry.register(model_v2, "churn", promote_to="production")
        await until(lambda: scorer.stats.reloads == 1, what="the reload")
        redis_produce(src, bodies(20))
        await until(lambda: scorer.stats.messages_out >= 40, what="second batch")
        scorer.stop()
        await task

    asyncio.run(main())
    versions = [v["version"] for v in redis_values(out)]
    assert versions == ["1"] * 20 + ["2"] * 20


@pytest.mark.redis
def test_metrics_endpoint(registry: Registry, churn: ModelVersion, redis_prefix: str) -> None:
    src, out = f"{redis_prefix}-events", f"{redis_prefix}-scores"
    redis_produce(src, bodies(30))
    scorer = scorer_for(
        registry,
        f"redis://127.0.0.1:6379/{src}",
        f"redis://127.0.0.1:6379/{out}",
        consumer="one",
        lag_interval=0.0,
    )
    port = free_port()

    async def main() -> str:
        task = asyncio.create_task(run_stream(scorer, metrics_port=port))
        await scorer.wait_ready(10)
        await until(lambda: scorer.stats.messages_out >= 30, what="30 scored")
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        scorer.stop()
        await task
        return text

    text = asyncio.run(main())
    assert "conveyor_stream_messages_out_total 30.0" in text
    assert f'conveyor_stream_lag_messages{{partition="{src}"}} 0.0' in text
    assert 'conveyor_stream_model_info{model="churn",version="1"} 1.0' in text


@pytest.mark.kafka
@pytest.mark.slow
def test_kafka_end_to_end_keeps_keys_and_headers(
    registry: Registry, churn: ModelVersion, kafka_bootstrap: str, topic_prefix: str
) -> None:
    n = 1000
    src, out, dlq = (f"{topic_prefix}-{x}" for x in ("events", "scores", "dlq"))
    k = f"kafka://{kafka_bootstrap}"
    scorer = scorer_for(registry, f"{k}/{src}", f"{k}/{out}", f"{k}/{dlq}", max_batch=300)

    async def main() -> tuple[list[Any], list[Any]]:
        await create_topics(kafka_bootstrap, {src: 3, out: 3, dlq: 1})
        await kafka_produce(kafka_bootstrap, src, inputs(n))
        task = asyncio.create_task(scorer.run())
        await scorer.wait_ready(20)
        async with (
            KafkaReader(kafka_bootstrap, out) as scores,
            KafkaReader(kafka_bootstrap, dlq) as dead,
        ):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while len(await scores.poll()) < n - 2 or len(await dead.poll()) < 2:
                assert loop.time() < deadline, "timed out waiting for outputs"
            scorer.stop()
            await task
            return scores.records, dead.records

    records, dead = asyncio.run(main())
    check_outputs([orjson.loads(r.value) for r in records], n)
    assert len(records) == n - 2
    by_key = {r.key: r for r in records}
    assert dict(by_key[b"k5"].headers)["trace"] == b"t5"
    assert orjson.loads(by_key[b"k5"].value)["input"].startswith(f"{src}/")
    assert {r.key for r in dead} == {b"k7", b"k11"}
    assert scorer.stats.dead_letters == 2 and scorer.stats.messages_in == n


@pytest.mark.kafka
@pytest.mark.slow
def test_kafka_two_scorers_share_the_partitions(
    registry: Registry, churn: ModelVersion, kafka_bootstrap: str, topic_prefix: str
) -> None:
    n = 3000
    src, out = f"{topic_prefix}-events", f"{topic_prefix}-scores"
    k = f"kafka://{kafka_bootstrap}"
    fast = "?heartbeat_interval_ms=200&session_timeout_ms=6000"
    a = scorer_for(registry, f"{k}/{src}{fast}", f"{k}/{out}", max_batch=100)
    b = scorer_for(registry, f"{k}/{src}{fast}", f"{k}/{out}", max_batch=100)

    async def main() -> list[Any]:
        await create_topics(kafka_bootstrap, {src: 4, out: 4})
        tasks = [asyncio.create_task(s.run()) for s in (a, b)]
        await a.wait_ready(20)
        await b.wait_ready(20)

        def assigned(s: StreamScorer) -> int:
            return len(s.source._kafka().assignment())  # type: ignore[attr-defined]

        await until(
            lambda: assigned(a) + assigned(b) == 4 and assigned(a) and assigned(b),
            timeout=30,
            what="both members assigned",
        )
        parts = (assigned(a), assigned(b))
        await kafka_produce(kafka_bootstrap, src, bodies(n))
        async with KafkaReader(kafka_bootstrap, out) as scores:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while len(await scores.poll()) < n:
                assert loop.time() < deadline, "timed out waiting for outputs"
        a.stop()
        b.stop()
        await asyncio.gather(*tasks)
        assert parts == (2, 2)
        return scores.records

    records = asyncio.run(main())
    assert a.stats.messages_out > 0 and b.stats.messages_out > 0
    assert a.stats.messages_out + b.stats.messages_out == n
    assert len({r.key for r in records}) == n
