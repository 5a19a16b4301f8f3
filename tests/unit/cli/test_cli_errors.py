"""CLI errors are one line with a non-zero exit, never a traceback (issue 12)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.common import report_uncaught
from conveyor.cli.main import app
from conveyor.exceptions import ConfigError

CONVEYOR = str(Path(sys.executable).with_name("conveyor"))


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    return subprocess.run(
        [CONVEYOR, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=60
    )


def test_an_error_a_command_does_not_catch_is_still_one_line(tmp_path: Path) -> None:
    # `db current` lets the ConfigError through; the entry point reports it.
    done = _cli(tmp_path, "--db-url", "postgresql://ana:s3cret@db:port/x", "db", "current")
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: ") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "s3cret" not in done.stderr


def test_an_unexpected_exception_is_reported_as_a_bug(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONVEYOR_TRACEBACK", raising=False)
    code = report_uncaught(KeyError("multi\nline postgresql://ana:s3cret@db/x"))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: unexpected KeyError:") and "This is a bug" in err
    assert len(err.strip().splitlines()) == 1 and "s3cret" not in err
    assert report_uncaught(ConfigError("bad setting")) == 1
    assert capsys.readouterr().err.strip() == "error: bad setting"
    monkeypatch.setenv("CONVEYOR_TRACEBACK", "1")
    with pytest.raises(KeyError):
        report_uncaught(KeyError("shown with its traceback"))


def test_a_report_into_a_missing_folder_fails_before_writing(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("age,country\n20,DE\n30,FR\n")
    runner = CliRunner()
    missing = tmp_path / "nowhere" / "profile.html"
    result = runner.invoke(app, ["data", "profile", str(data), "--html", str(missing)])
    err = result.stderr if result.stderr_bytes else result.output
    assert result.exit_code == 1
    assert "does not exist" in err and "Traceback" not in result.output + err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]
    written = tmp_path / "profile.html"
    result = runner.invoke(app, ["data", "profile", str(data), "--html", str(written)])
    assert result.exit_code == 0, result.output
    assert "<html" in written.read_text().lower()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "profile.html"]
