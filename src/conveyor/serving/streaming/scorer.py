"""The streaming scorer: fetch a batch, score it, deliver, then commit.

One loop, one batch in flight::

    fetch (<= max_batch messages, waits <= max_wait)
      -> decode (codec) and validate (the online server's Validator) each message;
         refused ones become dead letters naming the problem
      -> one vectorized model call on the model thread (a model error on the batch is
         retried row by row, so one poison row fails alone)
      -> sink.send(outputs); dead_letter.send(refusals)   # broker acknowledged
      -> source.commit(batch)                             # only now

A crash anywhere before the commit redelivers the batch (at-least-once; the outputs
already written are then duplicated, and carry the same ``input`` position so consumers
can drop them). `stop()` (SIGTERM/SIGINT in `run_stream`) lets the batch in flight finish
and commit, then closes everything.

Hot reload polls the same `ModelSource` as the online server; the new version is loaded
beside the old one and takes over at the next batch boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ServingError
from conveyor.serving.predlog import LogPolicy, PredictionLogger
from conveyor.serving.servable import load_if_moved
from conveyor.serving.streaming.base import Message, OutMessage, Sink, Source
from conveyor.serving.streaming.codecs import get_codec
from conveyor.serving.streaming.metrics import StreamMetrics
from conveyor.serving.validation import RequestError, Unseen, build_frame

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from conveyor.serving.servable import ModelSource, Servable
    from conveyor.stores.artifacts import ArtifactStore

logger = logging.getLogger("conveyor.serving.streaming")


@dataclass(frozen=True)
class StreamOptions:
    """How a stream is scored.

    Attributes:
        max_batch: Most messages per batch (one model call).
        max_wait: Longest wait in seconds for messages when none are ready; under load
            batches fill from what the client already fetched and never wait.
        unseen: A category value not seen in training: ``"reject"`` (dead letter) or
            ``"pass"`` it to the model.
        codec: Name of the message codec (``json``; see `codecs.register_codec`).
        reload_interval: Seconds between checks for a moved alias; None never checks.
        prediction_log: Segment roll limits, or None to log no predictions.
        lag_interval: Seconds between lag measurements.
    """

    max_batch: int = 1000
    max_wait: float = 0.05
    unseen: Unseen = "reject"
    codec: str = "json"
    reload_interval: float | None = 5.0
    prediction_log: LogPolicy | None = field(default_factory=LogPolicy)
    lag_interval: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise ServingError(
                "The 'max_batch' parameter of StreamOptions must be an int >= 1. Got "
                f"{self.max_batch!r} instead."
            )
        if self.max_wait < 0:
            raise ServingError(
                "The 'max_wait' parameter of StreamOptions must be >= 0 seconds. Got "
                f"{self.max_wait!r} instead."
            )
        if self.unseen not in ("reject", "pass"):
            raise ServingError(
                "The 'unseen' parameter of StreamOptions must be 'reject' or 'pass'. Got "
                f"{self.unseen!r} instead."
            )
        if self.reload_interval is not None and self.reload_interval <= 0:
            raise ServingError(
                "The 'reload_interval' parameter of StreamOptions must be > 0 seconds or "
                f"None. Got {self.reload_interval!r} instead."
            )


@dataclass
class StreamStats:
    """Counts of one scorer run."""

    messages_in: int = 0
    messages_out: int = 0
    dead_letters: int = 0
    batches: int = 0
    reloads: int = 0
    undelivered: int = 0
    seconds: float = 0.0
    first_fetch: float | None = None
    last_commit: float | None = None

    @property
    def messages_per_second(self) -> float:
        """Messages in per second, from the first fetch to the last commit."""
        if self.first_fetch is None or self.last_commit is None:
            return 0.0
        return self.messages_in / max(self.last_commit - self.first_fetch, 1e-9)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Refusal:
    __slots__ = ("field", "message", "problem", "reason")

    def __init__(self, message: Message, problem: str, reason: str, field: str | None) -> None:
        self.message = message
        self.problem = problem
        self.reason = reason
        self.field = field


def _one_record_text(text: str) -> str:
    # The validator names fields of a request body ("records[0].age"); a message is one record.
    return text.replace("records[0].", "").replace("records[0]", "The message")


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


class StreamScorer:
    """Scores the messages of `source` with the model of `model`, writing to `sink`.

    Args:
        model: Where the model comes from (`RegistrySource("churn@production")` follows
            the alias; `FixedSource` serves an in-memory model).
        source: Input topic or stream (not started).
        sink: Output topic or stream (not started).
        dead_letter: Where refused messages go with the reason; None logs and counts them.
        options: Batching, validation, reload and logging behaviour.
        log_store: Artifact store receiving prediction-log segments (None: no logging).
    """

    def __init__(
        self,
        model: ModelSource,
        source: Source,
        sink: Sink,
        *,
        dead_letter: Sink | None = None,
        options: StreamOptions | None = None,
        log_store: ArtifactStore | None = None,
    ) -> None:
        self.model_source = model
        self.source = source
        self.sink = sink
        self.dead_letter = dead_letter
        self.options = options or StreamOptions()
        self.codec = get_codec(self.options.codec)
        self.metrics = StreamMetrics()
        self.stats = StreamStats()
        self.servable: Servable | None = None
        self.predlog: PredictionLogger | None = None
        if log_store is not None and self.options.prediction_log is not None:
            self.predlog = PredictionLogger(
                log_store,
                self.options.prediction_log,
                on_written=lambda rows, _path: self.metrics.predlog_rows.inc(rows),
                on_dropped=self.metrics.predlog_dropped.inc,
                on_rejected=self.metrics.predlog_rejected.inc,
            )
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._next_lag = 0.0

    # -- lifecycle ----------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the batch in flight, commit it, and return from `run`."""
        if not self._stop.is_set():
            logger.warning("stopping: finishing the batch in flight")
        self._stop.set()

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the model is loaded and the source and sinks are connected.

        Raises:
            TimeoutError: not ready within `timeout` seconds.
        """
        async with asyncio.timeout(timeout):
            await self._ready.wait()

    async def run(self) -> StreamStats:
        """Score until `stop()` is called.

        Raises:
            ServingError: the model cannot be loaded, a broker cannot be reached at start,
                or the scorer was stopped while the sink refused a batch (that batch is
                not committed and will be delivered again).
        """
        started = time.monotonic()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="conveyor-model")
        opened: list[Source | Sink] = []
        watcher: asyncio.Task[None] | None = None
        try:
            version = await asyncio.to_thread(self.model_source.current_version)
            self._use(await asyncio.to_thread(self.model_source.load, version))
            for part in (self.source, self.sink, self.dead_letter):
                if part is not None:
                    await part.start()
                    opened.append(part)
            if self.predlog is not None:
                self.predlog.start()
            if self.options.reload_interval is not None:
                watcher = asyncio.get_running_loop().create_task(self._watch())
            self._ready.set()
            logger.info("scoring %s -> %s", self.source.description, self.sink.description)
            await self._loop()
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            for part in opened:
                try:
                    await part.close()
                except Exception:
                    logger.exception("error closing %s", part.description)
            if self.predlog is not None:
                await asyncio.to_thread(self.predlog.close)
            self._executor.shutdown(wait=True)
            self.stats.seconds = time.monotonic() - started
        if self.stats.undelivered:
            raise ServingError(
                f"Stopped while {self.stats.undelivered} scored messages could not be "
                "delivered; they were not committed and will be scored again on restart."
            )
        return self.stats

    async def _loop(self) -> None:
        # The next fetch runs while the current batch is scored and delivered, so broker
        # round trips overlap model work. On stop the prefetched batch is processed too:
        # nothing fetched is left pending.
        opts = self.options
        delay = 0.1
        pending: asyncio.Task[list[Message]] | None = None
        while True:
            if pending is None:
                if self._stop.is_set():
                    return
                pending = asyncio.ensure_future(self.source.fetch(opts.max_batch, opts.max_wait))
            try:
                messages = await pending
            except Exception as exc:
                pending = None
                self.metrics.error("fetch")
                logger.error("cannot fetch from %s: %s", self.source.description, exc)
                await self._pause(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.1
            pending = None
            if not self._stop.is_set():
                pending = asyncio.ensure_future(self.source.fetch(opts.max_batch, opts.max_wait))
            if messages and not await self._process(messages):
                if pending is not None:
                    pending.cancel()
                    with contextlib.suppress(BaseException):
                        await pending
                return
            now = time.monotonic()
            if now >= self._next_lag:
                self._next_lag = now + opts.lag_interval
                try:
                    self.metrics.set_lag(await self.source.lag())
                except Exception as exc:
                    self.metrics.error("lag")
                    logger.debug("cannot measure lag: %s", exc)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    def _use(self, servable: Servable) -> None:
        old = self.servable
        self.servable = servable
        self.metrics.serving(servable.name, servable.version, old.version if old else None)
        if old is not None:
            self.stats.reloads += 1
            self.metrics.reloads.inc()
            logger.warning(
                "now scoring with %s version %s (was %s)",
                servable.name,
                servable.version,
                old.version,
            )

    async def _watch(self) -> None:
        interval = self.options.reload_interval
        assert interval is not None
        while True:
            await asyncio.sleep(interval)
            try:
                # Loaded beside the old version; the loop picks it up at the next batch.
                servable = await load_if_moved(self.model_source, self.servable)
                if servable is not None:
                    self._use(servable)
            except Exception as exc:
                self.metrics.error("model_load")
                logger.error("cannot reload %s: %s", self.model_source.ref, exc)

    # -- one batch ----------------------------------------------------------------------

    async def _process(self, messages: list[Message]) -> bool:
        """Score, deliver and commit one batch; False when stopped before delivering."""
        started = time.perf_counter()
        if self.stats.first_fetch is None:
            self.stats.first_fetch = time.time()
        servable = self.servable
        assert servable is not None and self._executor is not None
        n_in = len(messages)
        self.metrics.messages_in.inc(n_in)
        self.metrics.batch_size.observe(n_in)
        self.stats.messages_in += n_in
        good, columns, refused = self._prepare(servable, messages)
        outputs: list[OutMessage] = []
        if good:
            t0 = time.perf_counter()
            good, frame, preds, proba, failed = await asyncio.get_running_loop().run_in_executor(
                self._executor, _predict, servable, good, columns
            )
            self.metrics.model_seconds.observe(time.perf_counter() - t0)
            refused.extend(failed)
            if good:
                outputs = self._render(servable, good, preds, proba)
        dead = self._dead_letters(servable, refused) if refused else []
        if not await self._deliver(self.sink, outputs, "sink"):
            self.stats.undelivered += len(outputs)
            return False
        if dead:
            if self.dead_letter is None:
                for r in refused:
                    logger.error(
                        "dropped %s (no dead-letter destination): %s", r.message.position, r.reason
                    )
            elif not await self._deliver(self.dead_letter, dead, "dead_letter"):
                self.stats.undelivered += len(dead)
                return False
            for r in refused:
                self.metrics.dead(r.problem)
            self.stats.dead_letters += len(refused)
        try:
            await self.source.commit(messages)
        except Exception as exc:
            # At-least-once still holds: the batch is delivered again, outputs duplicated.
            self.metrics.error("commit")
            logger.warning(
                "commit to %s failed (%s); the batch will be redelivered",
                self.source.description,
                exc,
            )
        self.stats.last_commit = time.time()
        if good and self.predlog is not None:
            self.predlog.submit(
                servable.name,
                servable.version,
                frame=frame,
                preds=preds,
                proba=proba,
                requests=[(m.position, 1) for m in good],
            )
        self.metrics.messages_out.inc(len(outputs))
        self.stats.messages_out += len(outputs)
        self.stats.batches += 1
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        return True

    async def _deliver(self, sink: Sink, messages: Sequence[OutMessage], kind: str) -> bool:
        delay = 0.1
        while True:
            try:
                await sink.send(messages)
                return True
            except Exception as exc:
                self.metrics.error(kind)
                logger.error("%s refused %d messages: %s", sink.description, len(messages), exc)
            if self._stop.is_set():
                return False
            await self._pause(delay)
            delay = min(delay * 2, 5.0)

    def _prepare(
        self, servable: Servable, messages: list[Message]
    ) -> tuple[list[Message], dict[str, list[Any]], list[_Refusal]]:
        decode = self.codec.decode
        refused: list[_Refusal] = []
        good: list[Message] = []
        records: list[Any] = []
        for m in messages:
            try:
                value = decode(m.value)
            except Exception as exc:
                refused.append(
                    _Refusal(m, "decode", f"The body is not valid {self.codec.name}: {exc}", None)
                )
                continue
            if type(value) is not dict:
                refused.append(
                    _Refusal(
                        m,
                        "bad_shape",
                        "The body must be an object mapping column names to values. Got "
                        f"{type(value).__name__}.",
                        None,
                    )
                )
                continue
            records.append(value)
            good.append(m)
        validator = servable.validator(self.options.unseen)
        if not records:
            return [], {}, refused
        try:
            columns, _ = validator.records(records)
        except RequestError:
            # Some record is bad: check one by one so only the bad ones are refused.
            columns = {name: [] for name in validator.names}
            kept: list[Message] = []
            for m, record in zip(good, records, strict=True):
                try:
                    one, _ = validator.records([record])
                except RequestError as exc:
                    refused.append(
                        _Refusal(
                            m,
                            exc.problem,
                            _one_record_text(exc.message),
                            _one_record_text(exc.field) if exc.field else None,
                        )
                    )
                    continue
                for name, values in one.items():
                    columns[name].append(values[0])
                kept.append(m)
            good = kept
        return good, columns, refused

    def _render(
        self,
        servable: Servable,
        good: list[Message],
        preds: np.ndarray,
        proba: np.ndarray | None,
    ) -> list[OutMessage]:
        encode = self.codec.encode
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        name, version = servable.name, servable.version
        labels = [str(c) for c in servable.classes] if servable.classes else None
        pred_list = preds.tolist()
        out: list[OutMessage] = []
        if proba is not None and labels is not None:
            for m, p, row in zip(good, pred_list, proba.tolist(), strict=True):
                body = {
                    "key": _text(m.key),
                    "prediction": p,
                    "probabilities": dict(zip(labels, row, strict=True)),
                    "model": name,
                    "version": version,
                    "timestamp": stamp,
                    "input": m.position,
                }
                out.append(OutMessage(encode(body), m.key, m.headers))
        else:
            for m, p in zip(good, pred_list, strict=True):
                body = {
                    "key": _text(m.key),
                    "prediction": p,
                    "model": name,
                    "version": version,
                    "timestamp": stamp,
                    "input": m.position,
                }
                out.append(OutMessage(encode(body), m.key, m.headers))
        return out

    def _dead_letters(self, servable: Servable, refused: list[_Refusal]) -> list[OutMessage]:
        encode = self.codec.encode
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        out = []
        for r in refused:
            m = r.message
            body: dict[str, Any] = {
                "error": r.reason,
                "problem": r.problem,
                "field": r.field,
                "input": m.position,
                "key": _text(m.key),
                "model": servable.name,
                "version": servable.version,
                "timestamp": stamp,
            }
            try:
                body["value"] = m.value.decode("utf-8")
            except UnicodeDecodeError:
                import base64

                body["value_base64"] = base64.b64encode(m.value).decode()
            headers = (*m.headers, ("conveyor-error", r.problem.encode()))
            out.append(OutMessage(encode(body), m.key, headers))
        return out


def _predict(
    servable: Servable, good: list[Message], columns: dict[str, list[Any]]
) -> tuple[list[Message], pd.DataFrame, np.ndarray, np.ndarray | None, list[_Refusal]]:
    """One model call for the batch; row by row when the batch call raises."""
    frame = build_frame(servable.rules, columns)
    try:
        preds, proba = servable.predict_frame(frame)
        return good, frame, preds, proba, []
    except Exception:
        logger.warning("the model failed on a batch of %d; retrying row by row", len(good))
    import numpy as np

    kept: list[int] = []
    failed: list[_Refusal] = []
    pred_parts: list[Any] = []
    proba_parts: list[Any] = []
    for i, m in enumerate(good):
        try:
            p, pr = servable.predict_frame(frame.iloc[i : i + 1])
        except Exception as exc:
            failed.append(
                _Refusal(m, "model_error", f"The model failed: {type(exc).__name__}: {exc}", None)
            )
            continue
        kept.append(i)
        pred_parts.append(p)
        proba_parts.append(pr)
    if not kept:
        return [], frame.iloc[:0], np.empty(0), None, failed
    proba_all = np.concatenate(proba_parts) if all(p is not None for p in proba_parts) else None
    return (
        [good[i] for i in kept],
        frame.iloc[kept].reset_index(drop=True),
        np.concatenate(pred_parts),
        proba_all,
        failed,
    )


async def run_stream(scorer: StreamScorer, *, metrics_port: int | None = None) -> StreamStats:
    """Run `scorer` until SIGTERM or SIGINT, which drain the batch in flight and commit.

    Args:
        scorer: The scorer to run.
        metrics_port: Serve Prometheus /metrics on 127.0.0.1:PORT; None for no endpoint.
    """
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, scorer.stop)
    server = scorer.metrics.serve(metrics_port) if metrics_port is not None else None
    try:
        return await scorer.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if server is not None:
            server.shutdown()
            server.server_close()
