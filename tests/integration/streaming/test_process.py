"""`conveyor stream` as a real process: kill -9 and restart loses nothing; SIGTERM drains.

Each test produces its inputs first, starts the CLI, waits (polling with a deadline) until
part of the stream is scored, then kills or stops the process.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from conveyor.config import Settings
from conveyor.registry import ModelVersion
from tests.unit.streaming.support import bodies

from .brokers import KafkaReader, create_topics, kafka_produce, redis_produce, redis_read
from .conftest import conveyor_cmd, subprocess_env

N = 20_000


class Broker:
    """Inputs, outputs and commit state of one test's topics, on Redis or Kafka."""

    def __init__(self, kind: str, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        if kind == "redis":
            prefix = request.getfixturevalue("redis_prefix")
            self.src, self.out = f"{prefix}-events", f"{prefix}-scores"
            base = "redis://127.0.0.1:6379"
        else:
            self.bootstrap = request.getfixturevalue("kafka_bootstrap")
            prefix = request.getfixturevalue("topic_prefix")
            self.src, self.out = f"{prefix}-events", f"{prefix}-scores"
            base = f"kafka://{self.bootstrap}"
        self.src_url, self.out_url = f"{base}/{self.src}", f"{base}/{self.out}"
        # Kafka groups are broker-wide: a group per test keeps it clear of members that
        # earlier tests left behind (Redis groups live on their stream anyway).
        self.group = f"{prefix}-scorer"
        self._reader: KafkaReader | None = None
        self._loop = asyncio.new_event_loop()

    def run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def produce(self, n: int) -> None:
        if self.kind == "redis":
            redis_produce(self.src, bodies(n))
        else:
            self.run(create_topics(self.bootstrap, {self.src: 3, self.out: 3}))
            self.run(kafka_produce(self.bootstrap, self.src, bodies(n), headers=False))
            self._reader = KafkaReader(self.bootstrap, self.out)
            self.run(self._reader.__aenter__())

    def outputs(self) -> list[dict[str, Any]]:
        if self.kind == "redis":
            return [orjson.loads(f[b"value"]) for _, f in redis_read(self.out)]
        assert self._reader is not None
        self.run(self._reader.poll())
        return self._reader.values()

    def count(self) -> int:
        if self.kind == "redis":
            import redis

            client = redis.Redis("127.0.0.1", 6379)
            try:
                return int(client.xlen(self.out))
            finally:
                client.close()
        assert self._reader is not None
        return len(self.run(self._reader.poll()))

    def committed(self, group: str) -> int:
        """Inputs the group has committed (Kafka offsets; Redis delivered minus pending)."""
        if self.kind == "redis":
            import redis

            client = redis.Redis("127.0.0.1", 6379)
            try:
                (info,) = client.xinfo_groups(self.src)
                return int(info["entries-read"]) - int(info["pending"])
            finally:
                client.close()

        async def offsets() -> int:
            from aiokafka import AIOKafkaConsumer, TopicPartition

            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group)
            await consumer.start()
            try:
                total = 0
                for p in range(3):
                    total += await consumer.committed(TopicPartition(self.src, p)) or 0
                return total
            finally:
                await consumer.stop()

        return int(self.run(offsets()))

    def close(self) -> None:
        if self._reader is not None:
            self.run(self._reader.__aexit__(None, None, None))
        self._loop.close()


@pytest.fixture(params=["redis", "kafka"])
def broker(request: pytest.FixtureRequest) -> Any:
    request.applymarker(getattr(pytest.mark, request.param))
    b = Broker(request.param, request)
    yield b
    b.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, proc: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the scorer exited with {proc.returncode} before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)  # polling interval of a deadline-bounded wait


def start(settings: Settings, broker: Broker, consumer: str, max_batch: int = 100) -> Any:
    cmd = conveyor_cmd(
        settings,
        "stream",
        "churn@production",
        "--source",
        broker.src_url + ("?heartbeat_interval_ms=500" if broker.kind == "kafka" else ""),
        "--sink",
        broker.out_url,
        "--group",
        broker.group,
        "--consumer",
        consumer,
        "--max-batch",
        str(max_batch),
        "--claim-idle",
        "1",
        "--reload-interval",
        "0",
        "--no-log-predictions",
    )
    return subprocess.Popen(
        cmd, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


@pytest.mark.slow
def test_kill_9_mid_stream_then_restart_loses_no_message(
    settings: Settings, churn: ModelVersion, broker: Broker
) -> None:
    broker.produce(N)
    first = start(settings, broker, "first")
    try:
        wait_for(lambda: broker.count() >= 2000, 60, "2,000 outputs", first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
    at_kill = broker.count()
    assert at_kill < N, "the stream finished before the kill; the test proves nothing"

    second = start(settings, broker, "second")  # a new member: must claim/resume the rest
    try:
        wait_for(
            lambda: len({o["key"] for o in broker.outputs()}) >= N,
            120,
            "an output for every input",
            second,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=30)
    assert second.returncode == 0, err.decode()[-2000:]

    outputs = broker.outputs()
    per_input = Counter(o["input"] for o in outputs)
    assert len(per_input) == N  # every input has an output
    duplicates = len(outputs) - N
    print(f"{broker.kind}: killed at {at_kill} outputs; {duplicates} duplicates after restart")
    assert duplicates >= 0
    assert {o["version"] for o in outputs} == {"1"}


@pytest.mark.slow
def test_sigterm_drains_commits_and_exits_0(
    settings: Settings, churn: ModelVersion, broker: Broker
) -> None:
    broker.produce(N)
    proc = start(settings, broker, "only", max_batch=50)
    try:
        wait_for(lambda: broker.count() >= 1000, 60, "1,000 outputs", proc)
    except AssertionError:
        proc.kill()
        proc.communicate()
        raise
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "Stopped:" in err.decode()

    produced = broker.count()
    assert produced < N, "the stream finished before SIGTERM; the test proves nothing"
    # Drained: everything written was committed and nothing committed lacks an output.
    assert broker.committed(broker.group) == produced
    assert len({o["input"] for o in broker.outputs()}) == produced
