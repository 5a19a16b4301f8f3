"""Prometheus metrics of one streaming scorer, in a registry of its own."""

from __future__ import annotations

from typing import Any

from conveyor.serving.metrics import BATCH_BUCKETS, LATENCY_BUCKETS, ModelMetrics


class StreamMetrics(ModelMetrics):
    """Messages in/out, dead letters, batch sizes and durations, lag, errors, model."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        super().__init__(
            "conveyor_stream",
            "Broker and model-load errors by kind (fetch, sink, commit, model_load, ...).",
            "1 for the model version scoring the stream.",
        )
        r = self.registry
        self.messages_in = Counter(
            "conveyor_stream_messages_in", "Messages fetched from the source.", registry=r
        )
        self.messages_out = Counter(
            "conveyor_stream_messages_out", "Scored messages accepted by the sink.", registry=r
        )
        self.dead_letters = Counter(
            "conveyor_stream_dead_letters",
            "Messages refused (decoding, validation, model error), by problem.",
            ["problem"],
            registry=r,
        )
        self.batch_size = Histogram(
            "conveyor_stream_batch_messages",
            "Messages per batch.",
            buckets=(*BATCH_BUCKETS, 8192),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "conveyor_stream_batch_duration_seconds",
            "Time from fetch to commit of one batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_seconds = Histogram(
            "conveyor_stream_model_duration_seconds",
            "Time of one model call.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "conveyor_stream_lag_messages",
            "Messages not yet committed, by partition (Kafka) or stream (Redis).",
            ["partition"],
            registry=r,
        )
        self._children: dict[tuple[str, str], Any] = {}

    def _child(self, metric: Any, family: str, label: str) -> Any:
        key = (family, label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(label)
        return child

    def dead(self, problem: str, n: int = 1) -> None:
        self._child(self.dead_letters, "dead", problem).inc(n)

    def set_lag(self, lag: dict[str, int]) -> None:
        for partition, value in lag.items():
            self._child(self.lag, "lag", partition).set(value)

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        """Expose /metrics on host:port from a background thread; returns the server."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server
