"""Racing promotions and registrations against real SQLite files and real PostgreSQL.

Several threads and processes move one alias at the same time. Without the row lock, two
movers read the same current holder and the audit log would show two moves "from" the same
version, or the alias would end on a version the log does not show last.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from conveyor.execution.executors import make_executor
from conveyor.registry import Registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.training.model import Model

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _registry(db_url: str, artifact_url: str) -> Registry:
    return Registry(
        open_metadata_store(db_url, auto_upgrade=True), open_artifact_store(artifact_url)
    )


def _model(depth: int) -> Model:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return Model.from_fitted(DecisionTreeClassifier(max_depth=depth).fit(X, y), X, profile=False)


def _mover(db_url: str, artifact_url: str, seed: int, moves: int) -> int:
    """Promote random versions (and sometimes roll back); returns how many moves it made."""
    registry = _registry(db_url, artifact_url)
    rng = random.Random(seed)
    done = 0
    for _ in range(moves):
        if rng.random() < 0.2:
            try:
                registry.rollback("churn", "production", actor=f"w{seed}")
            except Exception as exc:  # the alias may have had a single holder
                if "no previous holder" not in str(exc):
                    raise
        else:
            registry.promote("churn", rng.randint(1, 4), "production", actor=f"w{seed}")
        done += 1
    return done


def _url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_moves_keep_the_audit_log_consistent(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db_url = _url(backend, tmp_path, request)
    artifact_url = str(tmp_path / "artifacts")
    registry = _registry(db_url, artifact_url)
    for depth in (1, 2, 3, 4):
        registry.register(_model(depth), "churn")
    registry.promote("churn", 1, "production")

    threads = [
        threading.Thread(target=_mover, args=(db_url, artifact_url, seed, 15)) for seed in range(4)
    ]
    processes = make_executor("processes", 2)
    try:
        futures = [
            processes.submit(_mover, db_url, artifact_url, 100 + seed, 15) for seed in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [f.result(timeout=120) for f in futures] == [15, 15]
    finally:
        processes.shutdown()

    events = list(reversed(registry.history("churn", alias="production")))
    assert len(events) > 10
    holder = None
    for event in events:
        assert event.from_version == holder, f"event {event.id} moved from a stale holder"
        assert event.from_version != event.to_version
        holder = event.to_version
    assert registry.resolve("churn@production").version == holder
    actors = {e.actor for e in events}
    assert {"w0", "w100"} <= actors


def _registrar(db_url: str, artifact_url: str, depth: int) -> int:
    return _registry(db_url, artifact_url).register(_model(depth), "fresh").version


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_first_registrations_get_distinct_versions(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db_url = _url(backend, tmp_path, request)
    artifact_url = str(tmp_path / "artifacts")
    _registry(db_url, artifact_url)  # create the schema once, before the race
    pool = make_executor("threads", 6)
    try:
        futures = [pool.submit(_registrar, db_url, artifact_url, 1 + i % 4) for i in range(12)]
        versions = sorted(f.result(timeout=120) for f in futures)
    finally:
        pool.shutdown()
    assert versions == list(range(1, 13))
    assert _registry(db_url, artifact_url).list_models()[0]["latest_version"] == 12
