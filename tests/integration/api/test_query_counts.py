"""Every list endpoint runs a fixed number of SQL statements whatever its page size:
no query per row (counted with SQLAlchemy's cursor events on the app's own engine)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from conveyor.api.app import create_api_app
from conveyor.api.auth import AuthConfig
from conveyor.stores.metadata.engine import make_engine
from tests.integration.api.conftest import Project
from tests.unit.api.conftest import call

pytestmark = pytest.mark.slow


@contextmanager
def counting(engine: sa.Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if not statement.startswith("BEGIN"):  # transaction control, not a query
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


@pytest.fixture(scope="module")
def app(project: Project):  # type: ignore[no-untyped-def]
    return create_api_app(project.settings, AuthConfig.open_local())


def _lists(project: Project) -> list[tuple[str, dict[str, object]]]:
    runs = project.filled.runs
    return [
        ("/api/v1/runs", {}),
        ("/api/v1/runs", {"pipeline": "train", "status": "completed", "tag": "sweep:a"}),
        ("/api/v1/runs", {"sort": "-metric:accuracy", "metric": ["accuracy", "train.loss"]}),
        ("/api/v1/runs", {"sort": "duration", "trigger": "none", "q": "tra"}),
        (f"/api/v1/runs/{runs['train0']}/steps", {}),
        (f"/api/v1/runs/{runs['train0']}/artifacts", {}),
        ("/api/v1/artifacts", {}),
        ("/api/v1/datasets", {}),
        ("/api/v1/datasets/customers/versions", {}),
        ("/api/v1/models", {}),
        ("/api/v1/models/churn/versions", {}),
        ("/api/v1/models/churn/audit", {}),
        ("/api/v1/gate-decisions", {}),
        ("/api/v1/monitors", {}),
        ("/api/v1/monitors/churn-watch/reports", {}),
        ("/api/v1/tuning/studies", {}),
        ("/api/v1/tuning/studies/quadratic/trials", {}),
        ("/api/v1/triggers", {}),
        ("/api/v1/trigger-events", {}),
        ("/api/v1/events", {}),
    ]


def test_list_endpoints_run_the_same_few_queries_for_any_page_size(app, project: Project) -> None:
    engine = make_engine(project.settings.db_url)
    for path, params in _lists(project):
        counts = []
        sizes = []
        for limit in (1, 100):
            with counting(engine) as statements:
                response = call(app, "GET", path, params={**params, "limit": limit})
            assert response.status_code == 200, (path, response.text)
            counts.append(len(statements))
            sizes.append(len(response.json()["items"]))
        # A metric sort is two parts (runs with the metric, then without): a page that
        # reaches the second part costs one more query, whatever its size.
        seam = 1 if str(params.get("sort", "")).lstrip("-").startswith("metric:") else 0
        assert counts[0] <= counts[1] <= counts[0] + seam, (path, params, counts)
        assert counts[1] <= 5, (path, counts)
        if sizes[1] > 1:
            assert sizes[0] == 1  # the large page really had more rows to cost queries


def test_run_page_compare_and_lineage_are_bounded(app, project: Project) -> None:
    engine = make_engine(project.settings.db_url)
    runs = list(project.filled.runs.values())
    counts = []
    for ids in (runs[:2], runs):
        with counting(engine) as statements:
            assert call(app, "GET", "/api/v1/compare", params={"run": ids}).status_code == 200
        counts.append(len(statements))
    assert counts[0] == counts[1] <= 6
    for path in (f"/api/v1/runs/{runs[0]}", f"/api/v1/runs/{runs[0]}/graph"):
        with counting(engine) as statements:
            assert call(app, "GET", path).status_code == 200
        assert len(statements) <= 5, (path, len(statements))
    # Lineage costs a fixed number of queries per level walked, not per node.
    with counting(engine) as statements:
        graph = call(app, "GET", "/api/v1/lineage", params={"node": "model:churn:1"}).json()
    assert len(graph["nodes"]) > 5
    assert len(statements) <= 4 * 10 + 12


def test_metric_sorted_pages_cost_the_same_on_both_sides_of_the_seam(app, project: Project) -> None:
    engine = make_engine(project.settings.db_url)
    params = {"sort": "-metric:accuracy", "metric": ["accuracy"]}
    counts = []
    for limit in (5, 100):  # both pages reach the runs without the metric
        with counting(engine) as statements:
            response = call(app, "GET", "/api/v1/runs", params={**params, "limit": limit})
        assert response.status_code == 200
        counts.append(len(statements))
    assert counts[0] == counts[1] <= 5
