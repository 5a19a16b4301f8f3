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


def test_the_bearer_scheme_is_case_insensitive_the_token_is_not() -> None:
    auth = BearerAuth("Tok3n")
    for header in (b"bearer Tok3n", b"BEARER Tok3n", b"BeArEr Tok3n", b"Bearer  Tok3n"):
        assert auth.allows(header), header
    for header in (b"bearer tok3n", b"Basic Tok3n", b"bearerTok3n", b"Tok3n", b"bearer "):
        assert not auth.allows(header), header


def test_serve_refuses_a_public_bind_without_printing_the_serving_banner(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from conveyor.registry import Registry
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.metadata import open_metadata_store
    from tests.unit.streaming.support import train

    env = dict(os.environ)
    env["CONVEYOR_DB_URL"] = f"sqlite:///{tmp_path / 'conveyor.db'}"
    env["CONVEYOR_ARTIFACT_URL"] = str(tmp_path / "artifacts")
    Registry(
        open_metadata_store(env["CONVEYOR_DB_URL"]),
        open_artifact_store(env["CONVEYOR_ARTIFACT_URL"]),
    ).register(train(), "cancer", promote_to="production")
    conveyor = str(Path(sys.executable).parent / "conveyor")
    out = subprocess.run(
        [conveyor, "serve", "cancer@production", "--host", "0.0.0.0", "--port", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert "Refusing to bind '0.0.0.0' without a token" in out.stderr
    assert "Serving" not in out.stderr + out.stdout and "http://" not in out.stderr
    assert "Traceback" not in out.stderr
