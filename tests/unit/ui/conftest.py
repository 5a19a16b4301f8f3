"""A store filled once for the UI unit tests by real runs, and an in-process client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import make_settings
from tests.ui_store import Filled, fill


class Pages:
    """A synchronous client of the UI app through httpx.ASGITransport (cookies kept)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cookies = httpx.Cookies()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app)
        headers = {"accept": "text/html", **kwargs.pop("headers", {})}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", cookies=self.cookies
        ) as client:
            response = await client.request(method, path, headers=headers, **kwargs)
            self.cookies.update(client.cookies)
            return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return asyncio.run(self._send("GET", path, **kwargs))

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return asyncio.run(self._send("POST", path, **kwargs))


def make_pages(settings: Any, auth: Any = None) -> Pages:
    from conveyor.api.auth import AuthConfig
    from conveyor.ui.app import create_app

    return Pages(create_app(settings, auth or AuthConfig.open_local()))


@pytest.fixture(scope="package")
def filled_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Filled]:
    root = tmp_path_factory.mktemp("ui-store")
    filled = fill(make_settings(root), root)
    return root, filled


@pytest.fixture(scope="package")
def filled(filled_root: tuple[Path, Filled]) -> Filled:
    return filled_root[1]


@pytest.fixture(scope="package")
def ui_settings(filled_root: tuple[Path, Filled]) -> Any:
    return make_settings(filled_root[0])


@pytest.fixture(scope="package")
def pages(ui_settings: Any) -> Pages:
    return make_pages(ui_settings)
