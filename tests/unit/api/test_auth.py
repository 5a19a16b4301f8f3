"""Tokens, roles and CSRF: the rules of conveyor.api.auth, checked through the real app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi import Request

from conveyor.api.app import create_api_app
from conveyor.api.auth import AuthConfig, csrf_field
from conveyor.exceptions import ConfigError
from tests.unit.api.conftest import call

ADMIN_TOKEN = "admin-token-0123456789abcdef"
VIEWER_TOKEN = "viewer-token-0123456789abcdef"


def _token_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "tokens"
    path.write_text(text)
    os.chmod(path, mode)
    return path


@pytest.fixture
def tokens(tmp_path: Path) -> AuthConfig:
    path = _token_file(
        tmp_path,
        f"# name role token\nalice admin {ADMIN_TOKEN}\n\nci viewer {VIEWER_TOKEN}  # CI\n",
    )
    return AuthConfig.from_token_file(path)


def test_token_file_gives_named_roles(tokens: AuthConfig) -> None:
    assert tokens.required
    assert tokens.token_names == ("alice", "ci")
    admin = tokens.authenticate(ADMIN_TOKEN)
    viewer = tokens.authenticate(VIEWER_TOKEN)
    assert admin is not None and (admin.name, admin.role) == ("alice", "admin")
    assert viewer is not None and (viewer.name, viewer.is_admin) == ("ci", False)
    assert tokens.authenticate("not-a-token-of-this-server") is None
    assert tokens.authenticate(None) is None
    assert ADMIN_TOKEN not in repr(tokens)


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        (f"alice admin {ADMIN_TOKEN}\n", 0o644, "readable by other users"),
        (f"alice {ADMIN_TOKEN}\n", 0o600, r"Line 1 .* must be 'NAME ROLE TOKEN'"),
        (f"alice owner {ADMIN_TOKEN}\n", 0o600, "role 'owner'"),
        ("alice admin short\n", 0o600, "shorter than 16"),
        ("# nothing\n", 0o600, "holds no tokens"),
        (f"a admin {ADMIN_TOKEN}\nb viewer {ADMIN_TOKEN}\n", 0o600, "appears twice"),
    ],
)
def test_bad_token_files_are_refused(tmp_path: Path, text: str, mode: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AuthConfig.from_token_file(_token_file(tmp_path, text, mode))


def test_missing_token_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Cannot read the token file"):
        AuthConfig.from_token_file(tmp_path / "absent")


def test_non_loopback_bind_needs_tokens() -> None:
    with pytest.raises(ConfigError, match=r"Refusing to bind '0\.0\.0\.0' without tokens"):
        AuthConfig.for_bind("0.0.0.0", None)
    assert not AuthConfig.for_bind("127.0.0.1", None).required
    assert not AuthConfig.for_bind("::1", None).required


def test_missing_or_unknown_token_is_401_json(registered, tokens: AuthConfig) -> None:
    app = create_api_app(registered, tokens)
    for headers in ({}, {"Authorization": "Bearer wrong-token-xxxxxxxxxxxx"}):
        response = call(app, "GET", "/api/v1/runs", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/json"
        assert "token" in response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"
    assert call(app, "GET", "/api/v1/health").status_code == 200


def test_viewer_reads_but_cannot_promote(registered, tokens: AuthConfig) -> None:
    app = create_api_app(registered, tokens)
    viewer = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
    assert call(app, "GET", "/api/v1/models/churn", headers=viewer).json()["aliases"] == {
        "production": 1
    }
    response = call(
        app,
        "POST",
        "/api/v1/models/churn/promote",
        json={"version": 2, "alias": "production"},
        headers=viewer,
    )
    assert response.status_code == 403
    assert "needs an admin token" in response.json()["detail"]
    after = call(app, "GET", "/api/v1/models/churn", headers=viewer).json()
    assert after["aliases"] == {"production": 1}


def test_admin_promote_and_rollback_are_audited_under_the_token_name(
    registered, tokens: AuthConfig
) -> None:
    app = create_api_app(registered, tokens)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    moved = call(
        app,
        "POST",
        "/api/v1/models/churn/promote",
        json={"version": 2, "alias": "production", "reason": "better AUC"},
        headers=admin,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["event"]["actor"] == "alice"
    assert call(app, "GET", "/api/v1/models/churn", headers=admin).json()["aliases"] == {
        "production": 2
    }
    back = call(
        app, "POST", "/api/v1/models/churn/rollback", json={"alias": "production"}, headers=admin
    )
    assert back.status_code == 200
    audit = call(app, "GET", "/api/v1/models/churn/audit", headers=admin).json()["items"]
    assert [(e["action"], e["to_version"], e["actor"]) for e in audit[:2]] == [
        ("rollback", 1, "alice"),
        ("promote", 2, "alice"),
    ]
    assert audit[1]["reason"] == "better AUC"
    again = call(
        app, "POST", "/api/v1/models/churn/rollback", json={"alias": "production"}, headers=admin
    )
    assert again.status_code == 409
    assert "no previous holder" in again.json()["detail"]


def test_bad_promote_bodies_are_4xx_json(registered, tokens: AuthConfig) -> None:
    app = create_api_app(registered, tokens)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    missing = call(app, "POST", "/api/v1/models/churn/promote", json={"alias": "x"}, headers=admin)
    assert missing.status_code == 422
    unknown = call(
        app,
        "POST",
        "/api/v1/models/churn/promote",
        json={"version": 9, "alias": "production"},
        headers=admin,
    )
    assert unknown.status_code == 404
    assert "no version 9" in unknown.json()["detail"]


def test_browser_session_needs_the_csrf_token_for_actions(registered, tokens: AuthConfig) -> None:
    app = create_api_app(registered, tokens)
    refused = call(app, "POST", "/login", data={"token": "nope-nope-nope-nope", "next": "/x"})
    assert refused.status_code == 401
    signed_in = call(app, "POST", "/login", data={"token": ADMIN_TOKEN, "next": "//evil.com"})
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/"  # never another site
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    session = {"Cookie": cookie.split(";", 1)[0]}
    who = call(app, "GET", "/api/v1/whoami", headers=session).json()
    assert (who["name"], who["via"]) == ("alice", "cookie")
    body = {"version": 2, "alias": "production"}
    forged = call(app, "POST", "/api/v1/models/churn/promote", json=body, headers=session)
    assert forged.status_code == 403
    assert "CSRF" in forged.json()["detail"]
    token = call(app, "GET", "/api/v1/csrf", headers=session).json()["csrf_token"]
    wrong = call(
        app,
        "POST",
        "/api/v1/models/churn/promote",
        json=body,
        headers={**session, "X-CSRF-Token": "0" * len(token)},
    )
    assert wrong.status_code == 403
    done = call(
        app,
        "POST",
        "/api/v1/models/churn/promote",
        json=body,
        headers={**session, "X-CSRF-Token": token},
    )
    assert done.status_code == 200
    assert done.json()["event"]["actor"] == "alice"
    # A form post carries the token as a hidden field instead.
    out = call(app, "POST", "/logout", data={"csrf_token": token}, headers=session)
    assert out.status_code == 303
    assert call(app, "POST", "/logout", data={}, headers=session).status_code == 403


def test_open_loopback_server_acts_as_local_admin_but_still_checks_csrf(registered) -> None:
    app = create_api_app(registered, AuthConfig.open_local(local_name="ana"))
    body = {"version": 2, "alias": "staging"}
    assert call(app, "POST", "/api/v1/models/churn/promote", json=body).status_code == 403
    token = call(app, "GET", "/api/v1/csrf").json()["csrf_token"]
    done = call(
        app, "POST", "/api/v1/models/churn/promote", json=body, headers={"X-CSRF-Token": token}
    )
    assert done.status_code == 200
    assert done.json()["event"]["actor"] == "local:ana"


def test_csrf_field_renders_the_principals_token(registered, tokens: AuthConfig) -> None:
    app = create_api_app(registered, tokens)

    @app.get("/form-probe")
    def probe(request: Request) -> dict[str, str]:
        return {"field": str(csrf_field(request))}

    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    field = call(app, "GET", "/form-probe", headers=admin).json()["field"]
    token = call(app, "GET", "/api/v1/csrf", headers=admin).json()["csrf_token"]
    assert field == f'<input type="hidden" name="csrf_token" value="{token}">'


def test_a_browser_without_a_session_is_sent_to_sign_in(registered, tokens: AuthConfig) -> None:
    from fastapi import Depends

    from conveyor.api.auth import require_viewer

    app = create_api_app(registered, tokens)

    @app.get("/page-probe", dependencies=[Depends(require_viewer)])
    def page() -> dict[str, str]:
        return {"ok": "yes"}

    browser = {"Accept": "text/html,application/xhtml+xml"}
    response = call(app, "GET", "/page-probe?x=1", headers=browser)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fpage-probe%3Fx%3D1"
    form = call(app, "GET", "/login", params={"next": "/page-probe"})
    assert form.status_code == 200 and 'name="token"' in form.text
    # Programs get a JSON 401 instead of a redirect.
    assert call(app, "GET", "/page-probe").status_code == 401
