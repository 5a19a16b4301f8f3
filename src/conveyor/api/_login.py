"""Routes without a token: health, and the sign-in form that sets the session cookie."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from markupsafe import escape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from conveyor.api.app import API_PREFIX, json_response
from conveyor.api.auth import SESSION_COOKIE, AuthConfig, require_viewer

router = APIRouter()

_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - conveyor</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
input{{font:inherit;padding:.4rem;width:100%;box-sizing:border-box;margin:.4rem 0}}
.error{{color:#b00020}}</style></head>
<body><h1>conveyor</h1>
<p>This server needs a token. Paste one from its token file.</p>
{error}
<form method="post" action="/login">
<input type="hidden" name="next" value="{next}">
<label for="token">Token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<input type="submit" value="Sign in">
</form></body></html>
"""


def _safe_next(value: str | None) -> str:
    """A local path to return to (never another site)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _form(next_path: str, error: str = "", status_code: int = 200) -> HTMLResponse:
    block = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    page = _FORM.format(error=block, next=escape(_safe_next(next_path)))
    return HTMLResponse(page, status_code=status_code, headers={"Cache-Control": "no-store"})


@router.get(f"{API_PREFIX}/health", tags=["auth"])
def health() -> Any:
    """Liveness (needs no token)."""
    return json_response({"status": "ok"})


@router.get("/login", include_in_schema=False)
def login_form(next: str = "/") -> HTMLResponse:
    return _form(next)


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    form = await request.form()
    token = form.get("token")
    next_path = _safe_next(str(form.get("next") or "/"))
    auth: AuthConfig = request.app.state.auth
    if not auth.required:
        return RedirectResponse(next_path, status_code=303)
    principal = auth.authenticate(token if isinstance(token, str) else None)
    if principal is None:
        return _form(next_path, "That token is not valid on this server.", 401)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        str(token),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    await require_viewer(request)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
