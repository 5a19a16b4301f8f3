"""`conveyor tune list/show`, `triggers list/events/retry` and the trigger hop of
`models lineage`, through the real root app on real SQLite stores."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.config import load_settings
from conveyor.data.datasets import register_dataset
from conveyor.execution.loader import load_pipeline
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.training.tuning import tune
from conveyor.triggers.scheduler import Scheduler

runner = CliRunner()

FLOWS = textwrap.dedent(
    """
    from pathlib import Path

    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from conveyor import Model, on_new_data, pipeline, step
    from conveyor.data.datasets import dataset
    from conveyor.registry import register_model

    @step(cache=False)
    def fit(frame: pd.DataFrame) -> int:
        if Path(__file__).with_name("BROKEN").exists():
            raise RuntimeError("the feature store is down")
        est = LogisticRegression().fit(frame[["x"]], frame["y"])
        return register_model(Model.from_fitted(est, frame, target="y"), "m").version

    @pipeline(triggers=[on_new_data("customers", min_rows=10)])
    def retrain() -> int:
        return fit(dataset("customers"))
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "conveyor.toml").write_text("[conveyor]\n")
    (tmp_path / "flows.py").write_text(FLOWS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_DB_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_ARTIFACT_URL", raising=False)
    return tmp_path


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_tune_list_and_show_trials_best_and_history(project: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = open_metadata_store(load_settings(root=project, env={}).db_url)

    def objective(params: dict) -> float:  # type: ignore[type-arg]
        if params["x"] > 4.5:
            raise ValueError("diverged")
        return (params["x"] - 1.0) ** 2

    result = tune(
        objective,
        {"x": ("float", -5.0, 5.0)},
        n_trials=25,
        direction="minimize",
        study_name="quad",
        metadata_store=store,
        sampler=optuna.samplers.RandomSampler(seed=3),
    )
    code, out = invoke("tune", "list", "--json")
    assert code == 0, out
    [listed] = json.loads(out)
    assert (listed["name"], listed["direction"], listed["trials"]) == ("quad", "minimize", 25)
    assert listed["best_value"] == pytest.approx(result.best_value)
    code, out = invoke("tune", "show", "quad", "--json")
    view = json.loads(out)
    assert view["best"]["params"] == result.best_params
    assert view["best"]["value"] == pytest.approx(result.best_value)
    assert [t["number"] for t in view["trials"]] == list(range(25))
    bests = [h["best"] for h in view["history"]]
    assert bests == sorted(bests, reverse=True) and bests[-1] == pytest.approx(result.best_value)
    assert sum(view["states"].values()) == 25
    code, out = invoke("tune", "show", "quad", "--limit", "3")
    assert code == 0 and f"trial {view['best']['number']}" in out and "22 more trials" in out
    code, out = invoke("tune", "show", "qaud")
    assert code == 1 and "Did you mean 'quad'?" in out


def test_triggers_list_events_retry_and_the_trigger_hop_in_lineage(project: Path) -> None:
    settings = load_settings(root=project, env={})
    stores = {
        "metadata_store": open_metadata_store(settings.db_url),
        "artifact_store": open_artifact_store(settings.artifact_url),
    }
    scheduler = Scheduler(
        [load_pipeline("flows.py:retrain", project)], settings=settings, lease=None
    )
    scheduler.tick()  # registers the trigger
    (project / "BROKEN").write_text("")
    frame = pd.DataFrame({"x": range(40), "y": [i % 2 for i in range(40)]})
    register_dataset("customers", frame, **stores)  # type: ignore[arg-type]
    fired = scheduler.tick()
    assert [f.status for f in fired] == ["fired"]
    assert scheduler.wait_for_runs(60)
    scheduler.close(1)

    code, out = invoke("triggers", "list", "--json")
    assert code == 0, out
    [trigger] = json.loads(out)
    assert (trigger["pipeline"], trigger["kind"], trigger["fire_count"]) == (
        "retrain",
        "new_data",
        1,
    )
    code, out = invoke("triggers", "events", "--status", "failed", "--json")
    [event] = json.loads(out)
    assert event["id"] == fired[0].event_id and event["run_id"]
    code, out = invoke("triggers", "events")
    assert code == 0 and "failed" in out and event["id"] in out

    code, out = invoke("triggers", "retry", event["id"], "-p", "flows.py:retrain")
    assert code == 1 and "failed" in out  # still broken: the retry fails too, recorded
    (project / "BROKEN").unlink()
    code, out = invoke("triggers", "retry", event["id"][:12], "-p", "flows.py:retrain", "--json")
    assert code == 0, out
    retried = json.loads(out)
    assert retried["status"] == "completed" and retried["run_id"] != event["run_id"]
    assert [r["status"] for r in retried["details"]["retries"]] == ["failed", "completed"]
    code, out = invoke("triggers", "retry", event["id"], "-p", "flows.py:retrain")
    assert code == 1 and "only failed or suppressed events can be retried" in out
    code, out = invoke("triggers", "retry", "NOPE000000000", "-p", "flows.py:retrain")
    assert code == 1 and "No trigger event" in out

    code, out = invoke("models", "lineage", "m/1", "--json")
    graph = json.loads(out)
    assert graph["run"]["id"] == retried["run_id"]
    assert graph["trigger"]["event_id"] == event["id"] and graph["trigger"]["kind"] == "new_data"
    assert graph["trigger"]["status"] == "completed" and graph["trigger"]["report"] is None
    code, out = invoke("models", "lineage", "m/1")
    assert f"started by: trigger event {event['id']} (new_data, completed)" in out
