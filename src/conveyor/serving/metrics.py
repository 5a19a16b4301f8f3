"""Prometheus metrics of one server process, in a registry of its own (not the global one).

Label children are resolved once and cached, so counting a request costs a dict lookup and
an increment rather than prometheus-client's label parsing.
"""

from __future__ import annotations

from typing import Any

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ModelMetrics:
    """What every scoring process reports, under its own metric prefix: errors by kind, the
    model version in use, hot reloads and prediction-log health. Kept in a registry of its
    own (not prometheus-client's global one)."""

    def __init__(self, prefix: str, errors_help: str, model_help: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.errors = Counter(f"{prefix}_errors", errors_help, ["kind"], registry=r)
        self.model_info = Gauge(
            f"{prefix}_model_info", model_help, ["model", "version"], registry=r
        )
        self.reloads = Counter(
            f"{prefix}_model_reloads", "Hot swaps to another model version.", registry=r
        )
        self.predlog_rows = Counter(
            f"{prefix}_prediction_log_rows",
            "Prediction rows written to the prediction log.",
            registry=r,
        )
        self.predlog_dropped = Counter(
            f"{prefix}_prediction_log_dropped_rows",
            "Prediction rows dropped because the log queue was full or a write failed.",
            registry=r,
        )
        self.predlog_rejected = Counter(
            f"{prefix}_prediction_log_rejected_rows",
            "Prediction rows that could not be written with the others and went to a reject "
            "segment (prediction-rejects/...) with the reason.",
            registry=r,
        )
        self._errors: dict[str, Any] = {}

    def error(self, kind: str) -> None:
        child = self._errors.get(kind)
        if child is None:
            child = self._errors[kind] = self.errors.labels(kind)
        child.inc()

    def serving(self, model: str, version: str, previous: str | None) -> None:
        if previous is not None:
            self.model_info.labels(model, previous).set(0)
        self.model_info.labels(model, version).set(1)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class ServingMetrics(ModelMetrics):
    """Requests, latency, batch sizes, errors, model version, prediction-log health."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        super().__init__(
            "conveyor_serving",
            "Refused or failed requests by kind (validation problem, auth, model, ...).",
            "1 for the model version being served.",
        )
        r = self.registry
        self.requests = Counter(
            "conveyor_serving_requests",
            "HTTP requests by endpoint and status code.",
            ["endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "conveyor_serving_request_duration_seconds",
            "Time from request start to response, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "conveyor_serving_batch_rows",
            "Rows per model call (micro-batches group concurrent requests).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_requests = Histogram(
            "conveyor_serving_batch_requests",
            "Requests answered by one model call.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.model_seconds = Histogram(
            "conveyor_serving_model_duration_seconds",
            "Time of one model call (frame building included).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predlog_segments = Counter(
            "conveyor_serving_prediction_log_segments",
            "Parquet segments written to the prediction log.",
            registry=r,
        )
        self.lane_predictions = Counter(
            "conveyor_serving_release_requests",
            "Requests scored per release lane (champion, challenger, shadow) and version.",
            ["lane", "version"],
            registry=r,
        )
        self.shadow_dropped = Counter(
            "conveyor_serving_shadow_dropped",
            "Requests not shadow-scored: the shadow queue was full or no shadow version loaded.",
            registry=r,
        )
        self.shadow_errors = Counter(
            "conveyor_serving_shadow_errors",
            "Shadow scorings that failed (never seen by clients).",
            registry=r,
        )
        self.release_fallbacks = Counter(
            "conveyor_serving_canary_fallbacks",
            "Canary requests answered by the champion because no challenger was loaded.",
            registry=r,
        )
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._lanes: dict[tuple[str, str], Any] = {}

    def answered(self, lane: str, version: str) -> None:
        child = self._lanes.get((lane, version))
        if child is None:
            child = self._lanes[(lane, version)] = self.lane_predictions.labels(lane, version)
        child.inc()

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (
                self.requests.labels(endpoint, str(status)),
                self.latency.labels(endpoint),
            )
        pair[0].inc()
        pair[1].observe(seconds)
