"""A manual promotion of a version its gate refused needs --force, and says so in the
audit log: through the real CLI on a real SQLite registry."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.config import Settings
from conveyor.evaluation.metrics import EvaluationReport
from conveyor.exceptions import ModelError
from conveyor.registry import Registry, promote

runner = CliRunner()


def _invoke(settings: Settings, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app, ["--db-url", settings.db_url, "--artifact-url", settings.artifact_url, *args]
    )
    return result.exit_code, result.output


def _refused(registry: Registry, champion: str | None) -> object:
    from conveyor.evaluation.gate import Gate

    report = EvaluationReport(task="binary", primary="roc_auc", metrics={"roc_auc": 0.61})
    return Gate(primary="roc_auc", min_value=0.8).check(
        report,
        champion,
        metadata_store=registry.metadata_store,
        artifact_store=registry.artifact_store,
    )


def test_promoting_a_refused_version_needs_force(
    settings: Settings, registry: Registry, models
) -> None:
    registry.register(models[0], "churn", promote_to="production")
    decision = _refused(registry, "churn@production")
    assert not decision.passed  # type: ignore[attr-defined]
    registry.register(models[1], "churn", decision=decision, promote_to="production")
    assert registry.resolve("churn@production").version == 1

    code, out = _invoke(settings, "models", "promote", "churn", "2", "--alias", "production")
    assert code == 1 and "refused by its gate for churn@production" in out
    assert "roc_auc = 0.6100, must be at least 0.8000" in out and "--force" in out
    assert "Traceback" not in out
    assert registry.resolve("churn@production").version == 1  # nothing moved

    # The refusal was for production: another alias is not blocked.
    code, out = _invoke(settings, "models", "promote", "churn", "2", "--alias", "staging")
    assert code == 0, out

    code, out = _invoke(
        settings, "models", "promote", "churn", "2", "--alias", "production",
        "--force", "--reason", "hotfix",
    )  # fmt: skip
    assert code == 0 and "version 1 -> version 2" in out
    code, out = _invoke(settings, "models", "history", "churn", "--alias", "production", "--json")
    latest = json.loads(out)[0]
    assert latest["to_version"] == 2 and latest["reason"].startswith("hotfix; forced over")


def test_refusals_without_a_champion_and_from_registration_block_python_promote(
    settings: Settings, registry: Registry, models
) -> None:
    stores = {"metadata_store": registry.metadata_store, "artifact_store": registry.artifact_store}
    registry.register(models[0], "churn", decision=_refused(registry, None))
    with pytest.raises(ModelError, match=r"churn/1 was refused by its gate for churn@anything"):
        promote("churn", 1, "anything", **stores)  # type: ignore[arg-type]
    assert promote("churn", 1, "anything", force=True, **stores) is not None  # type: ignore[arg-type]
    # A plain version (no gate) moves freely.
    registry.register(models[1], "churn")
    assert promote("churn", 2, "anything", **stores) is not None  # type: ignore[arg-type]
