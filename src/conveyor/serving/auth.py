"""Bind policy and bearer-token auth.

A server on a loopback address may run without a token. Any other address requires one
(read from a file, never from the command line where `ps` shows it); with a token every
endpoint but liveness needs ``Authorization: Bearer <token>``. Tokens are never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import stat
from pathlib import Path

from conveyor.exceptions import ConfigError

DEFAULT_HOST = "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: str | os.PathLike[str]) -> str:
    """The token in a file (surrounding whitespace stripped).

    Raises:
        ConfigError: the file is missing, empty, or readable by other users.
    """
    file = Path(path)
    try:
        text = file.read_text()
        mode = file.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"Cannot read the token file {str(file)!r}: {exc.strerror}.") from None
    token = text.strip()
    if not token or any(c.isspace() for c in token):
        raise ConfigError(
            f"The token file {str(file)!r} must hold one token without spaces. Create one "
            f"with: python -c 'import secrets; print(secrets.token_urlsafe(32))' > {file}"
        )
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"The token file {str(file)!r} is readable by other users. Restrict it with: "
            f"chmod 600 {file}"
        )
    return token


def check_bind(host: str, token: str | None) -> None:
    """Refuse to bind a non-loopback address without a token.

    Raises:
        ConfigError: `host` is not a loopback address and no token is configured.
    """
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"Refusing to bind {host!r} without a token: anyone on the network could use "
            "the model. Pass --token-file FILE (clients send 'Authorization: Bearer <token>'), "
            f"or bind {DEFAULT_HOST}."
        )


class BearerAuth:
    """Constant-time check of an ``Authorization`` header value.

    The scheme is case-insensitive (RFC 9110: ``bearer``, ``BEARER`` and ``Bearer`` are
    one scheme); the token is compared exactly, in constant time.
    """

    def __init__(self, token: str) -> None:
        self._expected = ("Bearer " + token).encode()
        self._token = token.encode()

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"

    def allows(self, header: bytes | None) -> bool:
        if header is None:
            return False
        if hmac.compare_digest(header, self._expected):  # the usual spelling: one compare
            return True
        scheme, _, credentials = header.strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self._token)
