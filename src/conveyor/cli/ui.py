"""`conveyor ui`: the web UI and the REST API on the same stores as the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from conveyor.cli import common


def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="TCP port.")] = 8765,
    host: Annotated[
        str, typer.Option(help="Address to bind. Anything but loopback needs --token-file.")
    ] = "127.0.0.1",
    token_file: Annotated[
        Optional[Path],  # noqa: UP045 - typer needs Optional on 3.11
        typer.Option(help="File of 'NAME ROLE TOKEN' lines (role viewer or admin)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="Server log level.")] = "warning",
) -> None:
    """Serve the web UI and the REST API (/api/v1, docs at /api/v1/docs)."""
    from conveyor.api.auth import AuthConfig

    if not 0 < port < 65536:
        common.fail(f"The --port option must be in 1..65535. Got {port} instead.")
    with common.errors_to_exit():
        # Refuse a bad bind before anything else happens (no banner, no store opened).
        auth = AuthConfig.for_bind(host, token_file)
        from conveyor._internal.lazy import require

        uvicorn = require("uvicorn", "serve")
        from conveyor.ui.app import create_app

        settings = common.settings(ctx)
        app = create_app(settings, auth)
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    mode = f"tokens: {', '.join(auth.token_names)}" if auth.required else "no token (loopback)"
    common.err_console().print(
        f"conveyor UI on [bold]{where}[/] ({mode}); API docs at {where}/api/v1/docs. "
        "Ctrl-C stops it.",
        highlight=False,
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        server_header=False,
        ws="none",  # no websockets: saves importing them at start-up
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        common.fail(f"Could not listen on {where} (is the port in use?).")


def register(app: typer.Typer) -> None:
    """Add `conveyor ui` to the root app."""
    app.command("ui")(ui)
