from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.exceptions import ConfigError
from conveyor.serving.auth import BearerAuth, check_bind, read_token


def test_loopback_needs_no_token_other_addresses_do() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        check_bind(host, None)
    with pytest.raises(ConfigError, match=r"Refusing to bind '0\.0\.0\.0' without a token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "t")


def test_token_file_rules(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc123\n")
    token.chmod(0o600)
    assert read_token(token) == "abc123"
    token.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_token(token)
    token.write_text("  \n")
    token.chmod(0o600)
    with pytest.raises(ConfigError, match="one token"):
        read_token(token)
    with pytest.raises(ConfigError, match="Cannot read"):
        read_token(tmp_path / "missing")


def test_bearer_check_never_shows_the_token() -> None:
    auth = BearerAuth("abc")
    assert auth.allows(b"Bearer abc")
    assert not auth.allows(b"Bearer abd") and not auth.allows(None)
    assert "abc" not in repr(auth)
