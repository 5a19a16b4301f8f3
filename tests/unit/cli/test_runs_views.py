"""`runs compare` (N runs, cache hits resolved), `runs list` leaderboards, `runs show`
logged artifacts, `artifacts get`: through the real root app on a real SQLite store."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app

runner = CliRunner()

PIPELINE = textwrap.dedent(
    """
    import pandas as pd

    import conveyor
    from conveyor import pipeline, step

    @step
    def train(c: float) -> float:
        conveyor.log_params(solver="lbfgs", c_squared=c * c)
        conveyor.log_metrics(auc=0.5 + c / 10)
        conveyor.log_artifact("importances", pd.DataFrame({"feature": ["a", "b"], "w": [c, 1.0]}))
        return c

    @step
    def score(x: float, bonus: float = 0.0) -> float:
        conveyor.log_metrics(final=x + bonus)
        return x + bonus

    @pipeline
    def flow(c: float = 1.0, bonus: float = 0.0):
        return score(train(c), bonus=bonus)
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


def run(*params: str) -> dict:  # type: ignore[type-arg]
    args = [x for p in params for x in ("-p", p)]
    code, output = invoke("run", "flow.py:flow", "--json", *args)
    assert code == 0, output
    return json.loads(output)


def test_compare_reads_params_and_metrics_of_reused_step_runs(project: Path) -> None:
    a = run("c=2.0")
    b = run("c=2.0", "bonus=1.0")  # train is a cache hit in b
    assert [s["cache_hit"] for s in b["steps"]] == [True, False]
    code, output = invoke("runs", "compare", a["id"], b["id"], "--all", "--json")
    assert code == 0, output
    diff = json.loads(output)
    params = {row["key"]: row["values"] for row in diff["params"]}
    assert params["train.solver"] == ["lbfgs", "lbfgs"]
    assert params["train.c_squared"] == [4.0, 4.0]
    metrics = {row["key"]: row for row in diff["metrics"]}
    assert metrics["auc"]["values"] == [pytest.approx(0.7), pytest.approx(0.7)]
    assert metrics["final"]["delta"] == pytest.approx(1.0)
    assert diff["reused"] == [[], ["auc"]]
    # without --all only what differs
    code, output = invoke("runs", "compare", a["id"], b["id"], "--json")
    diff = json.loads(output)
    assert [r["key"] for r in diff["params"]] == ["bonus", "score.bonus"]
    assert [r["key"] for r in diff["metrics"]] == ["final"]
    code, output = invoke("runs", "show", b["id"], "--json")
    shown = json.loads(output)
    assert shown["metrics"]["auc"] == pytest.approx(0.7) and shown["reused_metrics"] == ["auc"]


def test_compare_takes_n_runs_and_rejects_one(project: Path) -> None:
    runs = [run(f"c={c}") for c in (1.0, 2.0, 3.0)]
    code, output = invoke("runs", "compare", *(r["id"] for r in runs), "--json")
    assert code == 0, output
    diff = json.loads(output)
    assert diff["runs"] == [r["id"] for r in runs]
    auc = next(r for r in diff["metrics"] if r["key"] == "auc")
    assert auc["values"] == pytest.approx([0.6, 0.7, 0.8])
    assert auc["deltas"] == pytest.approx([0.0, 0.1, 0.2])
    assert "a" not in auc  # a/b only for two runs
    code, output = invoke("runs", "compare", *(r["id"] for r in runs))
    assert code == 0 and all(r["id"] in output for r in runs)
    code, output = invoke("runs", "compare", runs[0]["id"])
    assert code == 1 and "at least two runs" in output
    assert "Traceback" not in output


def test_leaderboard_sorts_by_metric_with_chosen_columns(project: Path) -> None:
    ids = {c: run(f"c={c}")["id"] for c in (2.0, 1.0, 3.0)}
    run("c=3.0", "bonus=5.0")  # train reused: ranked with the auc it reused
    code, output = invoke(
        "runs", "list", "--metric", "auc", "--metric", "final", "--param", "c",
        "--sort", "-auc", "--json",
    )  # fmt: skip
    assert code == 0, output
    rows = json.loads(output)
    assert [r["metrics"]["auc"] for r in rows] == pytest.approx([0.8, 0.8, 0.7, 0.6])
    assert rows[2]["id"] == ids[2.0] and rows[3]["id"] == ids[1.0]
    assert {r["params"]["c"] for r in rows[:2]} == {3.0}
    code, output = invoke("runs", "list", "--sort", "final", "--limit", "2", "--json")
    rows = json.loads(output)
    assert [r["metrics"]["final"] for r in rows] == [1.0, 2.0]
    code, output = invoke("runs", "list", "--metric", "auc", "--sort", "-auc")
    assert code == 0 and output.index(ids[3.0]) < output.index(ids[1.0])
    code, output = invoke("runs", "list", "--sort", "-acu")
    assert code == 1 and "Did you mean 'auc'?" in output


def test_runs_show_lists_logged_artifacts_and_artifacts_get_saves_them(project: Path) -> None:
    first = run("c=2.0")
    cached = run("c=2.0")
    for record in (first, cached):
        code, output = invoke("runs", "show", record["id"], "--json")
        logged = json.loads(output)["logged_artifacts"]
        assert [(a["name"], a["step"]) for a in logged] == [("importances", "train")]
    artifact_id = logged[0]["id"]
    code, output = invoke("runs", "show", cached["id"])
    assert code == 0 and artifact_id in output and "importances" in output

    for suffix, reader in (
        (".parquet", pd.read_parquet),
        (".csv", pd.read_csv),
    ):
        target = project / f"out{suffix}"
        code, output = invoke("artifacts", "get", artifact_id, "-o", str(target))
        assert code == 0, output
        frame = reader(target)
        assert frame["feature"].tolist() == ["a", "b"] and frame["w"].tolist() == [2.0, 1.0]
    raw = project / "raw.bin"
    code, output = invoke("artifacts", "get", artifact_id, "-o", str(raw))
    assert code == 0
    assert pd.read_parquet(io.BytesIO(raw.read_bytes()))["w"].tolist() == [2.0, 1.0]
    code, output = invoke("artifacts", "get", first["outputs"]["output"], "-o", "x.csv")
    assert code == 1 and "not a table" in output and not (project / "x.csv").exists()
    code, output = invoke("artifacts", "get", "NOPE0000000", "-o", "y.bin")
    assert code == 1 and "No artifact" in output
