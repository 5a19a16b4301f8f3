"""Registry behaviour against a real SQLite file and artifact folder."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import conveyor
from conveyor.config import Settings
from conveyor.core.context import StepContext, enter_context, exit_context
from conveyor.exceptions import ModelError, NotFoundError
from conveyor.registry import ModelRef, Registry, get_registry, load_model, resolve
from conveyor.registry.registry import _CACHE
from conveyor.training.model import Model

from . import pipeline_for_tests as p


def test_versions_count_up_and_references_resolve(registry: Registry, models) -> None:
    v1 = registry.register(models[0], "churn", description="first", tags={"team": "growth"})
    v2 = registry.register(models[1], "churn", promote_to="production", reason="better")
    assert (v1.version, v2.version) == (1, 2)
    assert v1.tags == {"team": "growth"} and v1.description == "first"
    assert v2.aliases == ("production",)
    assert registry.resolve("churn").version == 2
    assert registry.resolve("churn/1").content_hash == v1.content_hash
    assert registry.resolve("churn@production").version == 2
    assert registry.resolve("churn@production").signature["columns"][0]["name"] == "mean radius"
    listing = registry.list_models()
    assert listing[0]["name"] == "churn" and listing[0]["aliases"] == {"production": 2}
    assert [v.version for v in registry.versions("churn")] == [2, 1]


def test_load_returns_a_working_model_and_caches_it(registry: Registry, models, cancer) -> None:
    X, _ = cancer
    registry.register(models[2], "fraud", promote_to="production")
    _CACHE.clear()
    first = registry.load("fraud@production")
    np.testing.assert_array_equal(first.predict(X), models[2].predict(X))
    start = time.perf_counter()
    again = registry.load("fraud@production")
    assert again is first
    assert time.perf_counter() - start < 0.05


def test_promote_and_rollback_walk_the_audit_log(registry: Registry, models) -> None:
    for model in models:
        registry.register(model, "churn")
    registry.promote("churn", 1, "production", reason="initial", actor="ana")
    registry.promote("churn", 2, "production", reason="retrained", actor="bo")
    event = registry.promote("churn", 3, "production", reason="new features", actor="cy")
    assert event is not None
    assert (event.from_version, event.to_version, event.actor) == (2, 3, "cy")
    assert registry.promote("churn", 3, "production") is None  # already there: no event

    back = registry.rollback("churn", "production", reason="bad latency", actor="ana")
    assert (back.action, back.from_version, back.to_version) == ("rollback", 3, 2)
    assert registry.resolve("churn@production").version == 2
    registry.rollback("churn", "production")
    assert registry.resolve("churn@production").version == 1
    with pytest.raises(ModelError, match="no previous holder"):
        registry.rollback("churn", "production")

    moves = [
        (e.action, e.from_version, e.to_version, e.reason)
        for e in registry.history("churn", alias="production")
    ]
    assert moves == [
        ("rollback", 2, 1, None),
        ("rollback", 3, 2, "bad latency"),
        ("promote", 2, 3, "new features"),
        ("promote", 1, 2, "retrained"),
        ("promote", None, 1, "initial"),
    ]
    assert [e.action for e in registry.history("churn")][-3:] == ["register"] * 3


def test_promoting_after_rollback_then_rolling_back_returns_to_the_rollback_target(
    registry: Registry, models
) -> None:
    for model in models:
        registry.register(model, "m")
    registry.promote("m", 1, "production")
    registry.promote("m", 2, "production")
    registry.rollback("m", "production")  # -> 1
    registry.promote("m", 3, "production")
    registry.rollback("m", "production")
    assert registry.resolve("m@production").version == 1


def test_bad_references_say_what_exists(registry: Registry, models) -> None:
    registry.register(models[0], "churn", promote_to="production")
    with pytest.raises(NotFoundError, match=r"no version 7\. Its versions: 1"):
        registry.promote("churn", 7, "production")
    with pytest.raises(NotFoundError, match=r"Did you mean 'churn'"):
        registry.resolve("chrun@production")
    with pytest.raises(NotFoundError, match=r"no alias 'prodution'.*Did you mean 'production'"):
        registry.resolve("churn@prodution")
    with pytest.raises(NotFoundError, match="no version 9"):
        registry.resolve("churn/9")
    for alias in ("Prod!", "", "1st", "a b", "x" * 65):
        with pytest.raises(ModelError, match="Invalid alias"):
            registry.promote("churn", 1, alias)
    with pytest.raises(ModelError, match="Invalid model name"):
        registry.register(models[0], "churn@prod")
    with pytest.raises(ModelError, match="version number"):
        ModelRef.parse("churn/latest")
    with pytest.raises(ModelError, match=r"Model\.from_fitted"):
        registry.register("not a model", "churn")  # type: ignore[arg-type]


def test_failed_gate_decision_registers_without_promoting(registry: Registry, models) -> None:
    registry.register(models[0], "churn", promote_to="production")
    decision = {"passed": False, "reasons": ["roc_auc 0.70 < min 0.80"], "primary": "roc_auc"}
    v2 = registry.register(models[1], "churn", decision=decision, promote_to="production")
    assert v2.aliases == () and v2.gate == decision
    assert registry.resolve("churn@production").version == 1
    refused = registry.history("churn", alias="production")[0]
    assert refused.action == "not_promoted" and "roc_auc 0.70 < min 0.80" in refused.reason


def test_version_registered_in_a_step_is_linked_to_its_run(registry: Registry, models) -> None:
    token = enter_context(StepContext(run_id="RUN1", step_run_id="STEP1", step_name="train"))
    try:
        version = registry.register(models[0], "churn")
    finally:
        exit_context(token)
    assert (version.run_id, version.step_run_id) == ("RUN1", "STEP1")
    # The run id does not exist in the store: lineage says what it knows.
    assert registry.lineage("churn/1")["run"] is None


def test_module_functions_use_the_current_settings(
    settings: Settings, models, cancer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(settings.root)
    monkeypatch.delenv("CONVEYOR_DB_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_ARTIFACT_URL", raising=False)
    version = conveyor.register_model(models[0], "churn", promote_to="staging")
    assert resolve("churn@staging").version == version.version
    X, _ = cancer
    np.testing.assert_array_equal(load_model("churn@staging").predict(X), models[0].predict(X))
    assert conveyor.load_model is load_model
    assert Path(settings.db_url.removeprefix("sqlite:///")).exists()


def test_pipeline_step_registers_and_lineage_reaches_run_data_and_code(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, cancer
) -> None:
    monkeypatch.chdir(settings.root)
    monkeypatch.delenv("CONVEYOR_DB_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_ARTIFACT_URL", raising=False)
    run = p.train_and_register.configure(settings=settings, executor="inline").run(c=0.5)
    assert run.status == "completed"
    registry = get_registry()
    lineage = registry.lineage("churn@production")
    assert lineage["run"]["id"] == run.id
    assert lineage["run"]["params"] == {"c": 0.5}
    assert lineage["step_run"]["name"] == "train"
    assert "sha" in lineage["code"]
    assert [i["name"] for i in lineage["inputs"]] == ["frame"]
    assert any(u.get("step") == "load" for u in lineage["upstream"])
    model = registry.load("churn@production")
    assert isinstance(model, Model)
    X, _ = cancer
    assert model.predict(pd.DataFrame(X)).shape == (len(X),)


def test_step_registers_into_the_runs_own_stores_not_the_working_directory(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("CONVEYOR_DB_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_ARTIFACT_URL", raising=False)
    run = p.train_and_register.configure(settings=settings, executor="threads").run(c=0.25)
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.metadata import open_metadata_store

    registry = get_registry(
        open_metadata_store(settings.db_url), open_artifact_store(settings.artifact_url)
    )
    assert registry.lineage("churn@production")["run"]["id"] == run.id
    assert not (elsewhere / ".conveyor").exists()
