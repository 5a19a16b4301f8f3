"""A database password never appears in an error, a log line or a repr (issue 12, item 9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from conveyor._internal.urls import redact_text, redact_url
from conveyor.cli.main import app
from conveyor.config import load_settings
from conveyor.exceptions import ConfigError, ConveyorError
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata.engine import make_engine

SECRET = "s3cr3t-Pa55"

BAD_URLS = [
    f"postgres//ana:{SECRET}@db.internal/prod",  # no scheme separator: does not parse
    f"ana:{SECRET}@db.internal/prod",  # no scheme at all
    f"postgresql://ana:{SECRET}@db.internal:port/prod",  # a port that is not a number
    f"postgresql://ana:{SECRET}@with@sign@db.internal/prod",  # '@' inside the password
    f"nosuchdb://ana:{SECRET}@db.internal/prod",  # a dialect SQLAlchemy does not know
    f"postgresql+nodriver://ana:{SECRET}@db.internal/prod",
]


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_database_urls_are_refused_without_their_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_engine(url)
    message = str(caught.value)
    assert SECRET not in message and "with@sign" not in message
    assert "ana:***@" in message
    # Nothing chained keeps the URL either (a traceback would print it).
    cause = caught.value.__cause__ or caught.value.__context__
    while cause is not None:
        assert SECRET not in str(cause)
        cause = cause.__cause__ or cause.__context__


def test_an_unreachable_postgres_error_has_no_password() -> None:
    url = f"postgresql+psycopg://ana:{SECRET}@127.0.0.1:1/prod?connect_timeout=2"
    with pytest.raises(ConveyorError) as caught:
        open_metadata_store(url)
    assert "Cannot reach the metadata store" in str(caught.value)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("url", [BAD_URLS[0], BAD_URLS[2]])
def test_cli_errors_show_no_password(url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--db-url", url, "runs", "list"])
    output = result.output + (result.stderr if result.stderr_bytes else "")
    assert result.exit_code == 1
    assert SECRET not in output and "ana:***@" in output and "Traceback" not in output


def test_a_real_cli_process_shows_no_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["CONVEYOR_DB_URL"] = BAD_URLS[3]
    conveyor = str(Path(sys.executable).with_name("conveyor"))
    done = subprocess.run(
        [conveyor, "runs", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert SECRET not in done.stdout + done.stderr and "with@sign" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_settings_repr_hides_the_password(tmp_path: Path) -> None:
    settings = load_settings(
        root=tmp_path, env={}, db_url=f"postgresql+psycopg://ana:{SECRET}@db/prod"
    )
    assert SECRET not in repr(settings) and "ana:***@db/prod" in repr(settings)
    assert settings.db_url.endswith(f"{SECRET}@db/prod")  # the value itself is intact


def test_query_string_secrets_are_masked() -> None:
    assert redact_url(f"postgresql://db/prod?sslmode=require&password={SECRET}") == (
        "postgresql://db/prod?sslmode=require&password=***"
    )
    text = f"could not use postgresql://ana:{SECRET}@db/prod (timeout) or s3://b?token={SECRET}"
    assert redact_text(text) == (
        "could not use postgresql://ana:***@db/prod (timeout) or s3://b?token=***"
    )
    assert redact_url("sqlite:////tmp/with@sign/conveyor.db") == (
        "sqlite:////tmp/with@sign/conveyor.db"
    )
    assert redact_url("postgresql://ana@db/prod") == "postgresql://ana@db/prod"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Cc")), min_size=6))
def test_no_password_survives_redaction(password: str) -> None:
    tail = "@db.example:5432/prod"
    assume(password not in "postgresql+psycopg://ana:" + tail and "'" not in password)
    url = f"postgresql+psycopg://ana:{password}{tail}"
    assert password not in redact_url(url)
    assert password not in redact_text(f"error: cannot connect to {url} now")


def test_an_artifact_store_url_error_has_no_password() -> None:
    from conveyor.stores.artifacts import open_artifact_store

    with pytest.raises(ConfigError) as caught:
        open_artifact_store(f"nosuchproto://ana:{SECRET}@bucket/prefix")
    assert SECRET not in str(caught.value) and "ana:***@bucket" in str(caught.value)
