"""The command line: init, run, runs list/show/compare, logs, artifacts, lineage, db."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app

runner = CliRunner()

PIPELINE = textwrap.dedent(
    """
    import conveyor
    from conveyor import pipeline, step

    @step
    def load(n: int) -> list[int]:
        print(f"loading {n}")
        return list(range(n))

    @step
    def total(xs: list[int], scale: float = 1.0) -> float:
        conveyor.log_metrics(total=sum(xs) * scale)
        return sum(xs) * scale

    @step
    def explode(x: float, really: bool) -> float:
        if really:
            raise RuntimeError("boom in explode")
        return x

    @pipeline
    def demo(n: int = 3, scale: float = 1.0, really: bool = False, label: str = "x"):
        return explode(total(load(n), scale=scale), really=really)
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "conveyor.toml").write_text("[conveyor]\nexecutor = 'threads'\n")
    (tmp_path / "flow.py").write_text(PIPELINE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_DB_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_ARTIFACT_URL", raising=False)
    return tmp_path


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def run_json(*args: str) -> dict:  # type: ignore[type-arg]
    code, output = invoke("run", "flow.py:demo", "--json", *args)
    assert code == 0, output
    return json.loads(output)


def test_run_twice_second_is_all_cache_hits(project: Path) -> None:
    first = run_json("-p", "n=4", "-p", "scale=0.5")
    assert first["status"] == "completed" and first["params"]["n"] == 4
    second = run_json("-p", "n=4", "-p", "scale=0.5")
    assert [s["cache_hit"] for s in second["steps"]] == [True, True, True]
    assert (project / ".conveyor" / "conveyor.db").exists()


def test_runs_list_show_and_logs(project: Path) -> None:
    run = run_json("-p", "n=5")
    code, output = invoke("runs", "list", "--json")
    assert code == 0 and json.loads(output)[0]["id"] == run["id"]
    code, output = invoke("runs", "show", run["id"], "--json")
    shown = json.loads(output)
    assert code == 0 and {s["name"] for s in shown["steps"]} == {"load", "total", "explode"}
    assert shown["metrics"] == {"total": 10.0}
    code, output = invoke("runs", "show", run["id"])
    assert code == 0 and "load" in output and "completed" in output
    code, output = invoke("logs", run["id"], "load")
    assert code == 0 and "loading 5" in output


def test_runs_compare_shows_param_and_metric_differences(project: Path) -> None:
    a = run_json("-p", "n=3")
    b = run_json("-p", "n=4")
    code, output = invoke("runs", "compare", a["id"], b["id"], "--json")
    assert code == 0
    diff = json.loads(output)
    assert {"key": "n", "a": 3, "b": 4, "values": [3, 4]} in diff["params"]
    assert diff["metrics"] == [
        {
            "key": "total",
            "a": 3.0,
            "b": 6.0,
            "delta": 3.0,
            "values": [3.0, 6.0],
            "deltas": [0.0, 3.0],
        }
    ]


def test_artifacts_show_and_lineage(project: Path) -> None:
    run = run_json("-p", "n=3")
    output_id = run["outputs"]["output"]
    code, output = invoke("artifacts", "show", output_id, "--json")
    assert code == 0 and json.loads(output)["type_name"] == "builtins.float"
    code, output = invoke("lineage", output_id, "--json")
    graph = json.loads(output)
    assert {s["name"] for s in graph["step_runs"].values()} == {"load", "total", "explode"}
    code, output = invoke("lineage", output_id)
    assert code == 0 and "explode" in output and "load" in output


def test_failed_run_exits_non_zero_and_names_the_step(project: Path) -> None:
    code, output = invoke("run", "flow.py:demo", "-p", "really=true")
    assert code == 1
    assert "explode" in output and "boom in explode" in output
    code, output = invoke("runs", "list", "--json")
    assert json.loads(output)[0]["status"] == "failed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "flow.py:demo", "-p", "nn=3"], "Did you mean 'n'"),
        (["run", "flow.py:demo", "-p", "n=abc"], "must be an int"),
        (["run", "flow.py:demo", "-p", "n"], "key=value"),
        (["run", "flow.py:dmeo"], "Did you mean 'demo'"),
        (["run", "missing.py:demo"], "No such pipeline file"),
        (["run", "flow.py"], "FILE.py:NAME"),
        (["run", "flow.py:demo", "--executor", "thread"], "Did you mean 'threads'"),
    ],
)
def test_bad_input_gets_a_clear_error_and_non_zero_exit(
    project: Path, args: list[str], message: str
) -> None:
    code, output = invoke(*args)
    assert code != 0
    assert message in " ".join(output.split())


def test_unknown_run_and_artifact_ids(project: Path) -> None:
    code, output = invoke("runs", "show", "01XXXXXXXX")
    assert code == 1 and "No run with id" in output
    code, output = invoke("artifacts", "show", "nope")
    assert code == 1 and "No artifact" in output


def test_bad_config_file_names_the_key(project: Path) -> None:
    (project / "conveyor.toml").write_text("[conveyor]\nexecuter = 'threads'\n")
    code, output = invoke("runs", "list")
    assert code == 1 and "Did you mean 'executor'" in " ".join(output.split())


def test_string_params_stay_strings(project: Path) -> None:
    run = run_json("-p", "label=007")
    assert run["params"]["label"] == "007"


def test_db_upgrade_and_current(project: Path) -> None:
    code, output = invoke("db", "upgrade")
    assert code == 0 and "revision" in output
    code, output = invoke("db", "current")
    assert code == 0
    from conveyor.stores.metadata import HEAD_REVISION

    assert output.startswith(HEAD_REVISION)


def test_init_scaffolds_a_working_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "proj"
    code, output = invoke("init", str(target))
    assert code == 0
    for path in (
        "conveyor.toml",
        "pipelines/training.py",
        "steps/data.py",
        "steps/model.py",
        "tests/test_training.py",
        ".gitignore",
    ):
        assert (target / path).is_file(), path
    code, output = invoke("init", str(target))
    assert code == 1 and "not empty" in output
