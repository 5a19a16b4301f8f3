"""The web UI in a real browser against a real `conveyor ui` process and a store filled by
real runs: every page kind renders, every link resolves, filters work, running runs update
live, and promote moves the alias (a running `conveyor serve` then reloads it)."""

from __future__ import annotations

import re
import textwrap
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.integration.ui.conftest import (
    CONVEYOR,
    Site,
    free_port,
    output_of,
    start,
    stop,
    wait_for,
)

# Building the store (the demo's closed loop plus the fill) takes a minute or more on a
# loaded machine; it happens once, in the first test's setup.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(1800)]


def page_kinds(site: Site) -> dict[str, str]:
    """One URL per page kind, found through the REST API (ids come from the store)."""
    from conveyor.api.queries import monitors, runs
    from conveyor.stores.metadata import open_metadata_store

    store = open_metadata_store(site.settings.db_url)
    f = site.filled
    fit = next(s for s in store.step_runs(f.runs["train1"]) if s["name"] == "fit")
    artifact = store.artifacts_of_run(f.runs["train0"])[0]["id"]
    report = monitors.list_reports(store, "churn-prod", limit=1).items[0].id
    retrained = runs.list_runs(store, pipeline="retrain", trigger="drift", limit=1).items[0]
    return {
        "runs": "/runs",
        "run": f"/runs/{f.runs['train0']}",
        "run-cached": f"/runs/{f.runs['cached']}",
        "step": f"/runs/{f.runs['train1']}/steps/{fit['id']}",
        "compare": f"/compare?runs={f.runs['train0']},{f.runs['train1']},{f.runs['train2']}",
        "artifact": f"/artifacts/{artifact}",
        "lineage": "/lineage?node=model:churn:1&direction=both",
        "datasets": "/datasets",
        "dataset": "/datasets/customers",
        "dataset-version": "/datasets/customers/2",
        "models": "/models",
        "model": "/models/churn",
        "model-card": "/models/churn/1",
        "monitors": "/monitors",
        "monitor": "/monitors/churn-prod",
        "report": f"/monitors/churn-prod/reports/{report}",
        "triggers": "/triggers",
        "studies": "/tuning",
        "study": f"/tuning/{f.study}",
        "run-retrain": f"/runs/{retrained.id}",
    }


def test_every_page_kind_renders(site: Site, page: Any):
    for kind, path in page_kinds(site).items():
        response = page.goto(site.url + path)
        assert response is not None and response.status == 200, (kind, path)
        assert page.locator("h1").first.is_visible(), kind
        assert page.locator("header.top a.brand").is_visible()
    # The demo's drift report fired the retraining trigger: the monitor page links the
    # event to the run it started.
    page.goto(site.url + "/monitors/churn-prod")
    started = page.locator("table.events a[href^='/runs/']")
    assert started.count() >= 1
    started.first.click()
    page.wait_for_url(re.compile(r"/runs/[0-9A-Z]{26}$"))
    assert "drift" in page.locator("dl.facts").inner_text()
    assert page.errors == []


def test_runs_page_is_small(site: Site, page: Any):
    response = page.goto(site.url + "/runs?limit=50")
    assert response is not None
    assert len(response.body()) < 300_000


def test_every_link_resolves(site: Site, page: Any):
    """Crawl from every page kind: each same-site link answers below 400."""
    queue = list(page_kinds(site).values())
    seen = set(queue)
    kinds: dict[str, int] = {}
    visited = 0
    while queue and visited < 150:
        path = queue.pop(0)
        response = page.goto(site.url + path)
        visited += 1
        assert response is not None and response.status < 400, (path, response and response.status)
        if "text/html" not in (response.headers.get("content-type") or ""):
            continue
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
        for href in hrefs:
            target = urlsplit(urljoin(site.url + path, href))
            if target.netloc != urlsplit(site.url).netloc:
                continue
            key = target.path + (f"?{target.query}" if target.query else "")
            if key in seen:
                continue
            seen.add(key)
            kind = (
                re.sub(r"[0-9A-Z]{26}", "ID", target.path)
                + "?"
                + ",".join(sorted(re.findall(r"(\w+)=", target.query)))
            )
            if kinds.get(kind, 0) >= 2 or target.path.startswith("/api/"):
                # Enough pages of this kind were rendered (or it is an API download);
                # the link must still resolve.
                status = page.request.get(site.url + key).status
                assert status < 400, (path, key, status)
                continue
            kinds[kind] = kinds.get(kind, 0) + 1
            queue.append(key)
    assert visited > 40
    assert page.errors == []


def row_pipelines(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#runs tbody tr[data-run-id] td:nth-child(3)", "els => els.map(e => e.innerText.trim())"
    )


def test_filters_search_sort_and_compare(site: Site, page: Any):
    page.goto(site.url + "/runs")
    page.select_option("select[name=pipeline]", "train")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"pipeline=train"))
    assert set(row_pipelines(page)) == {"train"}
    assert len(row_pipelines(page)) == 4

    page.select_option("select[name=status]", "failed")
    page.select_option("select[name=pipeline]", "")
    page.click("#filters button[type=submit]")
    page.wait_for_url(re.compile(r"status=failed"))
    statuses = page.eval_on_selector_all(
        "#runs tbody .run-status", "els => els.map(e => e.innerText.trim())"
    )
    assert statuses and set(statuses) == {"failed"}

    page.goto(site.url + "/runs")
    page.fill("input[name=q]", "fanou")
    page.press("input[name=q]", "Enter")
    page.wait_for_url(re.compile(r"q=fanou"))
    assert set(row_pipelines(page)) == {"fanout"}

    page.goto(site.url + "/runs?pipeline=train")
    page.click("#runs thead a:text-is('accuracy')")
    page.wait_for_url(re.compile(r"sort=-metric%3Aaccuracy"))
    column = page.eval_on_selector_all(
        "#runs thead th", "els => els.map(e => e.innerText.trim())"
    ).index("accuracy ▼")
    values = page.eval_on_selector_all(
        f"#runs tbody tr td:nth-child({column + 1})", "els => els.map(e => e.innerText.trim())"
    )
    numbers = [float(v) for v in values if re.fullmatch(r"[-+.\de]+", v)]
    assert len(numbers) == 3 and numbers == sorted(numbers, reverse=True)

    # A parameter header sorts too; a second click reverses the order.
    page.click("#runs thead th.param a:text-is('alpha')")
    page.wait_for_url(re.compile(r"sort=-param%3Aalpha"))

    def alphas(header: str) -> list[float]:
        heads = page.eval_on_selector_all(
            "#runs thead th", "els => els.map(e => e.innerText.trim())"
        )
        cells = page.eval_on_selector_all(
            f"#runs tbody tr td:nth-child({heads.index(header) + 1})",
            "els => els.map(e => e.innerText.trim())",
        )
        return [float(v) for v in cells]

    down = alphas("alpha ▼")
    assert len(down) == 4 and down == sorted(down, reverse=True)
    page.click("#runs thead th.param a:text-is('alpha ▼')")
    page.wait_for_url(re.compile(r"sort=param%3Aalpha"))
    assert alphas("alpha ▲") == sorted(down)

    boxes = page.locator("#runs tbody input[type=checkbox]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click("#runs thead button")
    page.wait_for_url(re.compile(r"/compare\?"))
    assert page.locator("#compare thead th").count() == 3
    assert page.locator("#compare tr.param.differs th:text-is('alpha')").count() == 1


WAITER = textwrap.dedent(
    """
    import time
    from pathlib import Path

    from conveyor import pipeline, step


    @step(cache=False)
    def wait_for(path: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while not Path(path).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(path)
            time.sleep(0.05)
        return Path(path).read_text()


    @pipeline
    def waiting(path: str) -> str:
        return wait_for(path)
    """
)


def test_running_runs_update_live(site: Site, page: Any, tmp_path: Any):
    from conveyor.api.queries import runs
    from conveyor.stores.metadata import open_metadata_store

    script = site.root / "waiter.py"
    script.write_text(WAITER)
    release = tmp_path / "go"
    process = start(
        [CONVEYOR, "run", "waiter.py:waiting", "-p", f"path={release}", "-q"], site.root
    )
    try:
        store = open_metadata_store(site.settings.db_url)
        deadline = time.monotonic() + 60
        while True:
            found = runs.list_runs(store, pipeline="waiting", status="running", limit=1).items
            if found:
                break
            assert process.poll() is None, output_of(process)
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.1)
        run_id = found[0].id
        page.goto(site.url + "/runs?pipeline=waiting")
        cell = page.locator(f"tr[data-run-id='{run_id}'] .run-status")
        assert cell.inner_text() == "running"
        release.write_text("done")
        # The page's script polls the status; no reload happens on this page.
        page.wait_for_function(
            f"document.querySelector(\"tr[data-run-id='{run_id}'] .run-status\")"
            ".textContent === 'completed'",
            timeout=60_000,
        )
        assert process.wait(60) == 0, output_of(process)
    finally:
        stop(process)
    assert page.errors == []


def serving_version(url: str) -> str:
    return str(httpx.get(url + "/readyz", timeout=5).json()["version"])


def test_promote_moves_the_alias_and_serve_reloads(site: Site, page: Any):
    from conveyor.registry.registry import Registry
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.metadata import open_metadata_store

    registry = Registry(
        open_metadata_store(site.settings.db_url), open_artifact_store(site.settings.artifact_url)
    )
    # The demo's first version was champion once; point a fresh alias at the second.
    registry.promote("churn", 2, "canary", reason="test setup", actor="test")
    port = free_port()
    serve = start(
        [
            CONVEYOR,
            "serve",
            "churn@canary",
            "--port",
            str(port),
            "--reload-interval",
            "0.2",
            "--no-log-predictions",
        ],
        site.root,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/readyz", serve)
        assert serving_version(url) == "2"
        page.goto(site.url + "/models/churn/1")
        form = page.locator("form.promote")
        form.locator("input[name=alias]").fill("canary")
        form.locator("input[name=reason]").fill("browser test")
        form.locator("button[type=submit]").click()
        page.wait_for_url(re.compile(r"/models/churn/1\?ok="))
        assert "churn@canary now points at version 1" in page.locator(".flash").inner_text()
        assert registry.resolve("churn@canary").version == 1
        page.goto(site.url + "/models/churn")
        first = page.locator("#audit tbody tr, #audit tr:has(td)").first
        assert "canary" in first.inner_text() and "browser test" in first.inner_text()
        deadline = time.monotonic() + 30
        while serving_version(url) != "1":
            assert time.monotonic() < deadline, "serve did not reload the moved alias"
            time.sleep(0.1)
    finally:
        stop(serve)
    assert page.errors == []
