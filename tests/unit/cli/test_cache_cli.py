"""`conveyor cache explain`: the components of a step's key and why it re-ran."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from tests.unit.execution.cache_project import CacheProject

runner = CliRunner()

FILES = {
    "pipe.py": """
        from conveyor import pipeline
        from .steps import s

        @pipeline
        def p(x: int = 3):
            return s(x)
        """,
    "config.py": 'CONFIG = {"threshold": 0.5}\n',
    "steps.py": """
        import os
        from conveyor import step
        from .config import CONFIG

        def helper(v):
            return v * 2

        @step(env=["CONVEYOR_TEST_EXPLAIN_TOKEN"])
        def s(x: int) -> float:
            return helper(x) * CONFIG["threshold"]
        """,
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CacheProject]:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setenv("CONVEYOR_TEST_EXPLAIN_TOKEN", "hunter2-very-secret")
    made = CacheProject(tmp_path, FILES)
    monkeypatch.syspath_prepend(str(made.base))
    yield made
    made.close()


def explain(project: CacheProject, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--db-url", project.settings.db_url, "cache", "explain", *args])
    return result.exit_code, result.output


def explain_json(project: CacheProject, *args: str) -> dict[str, Any]:
    code, output = explain(project, *args, "--json")
    assert code == 0, output
    return json.loads(output)  # type: ignore[no-any-return]


def test_explain_names_the_changed_value_and_its_file(project: CacheProject) -> None:
    first = project.run()
    project.edit("config.py", "0.5", "0.75")
    second = project.run()
    code, output = explain(project, second.id, "s")
    assert code == 0, output
    config_file = f"{project.package}/config.py"
    assert f"re-ran because `CONFIG` in `{config_file}` changed" in " ".join(output.split())
    data = explain_json(project, second.id, "s", "--against", first.id)
    assert data["cache_hit"] is False
    assert data["compared_with"]["run"] == first.id
    assert [(d["change"], d["kind"], d["name"]) for d in data["differences"]] == [
        ("changed", "value", f"{project.package}.config:CONFIG")
    ]
    assert data["differences"][0]["where"] == config_file


def test_explain_lists_every_component_with_short_hashes(project: CacheProject) -> None:
    run = project.run()
    data = explain_json(project, run.id, "s")
    kinds = {(c["kind"], c["name"]) for c in data["components"]}
    package = project.package
    assert {
        ("step", "s"),
        ("function", f"{package}.steps:s"),
        ("function", f"{package}.steps:helper"),
        ("value", f"{package}.config:CONFIG"),
        ("param", "x"),
        ("env", "CONVEYOR_TEST_EXPLAIN_TOKEN"),
    } <= kinds
    assert all(len(c["hash"]) == 16 for c in data["components"])
    assert data["summary"] == "ran: no earlier run of this step to compare with"
    # The env var's value is never shown or stored, only whether it is set and a hash.
    code, output = explain(project, run.id, "s")
    assert code == 0
    assert "hunter2" not in output and "hunter2" not in json.dumps(data)


def test_explain_of_a_cache_hit_points_at_the_reused_run(project: CacheProject) -> None:
    first = project.run()
    second = project.run()
    data = explain_json(project, second.id, "s")
    assert data["cache_hit"] is True
    assert data["compared_with"]["run"] == first.id
    assert data["differences"] == []
    assert data["summary"].startswith("cache hit: reused step run")


def test_explain_against_names_code_parameter_and_env_changes(
    project: CacheProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = project.run()
    project.edit("steps.py", "return v * 2", "return v * 3")
    monkeypatch.setenv("CONVEYOR_TEST_EXPLAIN_TOKEN", "rotated")
    second = project.run(x=4)
    data = explain_json(project, second.id, "s", "--against", first.id)
    messages = [d["message"] for d in data["differences"]]
    assert f"function `helper` in `{project.package}/steps.py` changed (code)" in messages
    assert "parameter `x` changed: 3 -> 4" in messages
    assert "environment variable `CONVEYOR_TEST_EXPLAIN_TOKEN` changed" in messages
    assert "rotated" not in json.dumps(data)


def test_explain_errors_are_one_line_without_traceback(project: CacheProject) -> None:
    run = project.run()
    code, output = explain(project, run.id, "nope")
    assert code == 1 and "has no step 'nope'" in output and "Traceback" not in output
    code, output = explain(project, "ZZZZZZZZ", "s")
    assert code == 1 and "No run with id" in output and "Traceback" not in output
    code, output = explain(project, run.id, "s", "--against", "YYYYYYYY")
    assert code == 1 and "No run with id 'YYYYYYYY'" in output
