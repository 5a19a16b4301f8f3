"""Property-based fuzzing of POST /predict and OIP v2 infer: whatever the body, the server
answers 200 with one prediction per row, or a 4xx JSON error; never a 500 (issue 12)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from conveyor.serving.app import ServeOptions, ServingApp, create_app
from conveyor.serving.batching import BatchPolicy
from conveyor.serving.servable import FixedSource
from conveyor.stores.artifacts import LocalArtifactStore
from conveyor.training.model import Model

T = TypeVar("T")
COLUMNS = ("plan", "seats", "spend", "rate", "since", "flag", "note")


def _model() -> Model:
    rng = np.random.default_rng(1)
    n = 200
    rate = rng.normal(size=n)
    rate[::9] = np.nan
    frame = pd.DataFrame(
        {
            "plan": pd.Categorical(rng.choice(["1", "2", "3"], n), categories=["1", "2", "3"]),
            "seats": rng.integers(1, 50, n),
            "spend": rng.normal(100, 20, n),
            "rate": rate,
            "since": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), "D"),
            "flag": rng.random(n) > 0.5,
            "note": [f"note {i}" for i in range(n)],  # free text, no categorical domain
        }
    )
    y = (frame["spend"] > 100).astype(int)
    pre = ColumnTransformer(
        [
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
            ("num", SimpleImputer(), ["seats", "spend", "rate"]),
            ("flag", "passthrough", ["flag"]),
        ]
    )
    pipe = make_pipeline(pre, DecisionTreeClassifier(max_depth=3, random_state=0))
    return Model.from_fitted(pipe.fit(frame, y), frame, profile=False)


class _Server:
    """A started app on an event loop of its own thread, shared by every example."""

    def __init__(self, app: ServingApp) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client: httpx.AsyncClient | None = None
        self.call(self._start())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    async def _start(self) -> None:
        await self.app.start()
        await self.app.wait_ready(30)
        transport = httpx.ASGITransport(app=self.app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://fuzz")

    async def _stop(self) -> None:
        assert self.client is not None
        await self.client.aclose()
        await self.app.stop()

    def post(self, path: str, content: bytes) -> httpx.Response:
        assert self.client is not None
        client = self.client
        return self.call(
            client.post(path, content=content, headers={"content-type": "application/json"})
        )

    def close(self) -> None:
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    store = LocalArtifactStore(tmp_path_factory.mktemp("fuzz-log"))
    app = create_app(
        FixedSource(_model(), "plans"),
        ServeOptions(reload_interval=None, batching=BatchPolicy(max_wait=0)),
        log_store=store,
    )
    running = _Server(app)
    yield running
    running.close()
    # Whatever was sent, the prediction log lost nothing it accepted.
    assert app.predlog is not None
    assert app.predlog.dropped_rows == 0 and app.predlog.rejected_rows == 0


# -- strategies ------------------------------------------------------------------------

_ints = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**63, 2**63 - 1, -(2**63), -(2**63) - 1, 2**64 - 1, 0, -1]),
)
_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e300, -1e300, 1e308, 5e-324, -0.0, 9.3e18, 3.4e38, 3.5e38]),
)
_texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["1", "2", "3", "4", "", "2024-05-01", "2024-05-01T10:00:00+14:00"]),
    st.sampled_from(["0001-01-01T00:00:00", "9999-12-31T23:59:59", "2262-04-12", "1677-09-20"]),
)
_scalars = st.one_of(st.none(), st.booleans(), _ints, _floats, _texts)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(COLUMNS), st.text(max_size=5)), inner, max_size=4
        ),
    ),
    max_leaves=12,
)
_value = st.one_of(_scalars, _scalars, _json)
_dates = st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())
# Values of each column's own type, extremes included: these reach the model.
_typed = {
    "plan": st.sampled_from(["1", "2", "3", 2, 3.0, True, "4"]),
    "seats": st.one_of(_ints, _floats.filter(float.is_integer)),
    "spend": st.one_of(_floats, _ints),
    "rate": st.one_of(_floats, _ints, st.none()),
    "since": st.one_of(_dates, _texts),
    "flag": st.booleans(),
    "note": st.text(max_size=30),
    "extra": _value,
}


def _valid(i: int) -> dict[str, Any]:
    return {
        "plan": ["1", "2", "3"][i % 3],
        "seats": i + 1,
        "spend": 90.5 + i,
        "rate": None if i % 4 == 0 else 0.5,
        "since": "2024-05-01T10:00:00",
        "flag": bool(i % 2),
        "note": f"n{i}",
    }


@st.composite
def _records(draw: st.DrawFn) -> Any:
    """Mostly-valid rows with a few values (or keys) replaced by anything."""
    n = draw(st.integers(1, 40))
    rows: list[Any] = [_valid(i) for i in range(n)]
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, n - 1))
        column = draw(st.sampled_from((*COLUMNS, "extra")))
        action = draw(st.integers(0, 5))
        if action <= 3:
            rows[i][column] = draw(_typed[column])
        elif action == 4:
            rows[i][column] = draw(_value)
        else:
            rows[i].pop(column, None)
    if draw(st.integers(0, 9)) == 0:
        rows[draw(st.integers(0, n - 1))] = draw(_value)
    return rows


@st.composite
def _predict_body(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["records", "columns", "anything"]))
    if kind == "anything":
        return draw(_json)
    rows = draw(_records())
    if kind == "records":
        return {"records": rows}
    columns: dict[str, Any] = {}
    for column in COLUMNS:
        columns[column] = [r.get(column) if type(r) is dict else r for r in rows]
    if draw(st.booleans()):
        columns[draw(st.sampled_from(COLUMNS))] = draw(_value)
    return {"columns": columns}


@st.composite
def _infer_body(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 5)) == 0:
        return draw(_json)
    rows = [r if type(r) is dict else {} for r in draw(_records())]
    tensors: list[Any] = []
    for column in COLUMNS:
        data: Any = [r.get(column) for r in rows]
        shape: Any = [len(rows)]
        if draw(st.integers(0, 6)) == 0:
            shape = draw(st.one_of(st.lists(st.integers(-3, 50), max_size=3), _value))
        if draw(st.integers(0, 6)) == 0:
            data = draw(st.one_of(st.lists(_value, max_size=5), _value))
        tensors.append({"name": column, "shape": shape, "datatype": draw(_texts), "data": data})
    if draw(st.integers(0, 6)) == 0:
        tensors = [{"name": "all", "shape": [len(rows), len(COLUMNS)], "data": draw(_value)}]
    body: dict[str, Any] = {"inputs": tensors}
    if draw(st.booleans()):
        body["id"] = draw(_value)
    if draw(st.booleans()):
        body["outputs"] = draw(_value)
    return body


def _check(response: httpx.Response, rows_of: Any) -> None:
    assert response.status_code < 500, response.text
    body = response.json()  # every answer is JSON
    assert response.headers["content-type"] == "application/json"
    if response.status_code >= 400:
        assert isinstance(body.get("error"), str) and body["error"]
        assert isinstance(body.get("problem"), str)
    else:
        assert rows_of(body)


_FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_FUZZ
@given(body=_predict_body())
def test_predict_never_answers_500(server: _Server, body: Any) -> None:
    response = server.post("/predict", json.dumps(body).encode())

    def rows_of(answer: dict[str, Any]) -> bool:
        rows = body["records"] if "records" in body else next(iter(body["columns"].values()))
        return len(answer["predictions"]) == len(rows)

    _check(response, rows_of)


@_FUZZ
@given(body=_infer_body())
def test_v2_infer_never_answers_500(server: _Server, body: Any) -> None:
    response = server.post("/v2/models/plans/infer", json.dumps(body).encode())

    def rows_of(answer: dict[str, Any]) -> bool:
        outputs = answer["outputs"]
        return all(o["shape"][0] == len(o["data"]) or o["name"] != "predict" for o in outputs)

    _check(response, rows_of)


@_FUZZ
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_bytes_that_are_not_json_get_a_400(server: _Server, raw: bytes) -> None:
    response = server.post("/predict", raw)
    assert response.status_code < 500, response.text
    assert "error" in response.json()
