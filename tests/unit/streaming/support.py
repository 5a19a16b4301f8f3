"""Shared by the streaming tests: a model, JSON records, and an in-memory broker.

The in-memory broker implements the `Source`/`Sink` protocols the way a broker behaves
(uncommitted messages come back after a restart, a sink can refuse), so the scorer's
logic is tested without a network. Real-broker tests live in tests/integration/streaming.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.serving.streaming.base import Message, OutMessage
from conveyor.training.model import Model


def cancer() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


def train(c: float = 1.0) -> Model:
    X, y = cancer()
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(X, y)
    return Model.from_fitted(pipe, X, profile=False)


def bodies(n: int, start: int = 0) -> list[bytes]:
    """`n` JSON message bodies, one breast-cancer row each (cycling through the data)."""
    X, _ = cancer()
    rows = X.to_dict(orient="records")
    return [orjson.dumps(rows[(start + i) % len(rows)]) for i in range(n)]


class MemoryBroker:
    """Topics as lists; one group with a committed set; sinks append."""

    def __init__(self) -> None:
        self.topics: dict[str, list[tuple[bytes | None, bytes, tuple[tuple[str, bytes], ...]]]] = {}
        self.committed: set[tuple[str, int]] = set()
        self.fail_sends = 0  # refuse this many sink sends

    def produce(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Any = ()
    ) -> None:
        self.topics.setdefault(topic, []).append((key, value, tuple(headers)))


class MemorySource:
    def __init__(self, broker: MemoryBroker, topic: str) -> None:
        self.broker = broker
        self.topic = topic
        self.description = f"memory topic {topic!r}"
        self.cursor = 0
        self.commits: list[int] = []

    async def start(self) -> None:
        self.cursor = 0

    async def fetch(self, max_messages: int, timeout: float) -> list[Message]:
        data = self.broker.topics.get(self.topic, [])
        out = []
        while self.cursor < len(data) and len(out) < max_messages:
            i = self.cursor
            self.cursor += 1
            if (self.topic, i) in self.broker.committed:
                continue
            key, value, headers = data[i]
            out.append(Message(value, key, headers, f"{self.topic}/0/{i}", None, i))
        if not out:
            await asyncio.sleep(min(timeout, 0.005))  # a broker's long poll, shortened
        return out

    async def commit(self, messages: Sequence[Message]) -> None:
        self.commits.append(len(messages))
        self.broker.committed.update((self.topic, m.token) for m in messages)

    async def lag(self) -> dict[str, int]:
        data = self.broker.topics.get(self.topic, [])
        done = sum(1 for i in range(len(data)) if (self.topic, i) in self.broker.committed)
        return {self.topic: len(data) - done}

    async def close(self) -> None:
        pass


class MemorySink:
    def __init__(self, broker: MemoryBroker, topic: str) -> None:
        self.broker = broker
        self.topic = topic
        self.description = f"memory topic {topic!r}"

    async def start(self) -> None:
        pass

    async def send(self, messages: Sequence[OutMessage]) -> None:
        if self.broker.fail_sends > 0:
            self.broker.fail_sends -= 1
            raise ConnectionError("broker unavailable")
        for m in messages:
            self.broker.produce(self.topic, m.value, m.key, m.headers)

    async def close(self) -> None:
        pass


def outputs(broker: MemoryBroker, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(v) for _, v, _ in broker.topics.get(topic, [])]


async def until(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll `predicate` until true; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)
