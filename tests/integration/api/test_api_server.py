"""The REST API and the Python client against a real `conveyor ui` process, on a store
filled by real pipeline runs (tests/ui_store.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess

import httpx
import numpy as np
import pandas as pd
import pytest

from conveyor.client import Client, ServerError
from conveyor.exceptions import NotFoundError
from tests.integration.api.conftest import (
    ADMIN_TOKEN,
    CONVEYOR,
    VIEWER_TOKEN,
    Project,
    Server,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def viewer(server: Server) -> Client:
    with Client(server.url, token=VIEWER_TOKEN) as client:
        yield client


@pytest.fixture(scope="module")
def admin(server: Server) -> Client:
    with Client(server.url, token=ADMIN_TOKEN) as client:
        yield client


def test_runs_filter_by_pipeline_status_and_tag(viewer: Client, project: Project) -> None:
    runs = project.filled.runs
    every = list(viewer.iter_runs(page_size=3))
    assert sorted(r["id"] for r in every) == sorted(runs.values())
    created = [r["created_at"] for r in every]
    assert created == sorted(created, reverse=True)
    trained = viewer.runs(pipeline="train", status="completed")
    assert {r["id"] for r in trained} == {runs[k] for k in ("train0", "train1", "train2", "cached")}
    failed = viewer.runs(status="failed")
    assert {r["id"] for r in failed} == {runs["failed"], runs["checks"]}
    swept = viewer.runs(tags={"sweep": "a"})
    assert {r["id"] for r in swept} == {runs["train0"], runs["train1"], runs["train2"]}
    assert len(viewer.runs(trigger="none")) == len(runs)
    assert viewer.runs(search=runs["failed"][:10])[0]["id"] == runs["failed"]


def test_pages_walk_forward_and_back(viewer: Client) -> None:
    first = viewer.runs(3)
    second = viewer.runs(3, before=first.next_cursor)
    assert first.prev_cursor is None and second.prev_cursor is not None
    assert not {r["id"] for r in first} & {r["id"] for r in second}
    back = viewer.runs(3, after=second.prev_cursor)
    assert [r["id"] for r in back] == [r["id"] for r in first]


def test_leaderboard_sorted_by_a_metric(viewer: Client, project: Project) -> None:
    page = viewer.runs(50, sort="-metric:accuracy", metrics=["accuracy"])
    values = [r["metrics"].get("accuracy") for r in page]
    scored = [v for v in values if v is not None]
    # The runs that computed it; a run whose score step hit the cache logged nothing.
    runs = project.filled.runs
    assert {r["id"] for r in page if "accuracy" in r["metrics"]} == {
        runs["train0"],
        runs["train1"],
        runs["train2"],
    }
    assert values[: len(scored)] == sorted(scored, reverse=True)
    assert all(v is None for v in values[len(scored) :])


def test_run_steps_graph_metrics_and_cache_reasons(viewer: Client, project: Project) -> None:
    runs = project.filled.runs
    detail = viewer.run(runs["train0"][:10])
    assert detail["run"]["id"] == runs["train0"]
    assert detail["step_counts"] == {"completed": 4}
    graph = viewer.graph(runs["train0"])
    names = {s["id"]: s["name"] for s in graph["steps"]}
    flows = {(names[e["source"]], names[e["target"]], e["name"]) for e in graph["edges"]}
    assert flows == {
        ("make_frame", "split", "frame"),
        ("split", "fit", "train"),
        ("split", "score", "test"),
        ("fit", "score", "model"),
    }
    loss = viewer.metrics(runs["train0"])["train.loss"]
    assert [p["step"] for p in loss] == list(range(6))
    cached = viewer.steps(runs["cached"]).items
    assert cached and all(s["cache_hit"] for s in cached)
    reason = viewer.step(cached[0]["id"])["cache_reason"]
    assert reason.startswith("Cache hit") and cached[0]["cache_source"] in reason
    fresh = viewer.step(viewer.steps(runs["train1"]).items[2]["id"])
    assert fresh["step"]["name"] == "fit"
    assert "cache key differs" in fresh["cache_reason"]
    assert [a["name"] for a in fresh["inputs"]] == ["train"]
    failed = viewer.steps(runs["failed"], status="failed").items
    assert [s["name"] for s in failed] == ["explode"]
    assert "refusing" in viewer.step(failed[0]["id"])["error"]
    assert isinstance(viewer.logs(failed[0]["id"]), str)


def test_compare_shows_what_differs(viewer: Client, project: Project) -> None:
    runs = project.filled.runs
    ids = [runs["train0"], runs["train1"], runs["cached"]]
    comparison = viewer.compare(ids)
    assert [r["id"] for r in comparison["runs"]] == ids
    assert comparison["differing_params"] == ["alpha"]
    assert "fit" in comparison["differing_steps"]
    assert "make_frame" not in comparison["differing_steps"]
    assert set(comparison["cache_keys"]["fit"]) == set(ids)


def test_compare_accepts_both_run_list_forms_in_api_and_page(
    server: Server, project: Project
) -> None:
    runs = project.filled.runs
    ids = [runs["train0"], runs["train1"]]
    headers = {"Authorization": f"Bearer {VIEWER_TOKEN}"}
    forms = [{"runs": ",".join(ids)}, {"runs": ids}, {"run": ids}]
    for params in forms:
        api = httpx.get(f"{server.url}/api/v1/compare", params=params, headers=headers)
        assert api.status_code == 200, (params, api.text)
        assert [r["id"] for r in api.json()["runs"]] == ids
        page = httpx.get(f"{server.url}/compare", params=params, headers=headers)
        assert page.status_code == 200, (params, page.text[:300])
        assert all(i in page.text for i in ids)
    missing = httpx.get(f"{server.url}/api/v1/compare", headers=headers)
    assert missing.status_code == 400
    assert "Compare needs" in missing.json()["detail"]


def test_runs_sorted_by_a_param(viewer: Client, project: Project) -> None:
    rows = viewer.runs(pipeline="train", sort="-param:alpha").items
    alphas = [r["params"]["alpha"] for r in rows]
    assert len(alphas) == 4
    assert alphas == sorted(alphas, reverse=True)


def test_table_preview_and_verified_download(viewer: Client, project: Project) -> None:
    artifacts = viewer.artifacts(run_id=project.filled.runs["train0"], limit=100)
    train = next(a for a in artifacts if a["name"] == "train")
    preview = viewer.preview(train["id"], rows=5)
    assert preview["kind"] == "table"
    assert len(preview["rows"]) == 5
    assert preview["total_rows"] == 600
    assert list(preview["schema"]) == preview["columns"]
    assert preview["schema"]["tenure_months"] == "int64"
    data = viewer.download(train["id"])
    assert hashlib.sha256(data).hexdigest() == train["content_hash"]
    with pytest.raises(NotFoundError, match="No artifact"):
        viewer.artifact("NOSUCHARTIFACT")


def test_lineage_up_and_down_from_artifact_model_and_dataset(
    viewer: Client, project: Project
) -> None:
    artifacts = viewer.artifacts(run_id=project.filled.runs["train0"], limit=100)
    train = next(a for a in artifacts if a["name"] == "train")
    down = viewer.lineage(f"artifact:{train['id']}", direction="down")
    assert {n["label"] for n in down["nodes"] if n["kind"] == "step"} == {"fit", "score"}
    up = viewer.lineage(f"artifact:{train['id']}", direction="up")
    assert {n["label"] for n in up["nodes"] if n["kind"] == "step"} == {"split", "make_frame"}
    model = viewer.lineage("model:churn:1")
    kinds = {n["kind"] for n in model["nodes"]}
    assert {"model", "step", "artifact", "monitor"} <= kinds
    assert any(e["target"] == "model:churn:1" for e in model["edges"])
    assert any(
        e["source"] == "model:churn:1" and e["target"] == "monitor:churn-watch"
        for e in model["edges"]
    )
    dataset = viewer.lineage("dataset:customers:2", direction="down")
    assert {(n["kind"], n["label"]) for n in dataset["nodes"]} >= {
        ("dataset", "customers@2"),
        ("step", "dataset"),
        ("artifact", "output"),
    }
    assert {
        "source": "dataset:customers:2",
        "target": next(n["id"] for n in dataset["nodes"] if n["kind"] == "step"),
        "label": "read",
    } in dataset["edges"]


def test_lineage_from_a_prediction_request_id(viewer: Client, project: Project) -> None:
    from conveyor.serving.predlog import PredictionLogger
    from conveyor.stores.artifacts import open_artifact_store

    logger = PredictionLogger(open_artifact_store(project.settings.artifact_url))
    logger.start()
    frame = pd.DataFrame({"tenure_months": [3, 40], "age": [30, 50]})
    logger.submit(
        "churn",
        "1",
        frame=frame,
        preds=np.array([0, 1]),
        proba=None,
        requests=[("req-lineage-1", 2)],
    )
    logger.close()
    graph = viewer.lineage("request:req-lineage-1", direction="up")
    assert graph["root"] == "request:req-lineage-1"
    assert {"source": "model:churn:1", "target": "request:req-lineage-1", "label": "answered"} in (
        graph["edges"]
    )
    assert any(n["kind"] == "step" for n in graph["nodes"])
    with pytest.raises(NotFoundError, match="No prediction with request id"):
        viewer.lineage("request:never-sent")


def test_datasets_versions_profile_and_validation(viewer: Client) -> None:
    datasets = viewer.datasets()
    assert [(d["name"], d["latest_version"], d["versions"]) for d in datasets] == [
        ("customers", 2, 2)
    ]
    assert [v["version"] for v in viewer.dataset_versions("customers")] == [2, 1]
    version = viewer.dataset_version("customers", 2)
    assert version["read_by"]
    assert [r["ok"] for r in version["reports"]] == [False]
    profile = viewer.profile("customers", 2)
    assert profile["row_count"] == 800
    assert "tenure_months" in profile["columns"]


def test_models_versions_audit_and_gates(viewer: Client, server: Server) -> None:
    models = viewer.models()
    assert [(m["name"], m["aliases"]) for m in models] == [("churn", {"production": 1})]
    versions = viewer.model_versions("churn")
    assert [(v["version"], v["gate_passed"]) for v in versions] == [(2, False), (1, True)]
    card = viewer.model_version("churn", "production")
    assert card["version"]["version"] == 1
    assert card["signature"]
    actions = [e["action"] for e in viewer.audit_log("churn")]
    assert "not_promoted" in actions and "register" in actions
    gates = httpx.get(
        f"{server.url}/api/v1/gate-decisions",
        params={"model": "churn"},
        headers={"Authorization": f"Bearer {VIEWER_TOKEN}"},
    ).json()["items"]
    assert [g["passed"] for g in gates] == [False, True]


def test_only_admins_promote_and_the_audit_log_names_them(viewer: Client, admin: Client) -> None:
    with pytest.raises(ServerError, match="needs an admin token") as refused:
        viewer.promote("churn", 2, "staging")
    assert refused.value.status_code == 403
    assert "staging" not in viewer.models()[0]["aliases"]
    moved = admin.promote("churn", 2, "staging", reason="shadow test")
    assert moved["moved"] and moved["event"]["actor"] == "alice"
    assert viewer.models()[0]["aliases"] == {"production": 1, "staging": 2}
    entry = viewer.audit_log("churn")[0]
    assert (entry["action"], entry["alias"], entry["actor"], entry["reason"]) == (
        "promote",
        "staging",
        "alice",
        "shadow test",
    )
    with pytest.raises(ServerError, match="no previous holder"):
        admin.rollback("churn", "staging")


def test_monitoring_tuning_and_triggers(viewer: Client) -> None:
    monitors = viewer.monitors()
    assert [(m["name"], m["reports"]) for m in monitors] == [("churn-watch", 3)]
    reports = viewer.reports("churn-watch")
    ends = [r["window_end"] for r in reports]
    assert ends == sorted(ends, reverse=True)
    assert reports[0]["dataset_drift"]
    assert viewer.report(reports[0]["id"])["report"]["drift"]["features"]
    studies = viewer.studies()
    assert [(s["name"], s["trials"]) for s in studies] == [("quadratic", 12)]
    trials = viewer.trials("quadratic", limit=5)
    assert [t["number"] for t in trials] == [0, 1, 2, 3, 4]
    rest = viewer.trials("quadratic", limit=20, before=trials.next_cursor)
    assert [t["number"] for t in rest] == list(range(5, 12))
    events = viewer.trigger_events()
    assert events.items == [] and events.next_cursor is None


def test_requests_without_a_valid_token_get_401_json(server: Server) -> None:
    response = httpx.get(f"{server.url}/api/v1/runs")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("Missing or unknown token")
    with pytest.raises(ServerError, match="401"), Client(server.url, token="x" * 20) as client:
        client.runs()
    assert httpx.get(f"{server.url}/api/v1/health").json() == {"status": "ok"}


def test_openapi_documents_every_resource(server: Server) -> None:
    document = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    for path in (
        "/api/v1/runs",
        "/api/v1/runs/{run_id}/steps",
        "/api/v1/step-runs/{step_run_id}/logs",
        "/api/v1/artifacts/{artifact_id}/preview",
        "/api/v1/lineage",
        "/api/v1/datasets/{name}/versions/{version}/profile",
        "/api/v1/models/{name}/promote",
        "/api/v1/monitors/{name}/series",
        "/api/v1/tuning/studies/{name}/trials",
        "/api/v1/trigger-events",
    ):
        assert path in document["paths"], path
    runs = document["paths"]["/api/v1/runs"]["get"]["responses"]["200"]
    schema = runs["content"]["application/json"]["schema"]
    assert "next_cursor" in schema["properties"]


def _cli(
    server: Server, *args: str, token: str | None, tmp_path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    # A database the CLI cannot reach: --server commands must not touch it.
    env["CONVEYOR_DB_URL"] = "postgresql+psycopg://nobody@127.0.0.1:9/none"
    if token:
        env["CONVEYOR_TOKEN"] = token
    return subprocess.run(
        [CONVEYOR, "--server", server.url, *args],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_against_the_server_needs_no_database(
    server: Server, project: Project, tmp_path
) -> None:
    import json

    listed = _cli(server, "runs", "list", "--json", token=VIEWER_TOKEN, tmp_path=tmp_path)
    assert listed.returncode == 0, listed.stderr
    ids = [r["id"] for r in json.loads(listed.stdout)["items"]]
    assert sorted(ids) == sorted(project.filled.runs.values())
    failed = _cli(
        server,
        "runs",
        "list",
        "--status",
        "failed",
        "--json",
        token=VIEWER_TOKEN,
        tmp_path=tmp_path,
    )
    assert {r["id"] for r in json.loads(failed.stdout)["items"]} == {
        project.filled.runs["failed"],
        project.filled.runs["checks"],
    }
    by_alpha = _cli(
        server,
        "runs",
        "list",
        "--pipeline",
        "train",
        "--sort",
        "-param:alpha",
        "--json",
        token=VIEWER_TOKEN,
        tmp_path=tmp_path,
    )
    assert by_alpha.returncode == 0, by_alpha.stderr
    alphas = [r["params"]["alpha"] for r in json.loads(by_alpha.stdout)["items"]]
    assert len(alphas) == 4 and alphas == sorted(alphas, reverse=True)
    shown = _cli(
        server, "runs", "show", project.filled.runs["train0"], token=VIEWER_TOKEN, tmp_path=tmp_path
    )
    assert shown.returncode == 0, shown.stderr
    assert "train" in shown.stdout and "make_frame" in shown.stdout
    models = _cli(server, "models", "list", token=VIEWER_TOKEN, tmp_path=tmp_path)
    assert models.returncode == 0, models.stderr
    assert "churn" in models.stdout and "production->1" in models.stdout


def test_cli_server_errors_are_one_line(server: Server, tmp_path) -> None:
    anonymous = _cli(server, "runs", "list", token=None, tmp_path=tmp_path)
    assert anonymous.returncode == 1
    assert "401" in anonymous.stderr and "Traceback" not in anonymous.stderr
    missing = _cli(server, "runs", "show", "NOSUCHRUN", token=VIEWER_TOKEN, tmp_path=tmp_path)
    assert missing.returncode == 1
    assert "No run with id" in missing.stderr
    local_only = _cli(server, "datasets", "list", token=VIEWER_TOKEN, tmp_path=tmp_path)
    assert local_only.returncode == 1
    assert "--server works with runs list, runs show, models list" in local_only.stderr


def test_ui_refuses_a_non_loopback_host_without_tokens(project: Project) -> None:
    result = subprocess.run(
        [CONVEYOR, *project.store_args(), "ui", "--host", "0.0.0.0", "--port", "9"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Refusing to bind '0.0.0.0'")
    assert "--token-file" in lines[0]
