"""Read-side views (compare, leaderboard, studies, alias versions in cache keys) on every
metadata-store backend: SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.exceptions import ConfigError
from conveyor.execution.orchestrator import run_pipeline
from conveyor.execution.views import compare, leaderboard, summarize_run
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata.aliases import current_versions
from conveyor.training.studies import get_study, list_studies
from tests.conftest import make_settings
from tests.unit.execution import views_pipeline_for_tests as flows


def test_views_on_every_backend(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, db_url)
    store = open_metadata_store(settings.db_url, auto_upgrade=True)
    runs = [run_pipeline(flows.fitting, {"c": c}, settings=settings) for c in (1.0, 3.0, 2.0)]
    reused = run_pipeline(flows.fitting, {"c": 3.0, "shift": 1.0}, settings=settings)
    summary = summarize_run(store, reused.id)
    assert summary.metrics["auc"] == pytest.approx(0.8) and summary.reused == {"auc"}
    assert summary.params["fit.penalty"] == "l2"

    diff = compare(store, [r.id for r in runs])
    auc = next(row for row in diff["metrics"] if row["key"] == "auc")
    assert auc["values"] == pytest.approx([0.6, 0.8, 0.7])
    ranked = leaderboard(store, metrics=["auc"], params=["c"], sort="-auc", limit=3)
    assert [s.params["c"] for s in ranked] == [3.0, 3.0, 2.0]
    assert ranked[0].run["id"] in {runs[1].id, reused.id}
    with pytest.raises(ConfigError, match="Did you mean 'final'"):
        leaderboard(store, sort="finl")

    assert list_studies(store) == []
    with pytest.raises(Exception, match="No tuning study named 'x'"):
        get_study(store, "x")
    assert current_versions(store.engine, ["churn@production", "churn", "churn/3"]) == [
        "churn@production=none",
        "churn=none",
        "churn/3=3",
    ]
