"""A run above the graph threshold is drawn as a timeline, its steps paged."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.ui_store import fanout
from tests.unit.ui.conftest import make_pages
from tests.unit.ui.test_pages import queries


@pytest.mark.slow
def test_run_of_many_steps_is_a_timeline_with_bounded_queries(tmp_path: Path):
    from conveyor.execution.orchestrator import run_pipeline
    from conveyor.stores.metadata import open_metadata_store
    from conveyor.ui.views.runs import MAX_DAG_STEPS, STEPS_PER_PAGE

    settings = make_settings(tmp_path)
    small = run_pipeline(fanout, {"n": 3}, settings=settings, executor="inline").id
    large = run_pipeline(fanout, {"n": MAX_DAG_STEPS + 5}, settings=settings, executor="inline").id
    pages = make_pages(settings)
    response = pages.get(f"/runs/{large}")
    assert response.status_code == 200
    html = response.text
    assert f"Timeline ({MAX_DAG_STEPS + 6} steps)" in html
    assert 'class="node step' not in html
    assert html.count("<rect") >= MAX_DAG_STEPS + 6  # one bar per step
    assert html.count('<tr id="step-') == STEPS_PER_PAGE
    older = re.search(r'<a rel="next" href="([^"]+)"', html)
    assert older is not None
    second = pages.get(older.group(1).replace("&amp;", "&")).text
    assert second.count('<tr id="step-') == STEPS_PER_PAGE
    engine = open_metadata_store(settings.db_url).engine
    # No query per step: the large run costs no more queries than a three-step one.
    assert queries(pages, engine, f"/runs/{large}") <= queries(pages, engine, f"/runs/{small}")
