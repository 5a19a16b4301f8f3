"""Who may read and who may act: bearer tokens with roles, and CSRF protection.

Bind policy: a server on a loopback address needs no token (everyone who can reach it is
on this machine, and acts as admin under the local user's name); any other address needs
a token file. With a token file every request but ``/api/v1/health`` and the login page
must carry one of its tokens, as ``Authorization: Bearer <token>`` or (browsers) in the
``conveyor_session`` cookie that ``POST /login`` sets.

Token file: one token per line, ``NAME ROLE TOKEN`` separated by spaces, ``#`` comments::

    # name   role    token
    alice    admin   3q2-...-long-random
    ci       viewer  Zx9-...-long-random

Roles: ``viewer`` reads everything; ``admin`` also promotes and rolls back. Tokens are
kept only as SHA-256 digests, compared in constant time, and never logged; the file must
not be readable by other users.

CSRF: a state-changing request that is not authenticated by an ``Authorization`` header
(a browser form with the session cookie, or any request on an open loopback server) must
carry the server's CSRF token for its principal, in the ``csrf_token`` form field or the
``X-CSRF-Token`` header. Pages render it with `csrf_field`; scripts get it from
``GET /api/v1/csrf`` (a cross-site page cannot read that response).
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.exceptions import ConfigError
from conveyor.serving.auth import DEFAULT_HOST, is_loopback

if TYPE_CHECKING:
    from markupsafe import Markup
    from starlette.requests import Request
else:
    # FastAPI reads the dependencies' annotations at run time; without the serve extra
    # only AuthConfig is usable (the server refuses to start with an install hint).
    try:
        from starlette.requests import Request
    except ImportError:
        Request = object

VIEWER = "viewer"
ADMIN = "admin"
ROLES = (VIEWER, ADMIN)
SESSION_COOKIE = "conveyor_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MIN_TOKEN_LENGTH = 16


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's name (or the local user) and its role.

    Attributes:
        name: Recorded as the actor of admin actions in the audit log.
        role: ``viewer`` or ``admin``.
        via: ``header`` (Authorization), ``cookie`` (browser session) or ``local``
            (open loopback server).
    """

    name: str
    role: str
    via: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


@dataclass(frozen=True)
class _Token:
    name: str
    role: str
    digest: bytes = field(repr=False)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"


class AuthConfig:
    """The tokens a server accepts (none: open, loopback only) and its CSRF secret.

    Build one with `open_local`, `from_token_file` or `for_bind`.
    """

    def __init__(self, tokens: Sequence[_Token] = (), *, local_name: str | None = None) -> None:
        self._tokens = tuple(tokens)
        self._secret = secrets.token_bytes(32)
        self._local = Principal(f"local:{local_name or _local_user()}", ADMIN, "local")

    def __repr__(self) -> str:
        return f"AuthConfig(tokens={len(self._tokens)}, required={self.required})"

    @property
    def required(self) -> bool:
        """Whether requests must carry a token."""
        return bool(self._tokens)

    @property
    def token_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self._tokens)

    @classmethod
    def open_local(cls, *, local_name: str | None = None) -> AuthConfig:
        """No tokens: for a server bound to a loopback address only."""
        return cls(local_name=local_name)

    @classmethod
    def from_tokens(cls, tokens: Sequence[tuple[str, str, str]]) -> AuthConfig:
        """From ``(name, role, token)`` triples.

        Raises:
            ConfigError: an unknown role, a short token, or a duplicate name or token.
        """
        entries: list[_Token] = []
        names: set[str] = set()
        digests: set[bytes] = set()
        for name, role, token in tokens:
            if role not in ROLES:
                raise ConfigError(
                    f"The token {name!r} has role {role!r}. Use one of: {', '.join(ROLES)}."
                )
            if len(token) < MIN_TOKEN_LENGTH:
                raise ConfigError(
                    f"The token {name!r} is shorter than {MIN_TOKEN_LENGTH} characters. Make "
                    "one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
            digest = _digest(token)
            if name in names or digest in digests:
                raise ConfigError(f"The token {name!r} appears twice; names and tokens are unique.")
            names.add(name)
            digests.add(digest)
            entries.append(_Token(name, role, digest))
        return cls(entries)

    @classmethod
    def from_token_file(cls, path: str | os.PathLike[str]) -> AuthConfig:
        """Tokens from a file of ``NAME ROLE TOKEN`` lines (see the module docstring).

        Raises:
            ConfigError: the file is missing, readable by others, malformed or empty.
        """
        file = Path(path)
        try:
            text = file.read_text()
            mode = file.stat().st_mode
        except OSError as exc:
            raise ConfigError(
                f"Cannot read the token file {str(file)!r}: {exc.strerror}."
            ) from None
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"The token file {str(file)!r} is readable by other users. Restrict it with: "
                f"chmod 600 {file}"
            )
        triples: list[tuple[str, str, str]] = []
        for number, line in enumerate(text.splitlines(), 1):
            content = line.split("#", 1)[0].strip()
            if not content:
                continue
            parts = content.split()
            if len(parts) != 3:
                raise ConfigError(
                    f"Line {number} of the token file {str(file)!r} must be 'NAME ROLE TOKEN' "
                    f"(role viewer or admin). Got {len(parts)} field(s)."
                )
            triples.append((parts[0], parts[1], parts[2]))
        if not triples:
            raise ConfigError(
                f"The token file {str(file)!r} holds no tokens. Add lines 'NAME ROLE TOKEN', "
                "e.g. 'alice admin <token>'."
            )
        return cls.from_tokens(triples)

    @classmethod
    def for_bind(cls, host: str, token_file: str | os.PathLike[str] | None) -> AuthConfig:
        """The auth a server bound to `host` needs.

        Raises:
            ConfigError: `host` is not a loopback address and no token file is given, or
                the token file is not usable.
        """
        if token_file is not None:
            return cls.from_token_file(token_file)
        if not is_loopback(host):
            raise ConfigError(
                f"Refusing to bind {host!r} without tokens: anyone on the network could read "
                "every run and promote models. Pass --token-file FILE (lines 'NAME ROLE "
                f"TOKEN'), or bind {DEFAULT_HOST}."
            )
        return cls.open_local()

    # ------------------------------------------------------------ checks
    def authenticate(self, token: str | None) -> Principal | None:
        """The principal of a token; on an open server, the local admin."""
        if not self._tokens:
            return self._local
        if not token:
            return None
        digest = _digest(token)
        found: _Token | None = None
        for entry in self._tokens:
            if hmac.compare_digest(entry.digest, digest):
                found = entry
        return None if found is None else Principal(found.name, found.role, "header")

    def csrf_token(self, principal: Principal) -> str:
        """The CSRF token of `principal` on this server (changes when it restarts)."""
        mac = hmac.new(self._secret, f"csrf:{principal.name}".encode(), hashlib.sha256)
        return mac.hexdigest()

    def check_csrf(self, principal: Principal, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value, self.csrf_token(principal))


# ---------------------------------------------------------------------------- FastAPI side
def _bearer(request: Request) -> tuple[str | None, str]:
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        return (value.strip() if scheme.lower() == "bearer" else None), "header"
    cookie = request.cookies.get(SESSION_COOKIE)
    return cookie, "cookie"


def _auth(request: Request) -> AuthConfig:
    auth: AuthConfig = request.app.state.auth
    return auth


def _wants_html(request: Request) -> bool:
    return (
        request.method == "GET"
        and not request.url.path.startswith("/api/")
        and "text/html" in request.headers.get("accept", "")
    )


def current_principal(request: Request) -> Principal:
    """The principal of a request (FastAPI dependency).

    Raises:
        HTTPException: 401 (JSON, or a redirect to /login for a browser page) without a
            valid token.
    """
    from fastapi import HTTPException

    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    auth = _auth(request)
    token, via = _bearer(request)
    principal = auth.authenticate(token)
    if principal is None:
        if _wants_html(request):
            from urllib.parse import quote

            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise HTTPException(
                status_code=303,
                detail="Sign in first.",
                headers={"Location": "/login?next=" + quote(target, safe="")},
            )
        raise HTTPException(
            status_code=401,
            detail="Missing or unknown token. Send 'Authorization: Bearer <token>' with a "
            "token from the server's token file.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if principal.via != "local" and via == "cookie":
        principal = Principal(principal.name, principal.role, "cookie")
    request.state.principal = principal
    return principal


async def _csrf_value(request: Request) -> str | None:
    value = request.headers.get(CSRF_HEADER)
    if value:
        return value
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        field_value = form.get(CSRF_FIELD)
        return field_value if isinstance(field_value, str) else None
    return None


async def require_viewer(request: Request) -> Principal:
    """FastAPI dependency: any valid principal; unsafe methods also pass the CSRF check.

    Raises:
        HTTPException: 401 without a valid token, 403 when the CSRF check fails.
    """
    from fastapi import HTTPException

    principal = current_principal(request)
    if (
        request.method not in SAFE_METHODS
        and principal.via != "header"
        and not _auth(request).check_csrf(principal, await _csrf_value(request))
    ):
        raise HTTPException(
            status_code=403,
            detail=f"Missing or wrong CSRF token. Send the {CSRF_FIELD!r} form field of "
            f"the page, or the {CSRF_HEADER} header with the value of GET /api/v1/csrf.",
        )
    return principal


async def require_admin(request: Request) -> Principal:
    """FastAPI dependency: an admin principal (and the CSRF check for unsafe methods).

    Raises:
        HTTPException: 401 without a valid token, 403 for a viewer or a failed CSRF check.
    """
    from fastapi import HTTPException

    principal = await require_viewer(request)
    if not principal.is_admin:
        raise HTTPException(
            status_code=403,
            detail=f"The token {principal.name!r} has role {principal.role!r}; this action "
            "needs an admin token.",
        )
    return principal


def csrf_token(request: Request) -> str:
    """The CSRF token for the principal of `request` (for pages and scripts)."""
    return _auth(request).csrf_token(current_principal(request))


def csrf_field(request: Request) -> Markup:
    """The hidden form field every POST form of a page must include."""
    from markupsafe import Markup, escape

    return Markup(
        f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf_token(request))}">'
    )


__all__ = [
    "ADMIN",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "ROLES",
    "SESSION_COOKIE",
    "VIEWER",
    "AuthConfig",
    "Principal",
    "csrf_field",
    "csrf_token",
    "current_principal",
    "require_admin",
    "require_viewer",
]
