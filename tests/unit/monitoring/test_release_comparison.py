"""Shadow traffic of a better challenger: compared live, then promoted through the gate."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conveyor import pipeline, step
from conveyor.config import Settings
from conveyor.exceptions import ConfigError
from conveyor.monitoring.generator import TARGET, ChurnGenerator
from conveyor.monitoring.monitor import Monitor
from conveyor.monitoring.release import (
    CHALLENGER_BETTER,
    compare_release,
    promote_challenger,
    store_comparison,
)
from conveyor.registry.registry import get_registry
from conveyor.serving.app import ServeOptions, create_app
from conveyor.serving.release import ReleasePolicy
from conveyor.serving.servable import RegistrySource
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.stores.metadata.events import list_events
from conveyor.triggers import on_challenger_better
from conveyor.triggers.scheduler import Scheduler
from tests.unit.monitoring.test_monitor import fit
from tests.unit.serving.conftest import client_for, run

pytestmark = pytest.mark.slow


def _shuffled(generator: ChurnGenerator) -> pd.DataFrame:
    """Training data whose labels were shuffled: a champion that learned nothing."""
    frame = generator.batch(3000, index=11)
    frame[TARGET] = np.random.default_rng(0).permutation(frame[TARGET].to_numpy())
    return frame


@pytest.fixture
def served(settings: Settings) -> dict[str, Any]:
    """Champion (trained on shuffled labels) and challenger (trained on the live distribution)
    served as a shadow release; 1,500 live rows logged by both, labels added."""
    metadata = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    registry = get_registry(metadata, artifacts)
    generator = ChurnGenerator(seed=3)
    registry.register(fit(generator.batch(3000, drift=1.0)), "churn", promote_to="production")
    registry.register(
        fit(generator.batch(3000, drift=0.0, index=5)), "churn", promote_to="challenger"
    )
    live = generator.batch(1500, drift=0.0, index=7)
    features = live.drop(columns=[TARGET])
    app = create_app(
        RegistrySource("churn@production", registry),
        ServeOptions(reload_interval=None, release=ReleasePolicy("shadow", "churn@challenger")),
        log_store=artifacts,
        challenger=RegistrySource("churn@challenger", registry),
    )
    start = time.time() - 1

    async def main() -> None:
        async with client_for(app) as c:
            await app._challenger.wait_ready(10)
            for i in range(0, len(features), 10):
                part = features.iloc[i : i + 10].astype(object)
                rows = part.where(part.notna(), None).to_dict("records")
                r = await c.post(
                    "/predict", json={"records": rows}, headers={"x-request-id": f"req-{i}"}
                )
                assert r.status_code == 200 and r.json()["version"] == "1"
            import asyncio

            await asyncio.gather(*app._shadow_tasks)

    run(main())
    monitor = Monitor(
        "churn-live",
        "churn@production",
        window="1h",
        metadata_store=metadata,
        artifact_store=artifacts,
    )
    monitor.save()
    labels = pd.DataFrame(
        {
            "request_id": [f"req-{i - i % 10}" for i in range(len(live))],
            "row": [i % 10 for i in range(len(live))],
            "label": live[TARGET].to_numpy(),
        }
    )
    monitor.add_labels(labels, refresh=False)
    return {
        "monitor": monitor,
        "registry": registry,
        "start": start,
        "end": time.time() + 1,
        "metadata": metadata,
    }


def test_paired_comparison_reports_agreement_and_a_significant_difference(
    served: dict[str, Any],
) -> None:
    monitor = served["monitor"]
    result = compare_release(
        monitor, 1, 2, served["start"], served["end"], metric="accuracy", min_labeled=200
    )
    assert result.mode == "paired" and result.paired_rows == 1500 and result.labeled == 1500
    assert result.rows == (1500, 1500)
    assert 0.0 < result.agreement < 1.0
    assert result.challenger_value > result.champion_value
    assert result.difference == pytest.approx(result.challenger_value - result.champion_value)
    assert result.ci_low <= result.difference <= result.ci_high
    assert result.ci_low > 0 and result.verdict == CHALLENGER_BETTER
    # Same data, same seed: the same numbers in every process.
    again = compare_release(monitor, 1, 2, served["start"], served["end"], metric="accuracy")
    assert (again.ci_low, again.ci_high) == (result.ci_low, result.ci_high)
    auc = compare_release(monitor, 1, 2, served["start"], served["end"], metric="roc_auc")
    assert auc.challenger_value > auc.champion_value
    # A margin larger than the whole difference is not a win.
    strict = compare_release(
        monitor, 1, 2, served["start"], served["end"], metric="accuracy", margin=0.9
    )
    assert strict.verdict == "no_difference"
    few = compare_release(monitor, 1, 2, served["start"], served["end"], min_labeled=10_000)
    assert few.verdict == "insufficient_data"
    with pytest.raises(ConfigError, match="did not both score"):
        compare_release(monitor, 1, 7, served["start"], served["end"])


@step
def promote_step(monitor: str) -> int:
    from conveyor.monitoring.monitor import Monitor as M
    from conveyor.monitoring.release import promote_challenger as promote

    promote(M.get(monitor))
    return 1


def test_the_trigger_fires_and_the_promotion_moves_the_alias_through_a_gate(
    served: dict[str, Any], settings: Settings
) -> None:
    monitor, registry = served["monitor"], served["registry"]
    losing = compare_release(
        monitor, 1, 2, served["start"], served["end"], metric="accuracy", margin=0.9
    )
    store_comparison(monitor, losing)
    with pytest.raises(ConfigError, match="not promoted"):
        promote_challenger(monitor)

    @pipeline(triggers=[on_challenger_better("churn-live", metric="accuracy", min_labeled=500)])
    def adopt() -> int:
        return promote_step("churn-live")

    fired: list[dict[str, Any]] = []
    scheduler = Scheduler(
        [adopt], settings=settings, launcher=lambda p, params, t: fired.append(dict(t)), lease=None
    )
    scheduler.tick(time.time())
    assert fired == []  # the stored comparison did not find the challenger better
    winning = compare_release(monitor, 1, 2, served["start"], served["end"], metric="accuracy")
    store_comparison(monitor, winning)
    scheduler.tick(time.time() + 1)
    scheduler.wait_for_runs(10)
    (trigger,) = fired
    assert trigger["details"]["comparison_id"] == winning.id
    assert trigger["details"]["challenger_version"] == 2

    decision = promote_challenger(monitor)
    assert registry.resolve("churn@production").version == 2
    source = RegistrySource("churn@production", registry)
    assert source.current_version() == "2"  # what a serving hot reload polls
    kinds = [e.kind for e in reversed(list_events(served["metadata"].engine, limit=20))]
    assert kinds[-2:] == ["gate_passed", "alias_moved"]
    (moved,) = list_events(served["metadata"].engine, kinds=["alias_moved"], limit=1)
    assert winning.id in moved.summary
    history = registry.history("churn", alias="production")
    assert "live comparison" in (history[0].reason or "")
    assert decision


def test_unpaired_canary_comparison(settings: Settings) -> None:
    metadata = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    registry = get_registry(metadata, artifacts)
    generator = ChurnGenerator(seed=4)
    registry.register(fit(_shuffled(generator)), "churn", promote_to="production")
    registry.register(fit(generator.batch(3000, index=5)), "churn", promote_to="challenger")
    live = generator.batch(2000, index=7)
    features = live.drop(columns=[TARGET])
    app = create_app(
        RegistrySource("churn@production", registry),
        ServeOptions(
            reload_interval=None, release=ReleasePolicy("canary", "churn@challenger", percent=50)
        ),
        log_store=artifacts,
        challenger=RegistrySource("churn@challenger", registry),
    )
    start = time.time() - 1
    versions = []

    async def main() -> None:
        async with client_for(app) as c:
            await app._challenger.wait_ready(10)
            for i in range(0, len(features), 10):
                part = features.iloc[i : i + 10].astype(object)
                rows = part.where(part.notna(), None).to_dict("records")
                r = await c.post(
                    "/predict", json={"records": rows}, headers={"x-request-id": f"c-{i}"}
                )
                versions.append(r.json()["version"])

    run(main())
    assert 0.3 < np.mean([v == "2" for v in versions]) < 0.7
    monitor = Monitor(
        "churn-canary", "churn@production", metadata_store=metadata, artifact_store=artifacts
    )
    monitor.save()
    monitor.add_labels(
        pd.DataFrame(
            {
                "request_id": [f"c-{i - i % 10}" for i in range(len(live))],
                "row": [i % 10 for i in range(len(live))],
                "label": live[TARGET].to_numpy(),
            }
        ),
        refresh=False,
    )
    result = compare_release(monitor, 1, 2, start, time.time() + 1, metric="accuracy")
    assert result.mode == "unpaired" and result.agreement is None
    assert result.rows[0] + result.rows[1] == 2000
    assert result.challenger_value > result.champion_value
    assert result.verdict == CHALLENGER_BETTER
