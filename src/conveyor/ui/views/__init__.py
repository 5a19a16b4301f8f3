"""Page views, one module per page kind; `register_pages` adds them to an app."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from conveyor.api.auth import AuthConfig
    from conveyor.config import Settings


def register_pages(app: FastAPI, settings: Settings, auth: AuthConfig) -> None:
    """Add every page route to `app` (GET pages for viewers, POST actions for admins)."""
    from fastapi import APIRouter, Depends
    from starlette.responses import RedirectResponse, Response

    from conveyor.api.auth import require_viewer
    from conveyor.ui.views import datasets, lineage, models, monitoring, runs, tuning
    from conveyor.ui.views._base import UI

    stores = app.state.stores
    ui = UI(settings, auth, _store=stores.metadata, _artifacts=stores.artifacts)
    app.state.ui = ui
    router = APIRouter(dependencies=[Depends(require_viewer)], include_in_schema=False)

    def home() -> RedirectResponse:
        return RedirectResponse("/runs", status_code=302)

    def favicon() -> Response:
        # Standalone pages (window reports, model cards) make browsers ask for one.
        return Response(status_code=204)

    router.add_api_route("/", home, methods=["GET"])
    app.add_api_route("/favicon.ico", favicon, methods=["GET"], include_in_schema=False)
    for module in (runs, lineage, datasets, models, monitoring, tuning):
        module.add_routes(ui, router)
    app.include_router(router)
