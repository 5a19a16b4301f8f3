"""The ASGI app in process: endpoints, validation errors, auth, batching, hot swap."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from conveyor.serving.app import ServeOptions, create_app
from conveyor.serving.batching import BatchPolicy
from conveyor.serving.servable import FixedSource, Servable, servable_from_model
from conveyor.training.model import Model

from .conftest import client_for, records, run


def _app(model: Model, **options: Any) -> Any:
    options.setdefault("reload_interval", None)
    return create_app(FixedSource(model, "cancer"), ServeOptions(**options))


def test_predict_records_and_columns_match_the_model(lr_model: Model, cancer: Any) -> None:
    X, _ = cancer
    rows = records(X, 3)

    async def main() -> None:
        async with client_for(_app(lr_model)) as c:
            r = await c.post("/predict", json={"records": rows})
            assert r.status_code == 200
            body = r.json()
            assert body["model"] == "cancer" and body["version"] == "1"
            assert body["predictions"] == lr_model.predict(X.iloc[:3]).tolist()
            assert body["classes"] == [0, 1]
            expected = lr_model.predict_proba(X.iloc[:3])
            assert np.allclose(body["probabilities"], expected)
            assert r.headers["x-request-id"] == body["request_id"]
            cols = {k: X[k].iloc[:3].tolist() for k in X.columns}
            r2 = await c.post("/predict", json={"columns": cols})
            assert r2.json()["predictions"] == body["predictions"]

    run(main())


def test_mixed_dtypes_nulls_and_categories(mixed_model: Model, mixed_frame: Any) -> None:
    frame, _ = mixed_frame
    rows = records(frame, 14)
    assert any(r["smoothness"] is None for r in rows)

    async def main() -> None:
        async with client_for(_app(mixed_model)) as c:
            r = await c.post("/predict", json={"records": rows})
            assert r.status_code == 200, r.text
            assert r.json()["predictions"] == mixed_model.predict(frame.iloc[:14]).tolist()

    run(main())


@pytest.mark.parametrize(
    ("mutate", "status", "problem", "field"),
    [
        (lambda r: r.pop("radius"), 422, "missing", "records[1].radius"),
        (lambda r: r.update(radius="big"), 422, "wrong_type", "records[1].radius"),
        (lambda r: r.update(concave=2.5), 422, "wrong_type", "records[1].concave"),
        (lambda r: r.update(large="yes"), 422, "wrong_type", "records[1].large"),
        (lambda r: r.update(band="huge"), 422, "unseen_category", "records[1].band"),
        (lambda r: r.update(radius=None), 422, "null", "records[1].radius"),
    ],
)
def test_invalid_records_name_the_field(
    mixed_model: Model, mixed_frame: Any, mutate: Any, status: int, problem: str, field: str
) -> None:
    frame, _ = mixed_frame
    rows = records(frame, 2)
    mutate(rows[1])

    async def main() -> None:
        async with client_for(_app(mixed_model)) as c:
            r = await c.post("/predict", json={"records": rows})
            assert r.status_code == status
            body = r.json()
            assert body["problem"] == problem
            assert body["field"] == field
            assert field.rsplit(".", maxsplit=1)[-1] in body["error"]

    run(main())


def test_unseen_category_can_pass_to_the_model(mixed_model: Model, mixed_frame: Any) -> None:
    frame, _ = mixed_frame
    rows = records(frame, 1)
    rows[0]["band"] = "huge"

    async def main() -> None:
        async with client_for(_app(mixed_model, unseen="pass")) as c:
            r = await c.post("/predict", json={"records": rows})
            assert r.status_code == 200, r.text

    run(main())


def test_malformed_oversized_and_unknown_requests(lr_model: Model, cancer: Any) -> None:
    X, _ = cancer

    async def main() -> None:
        async with client_for(_app(lr_model, max_body_bytes=4096)) as c:
            r = await c.post("/predict", content=b'{"records": [')
            assert r.status_code == 400 and r.json()["problem"] == "malformed_json"
            r = await c.post("/predict", content=b"\xff\xfe")
            assert r.status_code == 400
            r = await c.post("/predict", json={"records": records(X, 20)})
            assert r.status_code == 413 and r.json()["problem"] == "too_large"
            r = await c.post("/predict", json=[1, 2])
            assert r.status_code == 422 and r.json()["field"] == "records"
            r = await c.post("/predict", json={"records": []})
            assert r.status_code == 422 and r.json()["problem"] == "bad_shape"
            r = await c.post("/predict", json={"columns": {"mean radius": [1.0]}})
            assert r.status_code == 422 and r.json()["problem"] == "missing"
            r = await c.get("/nope")
            assert r.status_code == 404
            r = await c.get("/predict")
            assert r.status_code == 405
            # the server is still fine
            r = await c.post("/predict", json={"records": records(X, 1)})
            assert r.status_code == 200

    run(main())


def test_open_inference_protocol(lr_model: Model, cancer: Any) -> None:
    X, _ = cancer
    names = list(X.columns)

    async def main() -> None:
        async with client_for(_app(lr_model)) as c:
            assert (await c.get("/v2")).json()["name"] == "conveyor"
            assert (await c.get("/v2/health/live")).status_code == 200
            assert (await c.get("/v2/health/ready")).status_code == 200
            meta = (await c.get("/v2/models/cancer")).json()
            assert meta["versions"] == ["1"]
            assert [i["name"] for i in meta["inputs"]] == names
            assert (await c.get("/v2/models/cancer/versions/1/ready")).status_code == 200
            assert (await c.get("/v2/models/other")).status_code == 404
            # one tensor per column
            per_column = {
                "id": "abc",
                "inputs": [
                    {"name": n, "shape": [2], "datatype": "FP64", "data": X[n].iloc[:2].tolist()}
                    for n in names
                ],
            }
            r = await c.post("/v2/models/cancer/infer", json=per_column)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["id"] == "abc" and body["model_version"] == "1"
            outputs = {o["name"]: o for o in body["outputs"]}
            assert outputs["predict"]["data"] == lr_model.predict(X.iloc[:2]).tolist()
            assert outputs["predict_proba"]["shape"] == [2, 2]
            # one [n, k] tensor in signature order, nested rows
            matrix = {
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [3, len(names)],
                        "datatype": "FP64",
                        "data": X.iloc[:3].to_numpy().tolist(),
                    }
                ],
                "outputs": [{"name": "predict"}],
            }
            r = await c.post("/v2/models/cancer/versions/1/infer", json=matrix)
            assert r.status_code == 200, r.text
            assert [o["name"] for o in r.json()["outputs"]] == ["predict"]
            bad = dict(matrix)
            bad["inputs"] = [dict(matrix["inputs"][0], shape=[3, 4])]
            r = await c.post("/v2/models/cancer/infer", json=bad)
            assert r.status_code == 422 and r.json()["problem"] == "bad_shape"
            assert "error" in r.json()

    run(main())


def test_metrics_openapi_and_docs(lr_model: Model, cancer: Any) -> None:
    X, _ = cancer

    async def main() -> None:
        async with client_for(_app(lr_model)) as c:
            await c.post("/predict", json={"records": records(X, 2)})
            await c.post("/predict", json={"records": [{}]})
            text = (await c.get("/metrics")).text
            assert 'conveyor_serving_requests_total{endpoint="/predict",status="200"} 1.0' in text
            assert 'conveyor_serving_requests_total{endpoint="/predict",status="422"} 1.0' in text
            assert "conveyor_serving_request_duration_seconds_bucket" in text
            assert "conveyor_serving_batch_rows_sum 2.0" in text
            assert 'conveyor_serving_model_info{model="cancer",version="1"} 1.0' in text
            assert 'conveyor_serving_errors_total{kind="missing"} 1.0' in text
            assert "conveyor_serving_prediction_log_dropped_rows_total 0.0" in text
            doc = (await c.get("/openapi.json")).json()
            record = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
                "schema"
            ]["oneOf"][0]["properties"]["records"]["items"]
            assert record["required"] == list(X.columns)
            assert record["properties"]["mean radius"] == {"type": "number"}
            html = (await c.get("/docs")).text
            assert "mean radius" in html and "openapi.json" in html

    run(main())


def test_bearer_auth_everywhere_but_liveness(lr_model: Model, cancer: Any) -> None:
    X, _ = cancer

    async def main() -> None:
        async with client_for(_app(lr_model, token="s3cret-token")) as c:
            assert (await c.get("/healthz")).status_code == 200
            assert (await c.get("/v2/health/live")).status_code == 200
            for method, path in [
                ("GET", "/readyz"),
                ("GET", "/metrics"),
                ("POST", "/predict"),
                ("GET", "/v2/models/cancer"),
                ("GET", "/openapi.json"),
            ]:
                r = await c.request(method, path, json={"records": records(X, 1)})
                assert r.status_code == 401, path
                assert r.headers["www-authenticate"] == "Bearer"
                assert "s3cret" not in r.text
            wrong = {"Authorization": "Bearer nope"}
            r = await c.post("/predict", json={"records": records(X, 1)}, headers=wrong)
            assert r.status_code == 401
            good = {"Authorization": "Bearer s3cret-token"}
            r = await c.post("/predict", json={"records": records(X, 1)}, headers=good)
            assert r.status_code == 200
            assert (await c.get("/metrics", headers=good)).status_code == 200

    run(main())


class GatedSource:
    """A model source whose first load waits for a gate (a slow model download)."""

    def __init__(self, model: Model) -> None:
        self.name = "cancer"
        self.ref = "cancer@production"
        self.gate = threading.Event()
        self._model = model

    def current_version(self) -> str:
        return "1"

    def load(self, version: str) -> Servable:
        if not self.gate.wait(10):
            raise TimeoutError("gate never opened")
        return servable_from_model(self._model, self.name, version)


def test_requests_before_the_first_load_wait_for_it(lr_model: Model, cancer: Any) -> None:
    X, _ = cancer
    source = GatedSource(lr_model)
    app = create_app(source, ServeOptions(reload_interval=None))

    async def main() -> None:
        async with client_for(app, ready=False) as c:
            assert (await c.get("/healthz")).status_code == 200
            waiting = asyncio.ensure_future(c.post("/predict", json={"records": records(X, 1)}))
            r = await c.get("/readyz")
            assert r.status_code == 503 and r.json()["ready"] is False
            assert not waiting.done()
            source.gate.set()
            answer = await waiting
            assert answer.status_code == 200
            assert answer.json()["predictions"] == lr_model.predict(X.iloc[:1]).tolist()
            assert (await c.get("/readyz")).json() == {
                "ready": True,
                "model": "cancer",
                "version": "1",
            }

    run(main())


def test_not_ready_answers_503_after_the_load_wait(lr_model: Model, cancer: Any) -> None:
    X, _ = cancer
    source = GatedSource(lr_model)
    app = create_app(source, ServeOptions(reload_interval=None, load_wait=0))

    async def main() -> None:
        async with client_for(app, ready=False) as c:
            r = await c.post("/predict", json={"records": records(X, 1)})
            assert r.status_code == 503 and r.json()["problem"] == "not_ready"
            source.gate.set()
            await app.wait_ready(10)

    run(main())


class BrokenSource(GatedSource):
    def load(self, version: str) -> Servable:
        raise OSError("the model store is unreachable")


def test_a_failed_first_load_ends_the_wait_with_its_error(lr_model: Model, cancer: Any) -> None:
    X, _ = cancer
    app = create_app(BrokenSource(lr_model), ServeOptions(reload_interval=60, load_wait=120))

    async def main() -> None:
        async with client_for(app, ready=False) as c:
            r = await c.post("/predict", json={"records": records(X, 1)})
            assert r.status_code == 503
            assert "OSError: the model store is unreachable" in r.json()["error"]

    run(main())


def test_concurrent_requests_share_model_calls(lr_model: Model, cancer: Any) -> None:
    X, _ = cancer
    rows = records(X, 100)
    expected = lr_model.predict(X.iloc[:100]).tolist()
    app = _app(lr_model, batching=BatchPolicy(max_batch_rows=32, max_wait=0.005))

    async def main() -> None:
        async with client_for(app) as c:
            replies = await asyncio.gather(
                *[c.post("/predict", json={"records": [row]}) for row in rows]
            )
            assert [r.json()["predictions"][0] for r in replies] == expected
            batches = app.metrics.batch_rows.collect()[0]
            count = next(s.value for s in batches.samples if s.name.endswith("_count"))
            total = next(s.value for s in batches.samples if s.name.endswith("_sum"))
            assert total == 100
            assert count < 50  # grouped, and never more than 32 rows per call
            assert count >= 100 / 32

    run(main())


def test_batching_off_calls_the_model_per_request(lr_model: Model, cancer: Any) -> None:
    X, _ = cancer
    app = _app(lr_model, batching=BatchPolicy(enabled=False))

    async def main() -> None:
        async with client_for(app) as c:
            await asyncio.gather(
                *[c.post("/predict", json={"records": [row]}) for row in records(X, 10)]
            )
            count = next(
                s.value
                for s in app.metrics.batch_rows.collect()[0].samples
                if s.name.endswith("_count")
            )
            assert count == 10

    run(main())


def test_a_failing_request_does_not_fail_its_batch(mixed_model: Model, mixed_frame: Any) -> None:
    """A request the model itself rejects fails alone; batch-mates still get answers. A
    data error of the model (ValueError) is the request's (422), anything else is 500."""
    frame, _ = mixed_frame

    def picky(df: pd.DataFrame) -> Any:
        if (df["radius"] == -2).any():
            raise RuntimeError("model crashed")
        if (df["radius"] < 0).any():
            raise ValueError("negative radius")
        return base.predict_frame(df)

    base = servable_from_model(mixed_model, "cancer", "1")
    servable = Servable("cancer", "1", base.rules, picky, base.classes, "sklearn", mixed_model)
    app = create_app(
        FixedSource(servable, "cancer"),
        ServeOptions(reload_interval=None, batching=BatchPolicy(max_wait=0.01)),
    )
    rows = records(frame, 8)
    rows[3]["radius"] = -1.0
    rows[5]["radius"] = -2.0

    async def main() -> None:
        async with client_for(app) as c:
            replies = await asyncio.gather(
                *[c.post("/predict", json={"records": [row]}) for row in rows]
            )
            codes = [r.status_code for r in replies]
            assert codes == [200, 200, 200, 422, 200, 500, 200, 200]
            assert "negative radius" in replies[3].json()["error"]
            assert replies[3].json()["problem"] == "model_input"
            assert "model crashed" in replies[5].json()["error"]

    run(main())


def test_hot_swap_under_load_loses_no_request(
    lr_model: Model, lr_model_v2: Model, cancer: Any
) -> None:
    X, _ = cancer
    source = FixedSource(lr_model, "cancer", "1")
    app = create_app(source, ServeOptions(reload_interval=0.02))
    body = orjson.dumps({"records": records(X, 1)})

    async def main() -> None:
        async with client_for(app) as c:
            versions: list[str] = []
            stop = asyncio.Event()

            async def hammer() -> None:
                while not stop.is_set():
                    r = await c.post("/predict", content=body)
                    assert r.status_code == 200, r.text
                    versions.append(r.json()["version"])

            workers = [asyncio.create_task(hammer()) for _ in range(16)]
            while len(versions) < 200:
                await asyncio.sleep(0.01)
            source.replace(lr_model_v2, "2")
            async with asyncio.timeout(10):
                while app.servable is None or app.servable.version != "2":
                    await asyncio.sleep(0.01)
            seen = len(versions)
            while len(versions) < seen + 200:
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.gather(*workers)
            assert versions[0] == "1" and versions[-1] == "2"
            first_two = versions.index("2")
            # after the first answer from v2, v1 answers only requests already queued on it
            assert versions[first_two:].count("1") <= 16
            text = (await c.get("/metrics")).text
            assert 'conveyor_serving_model_info{model="cancer",version="1"} 0.0' in text
            assert "conveyor_serving_model_reloads_total 1.0" in text

    run(main())
