"""`create_api_app`: the REST API `/api/v1` over the metadata and artifact stores.

Every endpoint calls one function of `conveyor.api.queries` (the pages call the same
ones) and renders its dataclasses with orjson; the declared response models document the
shapes in ``/api/v1/openapi.json`` and ``/api/v1/docs``. Errors are JSON:
``{"detail": "..."}`` with 400 (bad parameter), 401 (no token), 403 (role or CSRF), 404
(not found), 409 (a registry refusal) or 422 (malformed request).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor._internal.lazy import require

if TYPE_CHECKING:
    from fastapi import FastAPI

    from conveyor.api.auth import AuthConfig
    from conveyor.config import Settings
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore

API_PREFIX = "/api/v1"


class Stores:
    """The stores an app reads, opened once when the app is created."""

    def __init__(self, metadata: MetadataStore, artifacts: ArtifactStore) -> None:
        self.metadata = metadata
        self.artifacts = artifacts


def json_response(value: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Any:
    """A JSON response of dataclasses, dicts and lists (orjson, NaN as null)."""
    import orjson
    from starlette.responses import Response

    body = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status_code=status_code, media_type="application/json", headers=headers)


F = TypeVar("F", bound=Callable[..., Any])


def returns(model: Any) -> Callable[[F], F]:
    """Document the JSON an endpoint returns, for the OpenAPI schema only.

    Endpoints return ready responses (orjson of the query's dataclasses), so FastAPI's
    response validation is skipped; the schema is built on the first request of
    ``openapi.json`` rather than at start-up, which keeps `conveyor ui` quick to start.
    """

    def mark(endpoint: F) -> F:
        endpoint.__conveyor_returns__ = model  # type: ignore[attr-defined]
        return endpoint

    return mark


def _openapi(app: FastAPI, routers: Sequence[Any]) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi
        from fastapi.routing import APIRoute
        from pydantic import TypeAdapter

        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        template = "#/components/schemas/{model}"
        routes = [r for router in routers for r in router.routes if isinstance(r, APIRoute)]
        for route in routes:
            model = getattr(route.endpoint, "__conveyor_returns__", None)
            if model is None:
                continue
            schema = TypeAdapter(model).json_schema(ref_template=template, mode="serialization")
            components.update(schema.pop("$defs", {}))
            for method in route.methods or ():
                operation = document["paths"][route.path_format][method.lower()]
                content = operation.setdefault("responses", {}).setdefault("200", {})
                content["content"] = {"application/json": {"schema": schema}}
        # Paths as clients call them: the API is mounted at API_PREFIX.
        document["paths"] = {API_PREFIX + k: v for k, v in document["paths"].items()}
        app.openapi_schema = document
        return document

    return build


class _ServerTiming:
    """ASGI middleware adding ``Server-Timing: app;dur=<ms>`` to every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={elapsed:.2f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed_send)


def _error_handlers(app: FastAPI) -> None:
    from fastapi import HTTPException
    from starlette.requests import Request

    from conveyor.api.queries import QueryError
    from conveyor.exceptions import ConveyorError, ModelError, NotFoundError

    def status_of(exc: ConveyorError) -> int:
        if isinstance(exc, NotFoundError):
            return 404
        if isinstance(exc, QueryError):
            return 400
        if isinstance(exc, ModelError):
            return 409
        return 400

    @app.exception_handler(ConveyorError)
    async def conveyor_error(_request: Request, exc: ConveyorError) -> Any:
        return json_response({"detail": str(exc)}, status_of(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> Any:
        headers = dict(exc.headers or {})
        return json_response({"detail": exc.detail}, exc.status_code, headers)


class _LazyAPI:
    """ASGI app that builds the `/api/v1` application on its first request.

    Building ~50 FastAPI routes costs a noticeable share of `conveyor ui`'s start-up, and
    the first page a browser opens needs none of them (pages call the query functions
    directly), so the API is assembled when it is first used, once, off the event loop.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._app: Any = None
        self._lock = threading.Lock()

    def _built(self) -> Any:
        with self._lock:
            if self._app is None:
                self._app = self._build()
            return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self._app
        if app is None:
            import anyio.to_thread

            app = await anyio.to_thread.run_sync(self._built)
        await app(scope, receive, send)


def _build_api(settings: Settings, auth: AuthConfig, found: Stores) -> FastAPI:
    from fastapi import FastAPI

    from conveyor._version import __version__
    from conveyor.api import _routes_data, _routes_models, _routes_runs

    api = FastAPI(
        title="conveyor",
        version=__version__,
        description="Runs, artifacts, lineage, datasets, models, monitors, tuning and "
        "triggers of a conveyor project. Lists are keyset-paginated: pass a page's "
        "`next_cursor` as `before` for the next page, its `prev_cursor` as `after` for the "
        "previous one.",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.auth = auth
    api.state.settings = settings
    api.state.stores = found
    _error_handlers(api)
    routers = [m.router for m in (_routes_runs, _routes_data, _routes_models)]
    for router in routers:
        api.include_router(router)
    api.openapi = _openapi(api, routers)  # type: ignore[method-assign]
    return api


def create_api_app(settings: Settings, auth: AuthConfig) -> FastAPI:
    """The application serving `/api/v1` (and the sign-in form) on the stores of `settings`.

    The UI adds its pages to the returned app. The API itself is a sub-application mounted
    at `/api/v1`, built on its first request.

    Args:
        settings: Resolved settings (metadata store URL, artifact store URL).
        auth: Tokens and roles; see `conveyor.api.auth`.

    Raises:
        ConfigError: FastAPI is not installed (``pip install 'conveyor[serve]'``) or a
            store URL is not usable.
        SchemaVersionError: the metadata database needs ``conveyor db upgrade``.
    """
    fastapi = require("fastapi", "serve")
    from conveyor.api import _login
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.metadata import open_metadata_store

    app: FastAPI = fastapi.FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    found = Stores(open_metadata_store(settings.db_url), open_artifact_store(settings.artifact_url))
    app.state.auth = auth
    app.state.settings = settings
    app.state.stores = found
    _error_handlers(app)
    app.add_middleware(_ServerTiming)
    app.include_router(_login.router)
    app.mount(API_PREFIX, _LazyAPI(lambda: _build_api(settings, auth, found)))
    return app


def stores(request: Any) -> Stores:
    """The stores of the app serving `request`."""
    found: Stores = request.app.state.stores
    return found
