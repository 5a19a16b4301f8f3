"""Admission coerces every value to the signature's type before the model and the log; a
log write never drops other requests' rows; out-of-range numbers are a 422, not a 500
(issue 12, items 3 and 4)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from conveyor.serving.app import ServeOptions, create_app
from conveyor.serving.batching import BatchPolicy
from conveyor.serving.predlog import LogPolicy, PredictionLogger
from conveyor.serving.servable import FixedSource
from conveyor.serving.streaming.scorer import StreamOptions, StreamScorer
from conveyor.stores.artifacts import LocalArtifactStore, open_artifact_store
from conveyor.training.model import Model
from tests.unit.streaming.support import MemoryBroker, MemorySink, MemorySource, until

from .conftest import client_for, run


@pytest.fixture(scope="module")
def coded_model() -> Model:
    """A model whose 'plan' column holds category codes as text ("1", "2", "3")."""
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "plan": pd.Categorical(rng.choice(["1", "2", "3"], n), categories=["1", "2", "3"]),
            "seats": rng.integers(1, 50, n),
            "spend": rng.normal(100, 20, n),
            "since": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 300, n), "D"),
        }
    )
    y = (frame["spend"] > 100).astype(int)
    pre = ColumnTransformer(
        [
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
            ("num", "passthrough", ["seats", "spend"]),
        ]
    )
    pipe = make_pipeline(pre, LogisticRegression(max_iter=1000)).fit(frame, y)
    return Model.from_fitted(pipe, frame, profile=False)


def _record(plan: Any, seats: Any = 3, spend: Any = 90.5) -> dict[str, Any]:
    return {"plan": plan, "seats": seats, "spend": spend, "since": "2024-05-01T10:00:00"}


def _logged(store: LocalArtifactStore, prefix: str) -> pd.DataFrame:
    files = store.list_files(prefix)
    if not files:
        return pd.DataFrame()
    return pd.concat(
        [pq.read_table(io.BytesIO(store.read_file(f))).to_pandas() for f in files],
        ignore_index=True,
    )


def test_a_number_for_a_text_category_is_coerced_and_no_logged_row_is_lost(
    coded_model: Model, tmp_path: Path
) -> None:
    store = LocalArtifactStore(tmp_path)
    options = ServeOptions(
        reload_interval=None,
        batching=BatchPolicy(max_wait=0.05),
        prediction_log=LogPolicy(roll_rows=10_000, roll_seconds=60),
    )
    app = create_app(FixedSource(coded_model, "plans"), options, log_store=store)

    async def go() -> list[int]:
        async with client_for(app) as client:
            bodies = [{"records": [_record("2")]} for _ in range(40)]
            bodies[7] = {"records": [_record(2)]}  # the number, among text codes
            bodies[9] = {"columns": {k: [v] for k, v in _record(3).items()}}
            answers = await asyncio.gather(*(client.post("/predict", json=b) for b in bodies))
            assert app.predlog is not None
            await asyncio.to_thread(app.predlog.flush)
            return [a.status_code for a in answers]

    assert run(go()) == [200] * 40
    assert app.predlog is not None
    assert app.predlog.dropped_rows == 0 and app.predlog.rejected_rows == 0
    table = _logged(store, "predictions/plans/")
    assert len(table) == 40
    assert set(map(type, table["plan"])) == {str}
    assert sorted(table["plan"].unique()) == ["2", "3"]


def test_the_model_sees_the_code_as_sent_in_text(coded_model: Model) -> None:
    app = create_app(FixedSource(coded_model, "plans"), ServeOptions(reload_interval=None))

    async def go() -> tuple[Any, Any]:
        async with client_for(app) as client:
            as_number = await client.post("/predict", json={"records": [_record(2)]})
            as_text = await client.post("/predict", json={"records": [_record("2")]})
            return as_number.json(), as_text.json()

    number, text = run(go())
    assert number["probabilities"] == text["probabilities"]


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (2**63, "seats"),
        (1e300, "seats"),
        (-1e19, "seats"),
        (2**64 - 1, "seats"),
    ],
)
def test_an_int_column_out_of_range_is_a_422_naming_the_field(
    coded_model: Model, value: Any, field: str
) -> None:
    app = create_app(FixedSource(coded_model, "plans"), ServeOptions(reload_interval=None))

    async def go() -> list[Any]:
        async with client_for(app) as client:
            one = await client.post("/predict", json={"records": [_record("1", seats=value)]})
            many = [_record("1") for _ in range(20)]
            many[13] = _record("1", seats=value)
            batch = await client.post("/predict", json={"records": many})
            cols = {k: [v] * 3 for k, v in _record("1").items()}
            cols["seats"] = [1, value, 2]
            columns = await client.post("/predict", json={"columns": cols})
            infer = await client.post(
                "/v2/models/plans/infer",
                json={
                    "inputs": [
                        {"name": k, "shape": [3], "datatype": "BYTES", "data": v}
                        for k, v in cols.items()
                    ]
                },
            )
            return [one, batch, columns, infer]

    one, batch, columns, infer = run(go())
    assert [r.status_code for r in (one, batch, columns, infer)] == [422] * 4
    assert one.json()["field"] == f"records[0].{field}"
    assert batch.json()["field"] == f"records[13].{field}"
    assert columns.json()["field"] == f"columns.{field}[1]"
    assert infer.json()["field"] == f"inputs.{field}[1]"
    assert "between" in one.json()["error"]


def test_a_float_column_refuses_an_int_beyond_the_float_range() -> None:
    from conveyor.serving.validation import ColumnRule, RequestError, Validator

    validator = Validator([ColumnRule("x", "float")])
    big = 10**400
    with pytest.raises(RequestError) as caught:
        validator.records([{"x": big}])
    assert caught.value.status == 422 and caught.value.field == "records[0].x"
    with pytest.raises(RequestError):
        validator.records([{"x": 1.0}] * 20 + [{"x": big}])
    with pytest.raises(RequestError):
        validator.columns({"x": [1.0, big]})
    columns, _ = validator.records([{"x": 2**63}])
    assert columns["x"] == [float(2**63)]


def test_datetimes_out_of_range_or_mixed_zones_are_handled_at_admission(
    coded_model: Model,
) -> None:
    app = create_app(FixedSource(coded_model, "plans"), ServeOptions(reload_interval=None))

    async def go() -> tuple[Any, Any]:
        async with client_for(app) as client:
            early = _record("1")
            early["since"] = "0001-01-01T00:00:00"
            refused = await client.post("/predict", json={"records": [early]})
            mixed = [_record("1") for _ in range(20)]
            mixed[3]["since"] = "2024-05-01T10:00:00+02:00"
            mixed[4]["since"] = "2024-05-01"
            accepted = await client.post("/predict", json={"records": mixed})
            return refused, accepted

    refused, accepted = run(go())
    assert refused.status_code == 422 and refused.json()["field"] == "records[0].since"
    assert accepted.status_code == 200, accepted.text


def _entry_frame(values: list[Any]) -> pd.DataFrame:
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return pd.DataFrame({"plan": column, "x": np.arange(float(len(values)))})


def test_a_row_that_cannot_be_written_goes_to_a_reject_segment_alone(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    rejected: list[int] = []
    logger = PredictionLogger(
        store, LogPolicy(roll_rows=10_000, roll_seconds=60), on_rejected=rejected.append
    )
    logger.start()
    for i in range(30):
        logger.submit(
            "m",
            "1",
            frame=_entry_frame(["a", "b"]),
            preds=np.array([0, 1]),
            proba=None,
            requests=[(f"r{i}", 2)],
        )
    # One request whose second row holds a list where the column holds text: that row
    # does not fit the segment, the other rows (its own first row included) do.
    logger.submit(
        "m",
        "1",
        frame=_entry_frame(["a", ["not", "a", "scalar"]]),
        preds=np.array([0, 1]),
        proba=None,
        requests=[("bad", 2)],
    )
    logger.close()
    written = _logged(store, "predictions/m/")
    rejects = _logged(store, "prediction-rejects/m/")
    assert logger.dropped_rows == 0
    assert logger.written_rows == 61 and len(written) == 61
    assert logger.rejected_rows == 1 and rejected == [1] and len(rejects) == 1
    assert rejects["_request_id"].tolist() == ["bad"]
    assert "plan is list<item: string>, expected " in rejects["_reason"].iloc[0]
    assert '"not"' in rejects["_row"].iloc[0]


def test_rejected_log_rows_are_counted_in_metrics(coded_model: Model, tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path)
    app = create_app(
        FixedSource(coded_model, "plans"), ServeOptions(reload_interval=None), log_store=store
    )

    async def go() -> str:
        async with client_for(app) as client:
            assert app.predlog is not None
            app.predlog.submit(
                "plans",
                "1",
                frame=_entry_frame([object()]),  # no Arrow type holds it
                preds=np.array([1]),
                proba=None,
                requests=[("odd", 1)],
            )
            await asyncio.to_thread(app.predlog.flush)
            return (await client.get("/metrics")).text

    text = run(go())
    assert "conveyor_serving_prediction_log_rejected_rows_total 1.0" in text


def test_the_stream_scorer_logs_every_row_when_a_message_sends_a_number_code(
    coded_model: Model, tmp_path: Path
) -> None:
    import orjson

    broker = MemoryBroker()
    for i in range(50):
        broker.produce("in", orjson.dumps(_record(2 if i % 10 == 3 else "2")))
    store = open_artifact_store(str(tmp_path / "artifacts"))
    scorer = StreamScorer(
        FixedSource(coded_model, "plans", "1"),
        MemorySource(broker, "in"),
        MemorySink(broker, "out"),
        options=StreamOptions(
            prediction_log=LogPolicy(roll_rows=10_000, roll_seconds=60), reload_interval=None
        ),
        log_store=store,
    )

    async def go() -> None:
        task = asyncio.create_task(scorer.run())
        try:
            await scorer.wait_ready(10)
            await until(lambda: len(broker.committed) == 50, what="commit")
        finally:
            scorer.stop()
            await task

    asyncio.run(go())
    assert scorer.predlog is not None
    assert scorer.predlog.dropped_rows == 0 and scorer.predlog.rejected_rows == 0
    table = _logged(store, "predictions/plans/")  # type: ignore[arg-type]
    assert len(table) == 50 and set(map(type, table["plan"])) == {str}


def test_batch_frames_reject_int_values_outside_int64_instead_of_wrapping() -> None:
    from conveyor.serving.validation import ColumnRule, Validator

    validator = Validator([ColumnRule("seats", "int")])
    floats = pd.DataFrame({"seats": [3.0, 1e300, float("inf"), -1e19, 7.0]})
    coerced, reasons = validator.frame(floats)
    assert [r is None for r in reasons] == [True, False, False, False, True]
    assert "outside int64" in reasons[1]
    texts = pd.DataFrame({"seats": ["3", "9223372036854775808", "1e300", "4"]})
    coerced, reasons = validator.frame(texts)
    assert [r is None for r in reasons] == [True, False, False, True]
    good = coerced["seats"].to_numpy()[[0, 3]]
    assert good.tolist() == [3, 4]
