"""`create_app`: the REST API plus the HTML pages and static assets of the UI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.api.app import create_api_app

if TYPE_CHECKING:
    from fastapi import FastAPI

    from conveyor.api.auth import AuthConfig
    from conveyor.config import Settings


def create_app(settings: Settings, auth: AuthConfig) -> FastAPI:
    """The app `conveyor ui` serves: `/api/v1`, the pages and `/static`.

    Args:
        settings: Resolved settings; the pages read the same stores as the CLI.
        auth: Who may read (viewer) and act (admin); see `conveyor.api.auth`.
    """
    from starlette.staticfiles import StaticFiles

    from conveyor.ui.views import register_pages

    app = create_api_app(settings, auth)
    app.mount("/static", StaticFiles(packages=[("conveyor.ui", "static")]), name="static")
    register_pages(app, settings, auth)
    return app
