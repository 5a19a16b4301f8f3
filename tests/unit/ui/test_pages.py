"""Every page kind renders from a store filled by real runs; filters, sorting, paging,
error pages, escaping, page weight and a bounded number of queries per page."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import sqlalchemy as sa

from tests.ui_store import Filled
from tests.unit.ui.conftest import Pages


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.hrefs.append(href)


def links(html: str) -> list[str]:
    parser = Links()
    parser.feed(html)
    return parser.hrefs


def run_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-run-id="([0-9A-Z]{26})"', html)


def ok(pages: Pages, path: str) -> str:
    response = pages.get(path)
    assert response.status_code == 200, (path, response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def test_runs_page_lists_every_run_with_leaderboard_columns(pages: Pages, filled: Filled):
    html = ok(pages, "/runs")
    ids = run_ids(html)
    assert set(filled.runs.values()) <= set(ids)
    assert ">accuracy<" in html or "accuracy</a>" in html  # a metric column
    assert "sort=-metric%3Aaccuracy" in html  # ... that sorts


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("pipeline=broken", {"failed"}),
        ("status=failed", {"failed", "checks"}),
        ("tag=sweep%3Da", {"train0", "train1", "train2"}),
        ("q=fanou", {"fan3", "fan40"}),
        ("pipeline=train&status=completed&tag=i%3D1", {"train1"}),
        ("trigger=none&pipeline=broken", {"failed"}),
    ],
)
def test_runs_filters(pages: Pages, filled: Filled, query: str, expected: set[str]):
    ids = set(run_ids(ok(pages, f"/runs?{query}")))
    assert ids == {filled.runs[k] for k in expected}


def test_runs_date_filter(pages: Pages, filled: Filled):
    assert set(filled.runs.values()) <= set(run_ids(ok(pages, "/runs?since=2000-01-01")))
    assert run_ids(ok(pages, "/runs?until=2000-01-01")) == []


def test_sort_by_metric_orders_the_leaderboard(pages: Pages, filled: Filled, ui_settings: Any):
    from conveyor.stores.metadata import open_metadata_store

    store = open_metadata_store(ui_settings.db_url)

    def accuracies(query: str) -> list[float | None]:
        ids = run_ids(ok(pages, f"/runs?pipeline=train&sort={query}"))
        assert len(ids) == 4
        return [store.latest_metrics(i).get("accuracy") for i in ids]

    # The all-cached run logged no metric: it comes last in either direction.
    descending = accuracies("-metric:accuracy")
    assert descending[-1] is None
    assert descending[:3] == sorted(descending[:3], reverse=True)  # type: ignore[type-var]
    ascending = accuracies("metric:accuracy")
    assert ascending[-1] is None
    assert ascending[:3] == sorted(descending[:3])  # type: ignore[type-var]


def test_sort_by_param_column(pages: Pages, filled: Filled, ui_settings: Any):
    from conveyor.stores.metadata import open_metadata_store

    store = open_metadata_store(ui_settings.db_url)
    html = ok(pages, "/runs?pipeline=train")
    assert "sort=-param%3Aalpha" in html  # the parameter header sorts

    def alphas(query: str) -> list[float]:
        ids = run_ids(ok(pages, f"/runs?pipeline=train&sort={query}"))
        assert len(ids) == 4
        return [store.get_run(i)["params"]["alpha"] for i in ids]

    assert alphas("-param:alpha") == sorted(alphas("-param:alpha"), reverse=True)
    assert alphas("param:alpha") == sorted(alphas("-param:alpha"))
    assert "alpha ▲" in ok(pages, "/runs?pipeline=train&sort=param:alpha")


def test_keyset_pages_cover_every_run_once(pages: Pages, filled: Filled):
    seen: list[str] = []
    path = "/runs?limit=3"
    for _ in range(20):
        html = ok(pages, path)
        seen.extend(run_ids(html))
        older = re.search(r'<a rel="next" href="([^"]+)"', html)
        if older is None:
            break
        path = older.group(1).replace("&amp;", "&")
        assert "offset" not in path
    assert len(seen) == len(set(seen))
    assert set(filled.runs.values()) <= set(seen)


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/runs?since=yesterday", 400, "date like 2026-01-31"),
        ("/runs?before=not-a-cursor", 400, "cursor"),
        ("/runs?sort=color", 400, "Cannot sort runs"),
        ("/runs?limit=0", 400, "limit"),
        ("/runs?tag=novalue", 400, "key=value"),
        ("/runs/NOSUCHRUN000000", 404, "No run with id"),
        ("/models/nosuch", 404, "No model"),
        ("/models/churn/99", 404, "no version 99"),
        ("/datasets/customers/x", 400, "dataset version is a number"),
        ("/monitors/nosuch", 404, "No monitor"),
        ("/tuning/nosuch", 404, "No tuning study"),
        ("/compare?runs=ONLYONE", 400, "at least two runs"),
        ("/lineage?node=bogus", 400, ""),
    ],
)
def test_bad_input_gives_an_error_page(pages: Pages, path: str, status: int, words: str):
    response = pages.get(path)
    assert response.status_code == status, response.text[:300]
    assert "<h1>" in response.text
    assert words in response.text
    assert "Traceback" not in response.text


def test_run_page_draws_the_dag_with_cached_steps_and_curves(pages: Pages, filled: Filled):
    html = ok(pages, f"/runs/{filled.runs['cached']}")
    assert html.count('class="node step') == 4
    assert html.count("stroke-dasharray") >= 3  # make_frame, split, fit from cache
    assert 'class="timeline"' in html  # the timing strip
    first = ok(pages, f"/runs/{filled.runs['train0']}")
    assert "<h3>train.loss</h3>" in first
    assert first.count("<polyline") >= 1
    assert "/runs/" + filled.runs["train0"] + "/steps/" in first


def test_run_of_many_steps_keeps_a_graph_below_the_threshold(pages: Pages, filled: Filled):
    html = ok(pages, f"/runs/{filled.runs['fan40']}")
    assert html.count('class="node step') == 41


def test_step_page_shows_logs_reason_and_io(pages: Pages, filled: Filled, ui_settings: Any):
    from conveyor.stores.metadata import open_metadata_store

    store = open_metadata_store(ui_settings.db_url)
    hit = next(s for s in store.step_runs(filled.runs["cached"]) if s["name"] == "fit")
    html = ok(pages, f"/runs/{filled.runs['cached']}/steps/{hit['id']}")
    assert "cache hit" in html.lower()
    assert 'id="cache-reason"' in html
    failed = next(s for s in store.step_runs(filled.runs["failed"]) if s["name"] == "explode")
    html = ok(pages, f"/runs/{filled.runs['failed']}/steps/{failed['id']}")
    assert "this step always fails" in html
    assert "Traceback" in html  # the step's own traceback, shown as data
    wrong = pages.get(f"/runs/{filled.runs['cached']}/steps/{failed['id']}")
    assert wrong.status_code == 400


def test_compare_highlights_differences(pages: Pages, filled: Filled):
    ids = ",".join(filled.runs[k] for k in ("train0", "train1", "train2"))
    html = ok(pages, f"/compare?runs={ids}")
    assert re.search(r'<tr class="param differs"><th>alpha</th>', html)
    assert re.search(r'<tr class="param"><th>epochs</th>', html)
    assert re.search(r'<tr class="step differs"><th>fit</th>', html)
    assert re.search(r'<tr class="step"><th>make_frame</th>', html)


def test_artifact_preview_shows_table_head_and_schema(pages: Pages, filled: Filled):
    html = ok(pages, f"/runs/{filled.runs['train0']}")
    artifact = re.search(r'href="/artifacts/([0-9A-Z]{26})">output</a>', html)
    assert artifact is not None
    page = ok(pages, f"/artifacts/{artifact.group(1)}")
    assert 'id="schema"' in page or 'id="preview"' in page


def test_model_pages(pages: Pages, filled: Filled):
    html = ok(pages, "/models/churn")
    assert 'class="badge alias">production' in html
    assert html.count('<form method="post"') >= 2  # promote + rollback for the local admin
    assert 'name="csrf_token"' in html
    card = ok(pages, "/models/churn/1")
    assert "Model card" in card
    assert 'id="gate"' in card and "must be at least" in card
    assert "tenure_months" in card  # the signature


def test_dataset_monitor_and_tuning_pages(pages: Pages, filled: Filled):
    assert "customers" in ok(pages, "/datasets")
    version = ok(pages, "/datasets/customers/2")
    assert 'id="profile"' in version and "<svg" in version
    assert 'id="schema"' in version
    assert "/validation/" in version  # the report of the checks run
    report_link = re.search(r'href="(/validation/[0-9A-Z]{26})"', version)
    assert report_link is not None
    assert "anomalies" in ok(pages, report_link.group(1))
    monitor = ok(pages, f"/monitors/{filled.monitor}")
    assert "Drift share" in monitor and monitor.count("<polyline") >= 2
    assert 'id="drift-table"' in monitor
    report = re.search(r'href="(/monitors/[^/]+/reports/[0-9A-Z]{26})"', monitor)
    assert report is not None
    assert 'id="features"' in ok(pages, report.group(1))
    assert "<svg" in ok(pages, report.group(1) + "/page")
    study = ok(pages, f"/tuning/{filled.study}")
    assert "Optimization history" in study and "Parameter importances" in study
    assert study.count('<td class="num">') >= 12


def test_every_link_resolves(pages: Pages, filled: Filled):
    start = ["/runs", "/models", "/datasets", "/monitors", "/tuning", "/triggers", "/lineage"]
    start.append("/lineage?node=model:churn:1")
    queue = list(start)
    seen = set(queue)
    kinds: dict[str, int] = {}
    checked = 0
    while queue and checked < 400:
        path = queue.pop(0)
        response = pages.get(path)
        checked += 1
        assert response.status_code < 400, (path, response.status_code, response.text[:300])
        if not response.headers.get("content-type", "").startswith("text/html"):
            continue
        for href in links(response.text):
            target = urljoin(path, href.replace("&amp;", "&"))
            parts = urlsplit(target)
            if parts.netloc or parts.path.startswith("/api/"):
                continue
            key = parts.path + (f"?{parts.query}" if parts.query else "")
            # A few pages of each kind (ids and query values stripped) are enough.
            kind = (
                re.sub(r"[0-9A-Z]{26}", "ID", parts.path)
                + "?"
                + ",".join(sorted(re.findall(r"(\w+)=", parts.query)))
            )
            if key not in seen and kinds.get(kind, 0) < 3:
                kinds[kind] = kinds.get(kind, 0) + 1
                seen.add(key)
                queue.append(key)
    assert checked > 30


def test_user_text_is_escaped(ui_settings: Any, filled: Filled):
    from conveyor.stores.metadata import open_metadata_store

    store = open_metadata_store(ui_settings.db_url)
    store.set_tags(filled.runs["train2"], {"note": "<script>alert(1)</script>"})
    pages = Pages_for(ui_settings)
    html = ok(pages, f"/runs/{filled.runs['train2']}")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def Pages_for(settings: Any) -> Pages:
    from tests.unit.ui.conftest import make_pages

    return make_pages(settings)


def test_live_status_json(pages: Pages, filled: Filled):
    ids = [filled.runs["failed"], filled.runs["train0"], "NOSUCH"]
    response = pages.get("/runs/status.json?ids=" + ",".join(ids))
    assert response.status_code == 200
    assert response.json() == {
        "statuses": {filled.runs["failed"]: "failed", filled.runs["train0"]: "completed"}
    }


def test_runs_page_weight(pages: Pages):
    response = pages.get("/runs?limit=500")
    assert len(response.content) < 300_000


class Counter:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.count = 0

    def __enter__(self) -> Counter:
        sa.event.listen(self.engine, "before_cursor_execute", self._hit)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._hit)

    def _hit(self, *args: object) -> None:
        self.count += 1


def queries(pages: Pages, engine: sa.Engine, path: str) -> int:
    with Counter(engine) as counter:
        ok(pages, path)
    return counter.count


def test_queries_per_page_do_not_grow_with_rows(pages: Pages, filled: Filled, ui_settings: Any):
    from conveyor.stores.metadata import open_metadata_store

    engine = open_metadata_store(ui_settings.db_url).engine
    assert queries(pages, engine, "/runs?limit=2") == queries(pages, engine, "/runs?limit=12")
    small = queries(pages, engine, f"/runs/{filled.runs['fan3']}")
    large = queries(pages, engine, f"/runs/{filled.runs['fan40']}")
    assert small == large
    assert small <= 25
    ids = [filled.runs[k] for k in ("train0", "train1", "train2", "cached")]
    two = queries(pages, engine, "/compare?runs=" + ",".join(ids[:2]))
    four = queries(pages, engine, "/compare?runs=" + ",".join(ids))
    assert two == four


def test_step_page_says_what_changed_in_the_cache_key(
    pages: Pages, filled: Filled, ui_settings: Any
):
    from conveyor.stores.metadata import open_metadata_store

    store = open_metadata_store(ui_settings.db_url)
    fit = next(s for s in store.step_runs(filled.runs["train1"]) if s["name"] == "fit")
    html = ok(pages, f"/runs/{filled.runs['train1']}/steps/{fit['id']}")
    assert 'id="cache-components"' in html
    changes = html[html.index('id="cache-changes"') :]
    changes = changes[: changes.index("</table>")]
    assert "alpha" in changes and "0.0001" in changes and "0.001" in changes
    assert "epochs" not in changes  # unchanged components are not listed
