"""Shadow and canary releases in the real ASGI app, with the real prediction log."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from conveyor.config import Settings
from conveyor.exceptions import ServingError
from conveyor.serving.app import ServeOptions, create_app
from conveyor.serving.release import ReleasePolicy, bucket, parse_canary
from conveyor.serving.servable import FixedSource, Servable, servable_from_model
from conveyor.stores.artifacts import open_artifact_store
from conveyor.training.model import Model

from .conftest import client_for, records, run


def _release_app(champion: Model, challenger: Any, policy: ReleasePolicy, store: Any = None) -> Any:
    return create_app(
        FixedSource(champion, "cancer", "1"),
        ServeOptions(reload_interval=None, release=policy),
        log_store=store,
        challenger=challenger,
    )


def _segments(store: Any) -> pd.DataFrame:
    frames = [
        pq.read_table(io.BytesIO(store.read_file(path))).to_pandas()
        for path in store.list_files("predictions/")
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def test_shadow_scores_every_request_and_logs_both_under_one_id(
    lr_model: Model, lr_model_v2: Model, cancer: Any, settings: Settings
) -> None:
    X, _ = cancer
    store = open_artifact_store(settings.artifact_url)
    policy = ReleasePolicy(mode="shadow", challenger="cancer@challenger")
    app = _release_app(lr_model, FixedSource(lr_model_v2, "cancer", "2"), policy, store)

    async def main() -> list[str]:
        ids = []
        async with client_for(app) as c:
            await app._challenger.wait_ready(10)
            for i in range(12):
                r = await c.post("/predict", json={"records": records(X.iloc[i:], 2)})
                assert r.status_code == 200
                body = r.json()
                assert body["version"] == "1"  # the champion answers
                ids.append(body["request_id"])
            r = await c.post(
                "/v2/models/cancer/infer",
                json={
                    "id": "v2-req",
                    "inputs": [
                        {"name": k, "shape": [1], "datatype": "FP64", "data": [float(X[k][0])]}
                        for k in X.columns
                    ],
                },
            )
            assert r.status_code == 200 and r.json()["model_version"] == "1"
            ids.append("v2-req")
            await asyncio.gather(*app._shadow_tasks)
            metrics = (await c.get("/metrics")).text
        assert 'conveyor_serving_release_requests_total{lane="shadow",version="2"} 13.0' in metrics
        assert (
            'conveyor_serving_release_requests_total{lane="champion",version="1"} 13.0' in metrics
        )
        return ids

    ids = run(main())
    logged = _segments(store)
    by_version = logged.groupby("_model_version")["_request_id"].apply(set).to_dict()
    assert by_version["1"] == set(ids) == by_version["2"]
    # Same rows, both versions: the shadow's predictions are its own.
    one = logged[logged["_model_version"] == "1"].sort_values(["_request_id"]).reset_index()
    two = logged[logged["_model_version"] == "2"].sort_values(["_request_id"]).reset_index()
    assert len(one) == len(two) == 25


class _Slow:
    """A model source whose versions each take `delay` seconds per call (a slow challenger)."""

    def __init__(self, model: Model, delay: float, gate: threading.Event | None = None) -> None:
        self.name, self.ref = "cancer", "cancer:slow"
        self.model, self.delay, self.gate = model, delay, gate

    def current_version(self) -> str:
        return "2"

    def load(self, version: str) -> Servable:
        servable = servable_from_model(self.model, "cancer", version)
        original = servable.predict_frame
        gate = self.gate

        def slow(frame: Any) -> Any:
            if gate is not None:
                gate.wait(30)
            return original(frame)

        servable.predict_frame = slow  # type: ignore[method-assign]
        return servable


def test_shadow_never_delays_the_answer_and_drops_beyond_its_queue(
    lr_model: Model, cancer: Any
) -> None:
    X, _ = cancer
    gate = threading.Event()  # the shadow model is stuck until the test releases it
    policy = ReleasePolicy(mode="shadow", challenger="x", shadow_queue=2)
    app = _release_app(lr_model, _Slow(lr_model, 0, gate), policy)

    async def main() -> None:
        async with client_for(app) as c:
            await app._challenger.wait_ready(10)
            started = time.perf_counter()
            for i in range(6):
                r = await c.post("/predict", json={"records": records(X.iloc[i:], 1)})
                assert r.status_code == 200 and r.json()["version"] == "1"
            elapsed = time.perf_counter() - started
            assert elapsed < 5, elapsed  # answered while every shadow call is blocked
            assert len(app._shadow_tasks) == 2
            metrics = (await c.get("/metrics")).text
            assert "conveyor_serving_shadow_dropped_total 4.0" in metrics
            gate.set()
            await asyncio.gather(*app._shadow_tasks)

    run(main())


def test_canary_share_is_sticky_per_key(lr_model: Model, lr_model_v2: Model, cancer: Any) -> None:
    X, _ = cancer
    policy = ReleasePolicy(mode="canary", challenger="c", percent=30.0)
    app = _release_app(lr_model, FixedSource(lr_model_v2, "cancer", "2"), policy)
    keys = [f"customer-{i}" for i in range(300)]
    expected = {k: "2" if bucket(k) < 30.0 else "1" for k in keys}

    async def main() -> None:
        async with client_for(app) as c:
            await app._challenger.wait_ready(10)
            row = records(X, 1)
            for key in keys:
                r = await c.post("/predict", json={"records": row}, headers={"x-canary-key": key})
                assert r.json()["version"] == expected[key], key
            for key in keys[:20]:  # sticky: the same key meets the same version again
                r = await c.post("/predict", json={"records": row}, headers={"x-canary-key": key})
                assert r.json()["version"] == expected[key]
            metrics = (await c.get("/metrics")).text
            share = sum(v == "2" for v in expected.values()) / len(keys)
            assert 0.2 < share < 0.4
            count = sum(v == "2" for v in expected.values()) + sum(
                expected[k] == "2" for k in keys[:20]
            )
            assert f'lane="challenger",version="2"}} {float(count)}' in metrics

    run(main())


def test_canary_by_record_field_and_fallback_when_no_challenger(
    lr_model: Model, lr_model_v2: Model, cancer: Any
) -> None:
    X, _ = cancer
    policy = ReleasePolicy(mode="canary", challenger="c", percent=100.0, key_field="mean radius")
    app = _release_app(lr_model, FixedSource(lr_model_v2, "cancer", "2"), policy)

    async def main() -> None:
        async with client_for(app) as c:
            await app._challenger.wait_ready(10)
            r = await c.post("/predict", json={"records": records(X, 1)})
            assert r.json()["version"] == "2"  # 100%: every key goes to the challenger
            app._challenger._live = None  # the challenger is gone (failed reload, say)
            r = await c.post("/predict", json={"records": records(X, 1)})
            assert r.status_code == 200 and r.json()["version"] == "1"
            metrics = (await c.get("/metrics")).text
            assert "conveyor_serving_canary_fallbacks_total 1.0" in metrics

    run(main())


def test_release_settings_are_checked() -> None:
    assert parse_canary("churn@challenger=10") == ("churn@challenger", 10.0)
    for bad, message in [
        ("churn@challenger", "REF=PERCENT"),
        ("churn@challenger=ten", "with a number"),
        ("churn@challenger=150", "from 0 to 100"),
    ]:
        with pytest.raises(ServingError, match=message):
            parse_canary(bad)
    with pytest.raises(ServingError, match="shadow or canary"):
        ReleasePolicy(mode="blue-green", challenger="x")  # type: ignore[arg-type]
    with pytest.raises(ServingError, match="needs both"):
        create_app(
            FixedSource(None, "m"), ServeOptions(release=None), challenger=FixedSource(None, "m")
        )
    assert bucket("customer-1") == bucket("customer-1")
