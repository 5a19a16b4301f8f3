"""Settings precedence: flags > CONVEYOR_* environment > conveyor.toml > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.config import find_root, load_settings
from conveyor.exceptions import ConfigError


def test_defaults_live_under_the_project_root(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text("[conveyor]\n")
    nested = tmp_path / "pipelines" / "deep"
    nested.mkdir(parents=True)
    settings = load_settings(root=nested, env={})
    assert settings.root == tmp_path.resolve()
    assert settings.db_url == f"sqlite:///{tmp_path.resolve() / '.conveyor' / 'conveyor.db'}"
    assert settings.artifact_url == str(tmp_path.resolve() / ".conveyor" / "artifacts")
    assert settings.executor == "threads" and settings.cache is True
    assert find_root(nested) == tmp_path.resolve()


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text(
        '[conveyor]\ndb_url = "sqlite:///from-file.db"\nartifact_url = "store"\n'
        'executor = "processes"\nmax_workers = 3\n\n[serving]\nport = 9000\n'
    )
    from_file = load_settings(root=tmp_path, env={})
    assert from_file.db_url == "sqlite:///from-file.db"
    assert from_file.artifact_url == str(tmp_path.resolve() / "store")
    assert (from_file.executor, from_file.max_workers) == ("processes", 3)
    assert from_file.extra == {"serving": {"port": 9000}}
    env = {"CONVEYOR_DB_URL": "sqlite:///from-env.db", "CONVEYOR_ARTIFACT_URL": "s3://b/p"}
    from_env = load_settings(root=tmp_path, env=env)
    assert (from_env.db_url, from_env.artifact_url) == ("sqlite:///from-env.db", "s3://b/p")
    from_flags = load_settings(root=tmp_path, env=env, db_url="sqlite:///from-flag.db")
    assert from_flags.db_url == "sqlite:///from-flag.db"
    assert from_flags.artifact_url == "s3://b/p"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[conveyor]\ndb_ulr = 'x'\n", "Did you mean 'db_url'"),
        ("[conveyor]\nmax_workers = 'four'\n", "'max_workers' key .* must be an int"),
        ("[conveyor]\nmax_workers = 0\n", "must be an int >= 1"),
        ("[conveyor\n", "not valid TOML"),
    ],
)
def test_bad_config_files_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "conveyor.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(root=tmp_path, env={})
