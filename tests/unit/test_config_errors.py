"""conveyor.toml with wrong shapes and types: a ConfigError naming the key, never an
AttributeError (issue 12, item 10), and a property-based fuzz of `load_settings`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.config import Settings, load_settings
from conveyor.exceptions import ConfigError


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("conveyor = 5\n", r"The 'conveyor' key of .* must be a table: a \[conveyor\] line"),
        ("conveyor = 'x'\n", "'conveyor' key .* must be a table"),
        ("conveyor = [1, 2]\n", "'conveyor' key .* must be a table"),
        (
            "[conveyor]\nmax_workers = true\n",
            r"'max_workers' key .* must be an int\. Got True \(bool\)",
        ),
        ("[conveyor]\nmax_workers = 2.5\n", r"'max_workers' key .* must be an int\. Got 2\.5"),
        ("[conveyor]\ncache = 1\n", r"'cache' key .* must be a bool\. Got 1 \(int\)"),
        ("[conveyor]\ndb_url = 5\n", r"'db_url' key .* must be a str"),
        ("[conveyor]\nexecutor = ['threads']\n", r"'executor' key .* must be a str"),
        ("[conveyor]\nartifact_url = {a = 1}\n", r"'artifact_url' key .* must be a str"),
        ("[conveyor]\nmax_workers = -3\n", "must be an int >= 1"),
        ("[[conveyor]]\nmax_workers = 2\n", "'conveyor' key .* must be a table"),
    ],
)
def test_wrong_shapes_and_types_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "conveyor.toml").write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(root=tmp_path, env={})
    assert "\n" not in str(caught.value)


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_bytes("[conveyor]\nexecutor = 'thréads'\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_settings(root=tmp_path, env={})


def test_wrong_argument_types_are_refused_too(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="'max_workers' key given to load_settings must be an int"
    ):
        load_settings(root=tmp_path, env={}, max_workers="4")


def test_a_wrong_type_shows_no_password(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text(
        "[conveyor]\nexecutor = ['postgresql://ana:s3cret@db/prod']\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(root=tmp_path, env={})
    assert "s3cret" not in str(caught.value)


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    conveyor = str(Path(sys.executable).with_name("conveyor"))
    return subprocess.run(
        [conveyor, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_cli_reports_a_bad_config_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text("conveyor = 5\n")
    done = _cli(tmp_path, "runs", "list")
    assert done.returncode == 1
    assert "'conveyor' key" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("scheduler = 5\n", r"The 'scheduler' key of conveyor.toml must be a table"),
        ("[scheduler]\npipelines = 'flow.py:x'\n", r"\[scheduler\] pipelines .* must be a list"),
    ],
)
def test_a_component_table_of_the_wrong_shape_is_one_line(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "conveyor.toml").write_text(text)
    done = _cli(tmp_path, "scheduler", "--once")
    assert done.returncode == 1, done.stderr
    assert re.search(message, done.stderr) and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# -- fuzz -------------------------------------------------------------------------------------

_SCALARS = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_KEYS = st.sampled_from(["db_url", "artifact_url", "executor", "max_workers", "cache"]) | st.text(
    min_size=1, max_size=8
)
_SECTION = st.dictionaries(_KEYS, _VALUES, max_size=5)
_DOCUMENT = st.dictionaries(
    st.sampled_from(["conveyor", "serving", "scheduler"]) | st.text(min_size=1, max_size=6),
    _SECTION | _VALUES,
    max_size=3,
)


def _toml(value: Any) -> str:
    """A TOML rendering of `value` (inline tables and arrays; tomllib checks it parses)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.encode("unicode_escape").decode().replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"


def _check(folder: Path, text: str) -> None:
    (folder / "conveyor.toml").write_text(text, encoding="utf-8")
    try:
        resolved = load_settings(root=folder, env={})
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        return
    assert isinstance(resolved, Settings)
    assert isinstance(resolved.max_workers, int) and not isinstance(resolved.max_workers, bool)
    assert resolved.max_workers >= 1
    assert isinstance(resolved.cache, bool)
    assert all(isinstance(v, str) for v in (resolved.db_url, resolved.artifact_url))
    for name in resolved.extra:
        try:
            assert isinstance(resolved.table(name), dict)
        except ConfigError as exc:
            assert f"The {name!r} key" in str(exc)


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(_DOCUMENT)
def test_fuzz_structured_documents(tmp_path: Path, document: dict[str, Any]) -> None:
    text = "\n".join(f"{_toml(str(k))} = {_toml(v)}" for k, v in document.items()) + "\n"
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        pass  # an invalid document is fine too: it must give a ConfigError
    _check(tmp_path, text)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=120))
def test_fuzz_arbitrary_text(tmp_path: Path, text: str) -> None:
    _check(tmp_path, text)
    _check(tmp_path, "[conveyor]\n" + text)
