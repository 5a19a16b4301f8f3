"""The online model server: a lean ASGI application.

The request path is hand-written ASGI rather than a web framework's router: a dict lookup
routes, orjson parses and renders, validation runs over the JSON values, and the
micro-batcher calls the model. Per-request work is what a one-row request costs, so every
microsecond here is throughput.

Endpoints::

    POST /predict                                 records or columns JSON
    GET  /healthz  /readyz  /metrics  /openapi.json  /docs
    GET  /v2  /v2/health/live  /v2/health/ready     Open Inference Protocol v2
    GET  /v2/models/{m}[/versions/{v}][/ready]
    POST /v2/models/{m}[/versions/{v}]/infer

Hot reload: a background task polls the model source; when the reference points at a new
version, the version is loaded beside the old one and the live reference is swapped in one
assignment. Requests that already hold the old version finish on it; its batcher drains
and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from conveyor.exceptions import ServingError
from conveyor.serving.auth import BearerAuth
from conveyor.serving.batching import BatchPolicy, MicroBatcher
from conveyor.serving.limits import ServerLimits
from conveyor.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from conveyor.serving.metrics import ServingMetrics
from conveyor.serving.predlog import LogPolicy, PredictionLogger
from conveyor.serving.release import ReleasePolicy, goes_to_challenger, request_key
from conveyor.serving.servable import load_if_moved
from conveyor.serving.v2 import columns_from_infer, infer_response, model_metadata, wire
from conveyor.serving.validation import RequestError, Unseen

if TYPE_CHECKING:
    import numpy as np

    from conveyor.serving.servable import ModelSource, Servable
    from conveyor.stores.artifacts import ArtifactStore

logger = logging.getLogger("conveyor.serving")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MiB = 1024 * 1024
LIVENESS = frozenset({"/healthz", "/v2/health/live"})
_JSON = b"application/json"
_NUMPY = orjson.OPT_SERIALIZE_NUMPY
# The release key header of the request being handled (each ASGI request is its own task).
_RELEASE_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "conveyor_release_key", default=None
)


@dataclass(frozen=True)
class ServeOptions:
    """How a server behaves (everything but where it binds).

    Attributes:
        unseen: A category value not seen in training: ``"reject"`` (422) or ``"pass"``.
        batching: Micro-batching limits.
        max_body_bytes: Larger request bodies get 413.
        reload_interval: Seconds between checks for a moved alias; None never checks.
        token: Bearer token required on every endpoint but liveness; None for none.
        prediction_log: Segment roll limits, or None to log no predictions.
        load_wait: Seconds a request arriving before the first model load waits for it
            (then 503); the wait ends early when the load fails.
        freeze_heap: After each model load, move the objects alive then (modules, the
            model) out of the garbage collector's sight with `gc.freeze`. A full
            collection over scikit-learn's and pandas' objects pauses the event loop for
            ~100 ms, the whole tail latency of a busy server. The collector, if paused
            while the process started, is resumed after the first load attempt. Only for
            a server that owns its process: `serve` sets it.
        limits: Connection cap and keep-alive, header and body timeouts (applied by
            `serve`, i.e. under uvicorn).
        release: A shadow or canary release beside the served reference (None: none).
    """

    unseen: Unseen = "reject"
    batching: BatchPolicy = field(default_factory=BatchPolicy)
    max_body_bytes: int = 8 * MiB
    reload_interval: float | None = 5.0
    token: str | None = field(default=None, repr=False)
    prediction_log: LogPolicy | None = field(default_factory=LogPolicy)
    load_wait: float = 30.0
    freeze_heap: bool = False
    limits: ServerLimits = field(default_factory=ServerLimits)
    release: ReleasePolicy | None = None

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ServingError(
                "The 'max_body_bytes' parameter of ServeOptions must be an int >= 1. Got "
                f"{self.max_body_bytes!r} instead."
            )
        if self.reload_interval is not None and self.reload_interval <= 0:
            raise ServingError(
                "The 'reload_interval' parameter of ServeOptions must be > 0 seconds or "
                f"None. Got {self.reload_interval!r} instead."
            )
        if self.load_wait < 0:
            raise ServingError(
                "The 'load_wait' parameter of ServeOptions must be >= 0 seconds. Got "
                f"{self.load_wait!r} instead."
            )


class _Live:
    __slots__ = ("batcher", "servable")

    def __init__(self, servable: Servable, batcher: MicroBatcher) -> None:
        self.servable = servable
        self.batcher = batcher


class _Disconnected(Exception):
    pass


def _json(status: int, value: Any) -> tuple[int, bytes, bytes]:
    return status, orjson.dumps(value, option=_NUMPY), _JSON


class ServingApp:
    """ASGI application serving one model reference.

    Construct with `create_app`. Under uvicorn the ASGI lifespan starts and stops it; in
    process (tests, notebooks) use ``async with app.running(): ...``.
    """

    def __init__(
        self,
        source: ModelSource,
        options: ServeOptions | None = None,
        *,
        log_store: ArtifactStore | None = None,
        challenger: ModelSource | None = None,
    ) -> None:
        self.source = source
        self.options = options or ServeOptions()
        self.metrics = ServingMetrics()
        self._auth = BearerAuth(self.options.token) if self.options.token else None
        self._live: _Live | None = None
        self._load_error: str | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._draining: set[asyncio.Task[None]] = set()
        self._loaded = asyncio.Event()
        self._load_done = asyncio.Event()  # the first load finished, well or not
        self._ids = itertools.count(1)
        self._id_prefix = f"{os.getpid():x}{int(time.time() * 1000) % 0xFFFFFF:06x}"
        self.predlog: PredictionLogger | None = None
        if log_store is not None and self.options.prediction_log is not None:
            self.predlog = PredictionLogger(
                log_store,
                self.options.prediction_log,
                on_written=self._log_written,
                on_dropped=self.metrics.predlog_dropped.inc,
                on_rejected=self.metrics.predlog_rejected.inc,
            )
        self._openapi: bytes | None = None
        self.release = self.options.release if challenger is not None else None
        self._challenger: ServingApp | None = None
        self._release_header = (
            self.release.key_header.encode("latin-1") if self.release is not None else None
        )
        self._shadow_tasks: set[asyncio.Task[None]] = set()
        if challenger is not None:
            from dataclasses import replace

            # The challenger: its own version, batcher, hot reload and prediction log.
            batching = self.options.batching
            if self.release is not None and self.release.mode == "shadow":
                # Nobody waits for shadow answers: fewer, larger model calls leave the CPU
                # to the answer path.
                batching = replace(
                    batching,
                    max_batch_rows=max(batching.max_batch_rows, 1024),
                    max_wait=max(batching.max_wait, 0.02),
                )
            self._challenger = ServingApp(
                challenger,
                replace(
                    self.options, token=None, release=None, freeze_heap=False, batching=batching
                ),
                log_store=log_store,
            )
        self._static: dict[tuple[str, str], Callable[..., Awaitable[tuple[int, bytes, bytes]]]] = {
            ("POST", "/predict"): self._predict,
            ("GET", "/healthz"): self._healthz,
            ("GET", "/readyz"): self._readyz,
            ("GET", "/metrics"): self._metrics,
            ("GET", "/openapi.json"): self._openapi_json,
            ("GET", "/docs"): self._docs,
            ("GET", "/v2"): self._v2_server,
            ("GET", "/v2/health/live"): self._healthz,
            ("GET", "/v2/health/ready"): self._readyz,
        }

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def servable(self) -> Servable | None:
        """The model version answering new requests, or None before the first load."""
        live = self._live
        return live.servable if live is not None else None

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="conveyor-model")
        if self.predlog is not None:
            self.predlog.start()
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        if self._challenger is not None:
            await self._challenger.start()

    async def stop(self) -> None:
        for shadow in list(self._shadow_tasks):
            with contextlib.suppress(Exception):
                await shadow
        if self._challenger is not None:
            await self._challenger.stop()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        live, self._live = self._live, None
        if live is not None:
            await live.batcher.close()
        for task in list(self._draining):
            await task
        if self.predlog is not None:
            await asyncio.to_thread(self.predlog.close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ServingApp]:
        """Start background work (model loading, reload polling, logging) for the block."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    async def wait_ready(self, timeout: float = 30.0) -> Servable:
        """Wait for the first model load.

        Raises:
            ServingError: no model loaded within `timeout` (the load error is named).
        """
        try:
            async with asyncio.timeout(timeout):
                await self._loaded.wait()
        except TimeoutError:
            raise ServingError(
                f"No model loaded within {timeout} s: {self._load_error or 'still loading'}"
            ) from None
        servable = self.servable
        assert servable is not None
        return servable

    async def _watch(self) -> None:
        interval = self.options.reload_interval
        while True:
            try:
                servable = await load_if_moved(
                    self.source, self._live.servable if self._live is not None else None
                )
                if servable is not None:
                    self._swap(servable)
                self._load_error = None
            except Exception as exc:
                self._load_error = f"{type(exc).__name__}: {exc}"
                self.metrics.error("model_load")
                logger.error("cannot load %s: %s", self.source.ref, self._load_error)
            self._load_done.set()
            if self.options.freeze_heap and not gc.isenabled():
                gc.enable()  # `serve` pauses the collector while the process starts
            if interval is None and self._live is not None:
                return
            await asyncio.sleep(interval if interval is not None else 1.0)

    def _swap(self, servable: Servable) -> None:
        assert self._executor is not None
        batcher = MicroBatcher(
            servable,
            self.options.batching,
            self._executor,
            self.metrics,
            self._log_batch if self.predlog is not None else None,
        )
        batcher.start()
        old = self._live
        self._live = _Live(servable, batcher)  # the swap: new requests see the new version
        self._openapi = None
        self.metrics.serving(servable.name, servable.version, old.servable.version if old else None)
        if old is not None:
            self.metrics.reloads.inc()
            logger.warning(
                "now serving %s version %s (was %s)",
                servable.name,
                servable.version,
                old.servable.version,
            )
            task = asyncio.get_running_loop().create_task(self._retire(old.batcher))
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)
        elif self.options.freeze_heap:
            gc.freeze()
        self._loaded.set()

    async def _retire(self, batcher: MicroBatcher) -> None:
        await batcher.close()
        del batcher
        if self.options.freeze_heap:
            # Let the requests answered last send their responses and drop the old version,
            # then collect it once and freeze what remains (the new version).
            await asyncio.sleep(0)
            gc.unfreeze()
            gc.collect()
            gc.freeze()

    def _log_batch(
        self,
        servable: Servable,
        frame: Any,
        preds: np.ndarray,
        proba: np.ndarray | None,
        requests: list[tuple[str, int]],
    ) -> None:
        assert self.predlog is not None
        self.predlog.submit(
            servable.name,
            servable.version,
            frame=frame,
            preds=preds,
            proba=proba,
            requests=requests,
        )

    def _log_written(self, rows: int, path: str) -> None:
        self.metrics.predlog_rows.inc(rows)
        self.metrics.predlog_segments.inc()

    # -- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        authorization = request_id = length = release_key = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value
            elif key == b"content-length":
                length = value
            elif key == b"x-request-id":
                request_id = value
            elif key == self._release_header:
                release_key = value
        if self.release is not None:
            _RELEASE_KEY.set(release_key.decode("latin-1")[:256] if release_key else None)
        handler = self._static.get((method, path))
        endpoint = path
        args: tuple[Any, ...] = ()
        if handler is None:
            handler, endpoint, args = self._route_dynamic(method, path)
        rid = (
            request_id.decode("latin-1")[:128]
            if request_id
            else f"{self._id_prefix}-{next(self._ids):x}"
        )
        extra: list[tuple[bytes, bytes]] = []
        try:
            if handler is None:
                raise self._unknown(method, path)
            if (
                self._auth is not None
                and path not in LIVENESS
                and not self._auth.allows(authorization)
            ):
                extra.append((b"www-authenticate", b"Bearer"))
                raise RequestError(
                    401,
                    "This server needs 'Authorization: Bearer <token>' on this endpoint.",
                    problem="unauthorized",
                    field="Authorization",
                )
            if method == "POST":
                body = await self._body(receive, length)
                status, payload, ctype = await handler(body, rid, *args)
            else:
                status, payload, ctype = await handler(*args)
        except RequestError as exc:
            self.metrics.error(exc.problem)
            content = exc.body()
            content["request_id"] = rid
            status, payload, ctype = _json(exc.status, content)
        except _Disconnected:
            self.metrics.observe(endpoint, 499, time.perf_counter() - start)
            return
        except ServingError as exc:
            status, payload, ctype = _json(500, {"error": str(exc), "request_id": rid})
        except Exception as exc:
            logger.exception("unexpected error on %s %s", method, path)
            self.metrics.error("internal")
            status, payload, ctype = _json(
                500, {"error": f"Internal error: {type(exc).__name__}", "request_id": rid}
            )
        headers = [
            (b"content-type", ctype),
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", rid.encode("latin-1")),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        self.metrics.observe(endpoint, status, time.perf_counter() - start)

    def _route_dynamic(
        self, method: str, path: str
    ) -> tuple[Callable[..., Awaitable[tuple[int, bytes, bytes]]] | None, str, tuple[Any, ...]]:
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[0] == "v2" and parts[1] == "models":
            name = parts[2]
            rest = parts[3:]
            version = None
            if len(rest) >= 2 and rest[0] == "versions":
                version, rest = rest[1], rest[2:]
            if not rest and method == "GET":
                return self._v2_model, "/v2/models/{model}", (name, version)
            if rest == ["ready"] and method == "GET":
                return self._v2_model_ready, "/v2/models/{model}/ready", (name, version)
            if rest == ["infer"] and method == "POST":
                return self._v2_infer, "/v2/models/{model}/infer", (name, version)
        return None, "other", ()

    def _unknown(self, method: str, path: str) -> RequestError:
        if any(p == path for (_, p) in self._static) or path.startswith("/v2/models/"):
            return RequestError(
                405, f"{path} does not accept {method}.", problem="method_not_allowed"
            )
        return RequestError(
            404,
            f"No endpoint {path!r}. Try POST /predict, POST /v2/models/<name>/infer or GET /docs.",
            problem="not_found",
        )

    async def _body(self, receive: Receive, length: bytes | None) -> bytes:
        limit = self.options.max_body_bytes
        if length is not None and int(length) > limit:
            raise RequestError(
                413,
                f"The request body has {int(length)} bytes; this server accepts at most "
                f"{limit}. Send fewer rows per request.",
                problem="too_large",
                field="body",
            )
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        body: bytes = message.get("body", b"")
        if not message.get("more_body"):
            return body
        chunks = [body]
        size = len(body)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestError(
                    413,
                    f"The request body exceeds {limit} bytes. Send fewer rows per request.",
                    problem="too_large",
                    field="body",
                )
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _wait_live(self) -> _Live:
        if self._live is None and not self._load_done.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.load_wait):
                    await self._load_done.wait()
        return self._require_live()

    def _require_live(self) -> _Live:
        live = self._live
        if live is None:
            raise RequestError(
                503,
                "No model is loaded yet"
                + (f" ({self._load_error})" if self._load_error else "")
                + "; retry when /readyz answers 200.",
                problem="not_ready",
            )
        return live

    @staticmethod
    def _parse(body: bytes) -> Any:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestError(
                400, f"The body is not valid JSON: {exc}", problem="malformed_json", field="body"
            ) from None

    # -- handlers -----------------------------------------------------------------------

    async def _predict(self, body: bytes, rid: str) -> tuple[int, bytes, bytes]:
        doc = self._parse(body)
        live = await self._wait_live()
        live, lane = self._lane(live, doc, rid)
        validator = live.servable.validator(self.options.unseen)
        if type(doc) is dict and "records" in doc:
            columns, rows = validator.records(doc["records"])
        elif type(doc) is dict and "columns" in doc:
            columns, rows = validator.columns(doc["columns"])
        else:
            raise RequestError(
                422,
                'The body must be {"records": [{column: value, ...}, ...]} or '
                '{"columns": {column: [values...], ...}}.',
                problem="missing",
                field="records",
            )
        answer = await live.batcher.submit(columns, rows, rid)
        out: dict[str, Any] = {
            "model": live.servable.name,
            "version": answer.version,
            "request_id": rid,
            "predictions": wire(answer.predictions),
        }
        if answer.probabilities is not None:
            out["probabilities"] = wire(answer.probabilities)
            out["classes"] = live.servable.classes
        self._after_answer(live, lane, answer.version, doc, rid, (columns, rows), v2=False)
        return 200, orjson.dumps(out, option=_NUMPY), _JSON

    # -- shadow and canary ----------------------------------------------------------------

    def _lane(self, live: _Live, doc: Any, rid: str) -> tuple[_Live, str]:
        """The version that answers this request: the champion, or the canary challenger."""
        policy = self.release
        if policy is None or policy.mode != "canary":
            return live, "champion"
        key = request_key(policy, _RELEASE_KEY.get(), doc, rid)
        if goes_to_challenger(policy, key):
            assert self._challenger is not None
            challenger = self._challenger._live
            if challenger is not None:
                return challenger, "challenger"
            self.metrics.release_fallbacks.inc()
        return live, "champion"

    def _after_answer(
        self,
        live: _Live,
        lane: str,
        version: str,
        doc: Any,
        rid: str,
        parsed: tuple[dict[str, list[Any]], int],
        *,
        v2: bool,
    ) -> None:
        self.metrics.answered(lane, version)
        policy = self.release
        if policy is None or policy.mode != "shadow":
            return
        assert self._challenger is not None
        challenger = self._challenger._live
        if challenger is None or len(self._shadow_tasks) >= policy.shadow_queue:
            self.metrics.shadow_dropped.inc()
            return
        # Same input columns and rules: the values admitted for the answer are reused.
        same = challenger.servable.rules == live.servable.rules
        task = asyncio.get_running_loop().create_task(
            self._shadow(challenger, doc, rid, v2, parsed if same else None)
        )
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)

    async def _shadow(
        self,
        live: _Live,
        doc: Any,
        rid: str,
        v2: bool,
        parsed: tuple[dict[str, list[Any]], int] | None,
    ) -> None:
        """Score `doc` with the shadow version; its predictions are logged under `rid`."""
        await asyncio.sleep(0)  # let the answer go out first
        try:
            validator = live.servable.validator(self.options.unseen)
            if parsed is not None:
                columns, rows = parsed
            elif v2:
                columns, rows = columns_from_infer(doc, validator)
            elif "records" in doc:
                columns, rows = validator.records(doc["records"])
            else:
                columns, rows = validator.columns(doc["columns"])
            answer = await live.batcher.submit(columns, rows, rid)
            self.metrics.answered("shadow", answer.version)
        except Exception:  # a shadow failure never reaches the client
            self.metrics.shadow_errors.inc()

    async def _healthz(self) -> tuple[int, bytes, bytes]:
        return 200, b'{"live":true}', _JSON

    async def _readyz(self) -> tuple[int, bytes, bytes]:
        live = self._live
        if live is None:
            return _json(503, {"ready": False, "error": self._load_error})
        return _json(
            200, {"ready": True, "model": live.servable.name, "version": live.servable.version}
        )

    async def _metrics(self) -> tuple[int, bytes, bytes]:
        return 200, self.metrics.render(), METRICS_CONTENT_TYPE.encode()

    def _openapi_doc(self) -> dict[str, Any]:
        from conveyor._version import __version__
        from conveyor.serving.openapi import openapi_document

        return openapi_document(self.servable, auth=self._auth is not None, version=__version__)

    async def _openapi_json(self) -> tuple[int, bytes, bytes]:
        if self._openapi is None:
            self._openapi = orjson.dumps(self._openapi_doc())
        return 200, self._openapi, _JSON

    async def _docs(self) -> tuple[int, bytes, bytes]:
        from conveyor.serving.openapi import docs_html

        return 200, docs_html(self._openapi_doc()).encode(), b"text/html; charset=utf-8"

    # -- Open Inference Protocol v2 ----------------------------------------------------

    async def _v2_server(self) -> tuple[int, bytes, bytes]:
        from conveyor._version import __version__

        return _json(200, {"name": "conveyor", "version": __version__, "extensions": []})

    def _v2_live(self, name: str, version: str | None, live: _Live | None = None) -> _Live:
        live = live or self._require_live()
        servable = live.servable
        if name != servable.name:
            raise RequestError(
                404,
                f"This server serves the model {servable.name!r}, not {name!r}.",
                problem="not_found",
                field="model",
            )
        if version is not None and version != servable.version:
            raise RequestError(
                404,
                f"Model {name!r} is served at version {servable.version}, not {version!r}.",
                problem="not_found",
                field="version",
            )
        return live

    async def _v2_model(self, name: str, version: str | None) -> tuple[int, bytes, bytes]:
        return _json(200, model_metadata(self._v2_live(name, version).servable))

    async def _v2_model_ready(self, name: str, version: str | None) -> tuple[int, bytes, bytes]:
        self._v2_live(name, version)
        return _json(200, {"name": name, "ready": True})

    async def _v2_infer(
        self, body: bytes, rid: str, name: str, version: str | None
    ) -> tuple[int, bytes, bytes]:
        doc = self._parse(body)
        live = self._v2_live(name, version, await self._wait_live())
        if type(doc) is dict and type(doc.get("id")) is str:
            rid = doc["id"][:128]
        live, lane = self._lane(live, doc, rid)
        columns, rows = columns_from_infer(doc, live.servable.validator(self.options.unseen))
        answer = await live.batcher.submit(columns, rows, rid)
        out = infer_response(
            live.servable.name,
            answer.version,
            rid,
            answer.predictions,
            answer.probabilities,
            wanted=doc.get("outputs"),
            classes=live.servable.classes,
        )
        self._after_answer(live, lane, answer.version, doc, rid, (columns, rows), v2=True)
        return 200, orjson.dumps(out, option=_NUMPY), _JSON


def create_app(
    source: ModelSource,
    options: ServeOptions | None = None,
    *,
    log_store: ArtifactStore | None = None,
    challenger: ModelSource | None = None,
) -> ServingApp:
    """The ASGI app serving `source` (a registry reference or a fixed model).

    Args:
        source: Where the model comes from; `RegistrySource("churn@production")` follows
            the alias, `FixedSource(model, "churn")` serves one in-memory model.
        options: Validation, batching, limits, auth and logging behaviour.
        log_store: Artifact store receiving prediction-log segments (None: no logging).
        challenger: The second version of a shadow or canary release (`options.release`
            says which); None for none.

    Raises:
        ServingError: `options.release` without a challenger source, or the reverse.
    """
    resolved = options or ServeOptions()
    if (resolved.release is None) != (challenger is None):
        raise ServingError(
            "A shadow or canary release needs both options.release and a challenger source."
        )
    return ServingApp(source, resolved, log_store=log_store, challenger=challenger)
