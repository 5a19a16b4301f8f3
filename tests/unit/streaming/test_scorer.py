"""The scorer loop against the in-memory broker: scoring, dead letters, delivery, reload."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow.parquet as pq
import pytest

from conveyor.exceptions import ServingError
from conveyor.serving.predlog import LogPolicy
from conveyor.serving.servable import FixedSource, Servable, servable_from_model
from conveyor.serving.streaming.scorer import StreamOptions, StreamScorer
from conveyor.stores.artifacts import open_artifact_store
from conveyor.training.model import Model

from .support import (
    MemoryBroker,
    MemorySink,
    MemorySource,
    bodies,
    cancer,
    outputs,
    train,
    until,
)


@pytest.fixture(scope="module")
def model() -> Model:
    return train()


@pytest.fixture(scope="module")
def model_v2() -> Model:
    return train(c=0.001)


def make(
    broker: MemoryBroker, model: Any, *, dlq: bool = True, **options: Any
) -> tuple[StreamScorer, MemorySource]:
    source = MemorySource(broker, "in")
    options.setdefault("prediction_log", None)
    options.setdefault("reload_interval", None)
    scorer = StreamScorer(
        model if isinstance(model, FixedSource) else FixedSource(model, "churn", "1"),
        source,
        MemorySink(broker, "out"),
        dead_letter=MemorySink(broker, "dlq") if dlq else None,
        options=StreamOptions(**options),
    )
    return scorer, source


async def run_until(scorer: StreamScorer, predicate: Any, what: str) -> Any:
    task = asyncio.create_task(scorer.run())
    try:
        await scorer.wait_ready(10)
        await until(predicate, what=what)
    finally:
        scorer.stop()
        stats = await task
    return stats


def test_scores_every_message_with_key_headers_model_and_version(model: Model) -> None:
    broker = MemoryBroker()
    n = 1200
    for i, body in enumerate(bodies(n)):
        broker.produce("in", body, f"c{i}".encode(), [("trace", f"t{i}".encode())])
    scorer, source = make(broker, model, max_batch=500)

    stats = asyncio.run(
        run_until(scorer, lambda: len(broker.topics.get("out", [])) >= n, "outputs")
    )

    outs = outputs(broker, "out")
    assert len(outs) == n and stats.messages_out == n and stats.dead_letters == 0
    X, _ = cancer()
    rows = [i % len(X) for i in range(n)]
    expected = model.predict(X.iloc[rows])
    assert [o["prediction"] for o in outs] == list(expected)
    proba = model.predict_proba(X.iloc[rows])
    assert np.allclose([o["probabilities"]["1"] for o in outs], proba[:, 1])
    first = outs[0]
    assert first["key"] == "c0" and first["model"] == "churn" and first["version"] == "1"
    assert first["input"] == "in/0/0"
    assert pd.Timestamp(first["timestamp"]).tzinfo is not None
    key, _, headers = broker.topics["out"][7]
    assert key == b"c7" and headers == (("trace", b"t7"),)
    # batches bounded by max_batch; every input committed
    assert max(source.commits) <= 500 and sum(source.commits) == n
    assert len(broker.committed) == n


def test_poison_messages_go_to_the_dead_letter_topic_and_the_stream_goes_on(
    model: Model,
) -> None:
    broker = MemoryBroker()
    good = bodies(20)
    X, _ = cancer()
    row = X.iloc[0].to_dict()
    poison = {
        3: b"{not json",
        5: b"[1, 2, 3]",
        8: orjson.dumps({k: v for k, v in row.items() if k != "mean radius"}),
        13: orjson.dumps({**row, "mean area": "large"}),
        17: orjson.dumps({**row, "worst symmetry": None}),
        19: b"\xff\xfe",
    }
    for i in range(20):
        broker.produce("in", poison.get(i, good[i]), f"k{i}".encode())
    scorer, _ = make(broker, model)

    stats = asyncio.run(
        run_until(scorer, lambda: len(broker.committed) == 20, "the whole batch committed")
    )

    dead = {d["key"]: d for d in outputs(broker, "dlq")}
    assert set(dead) == {f"k{i}" for i in poison}
    assert dead["k3"]["problem"] == "decode" and "not valid json" in dead["k3"]["error"]
    assert dead["k3"]["value"] == "{not json"
    assert dead["k5"]["problem"] == "bad_shape"
    assert dead["k8"]["problem"] == "missing" and "'mean radius'" in dead["k8"]["error"]
    assert dead["k13"]["problem"] == "wrong_type" and dead["k13"]["field"] == "mean area"
    assert "records[" not in dead["k13"]["error"]
    assert dead["k17"]["problem"] == "null"
    assert dead["k19"]["value_base64"] == "//4="
    assert dead["k8"]["input"] == "in/0/8" and dead["k8"]["model"] == "churn"
    _, _, headers = next(m for m in broker.topics["dlq"] if m[0] == b"k8")
    assert ("conveyor-error", b"missing") in headers
    assert sorted(o["key"] for o in outputs(broker, "out")) == sorted(
        f"k{i}" for i in range(20) if i not in poison
    )
    assert stats.dead_letters == 6 and stats.messages_out == 14
    text = scorer.metrics.render().decode()
    assert 'conveyor_stream_dead_letters_total{problem="decode"} 2.0' in text


def test_without_a_dead_letter_destination_refusals_are_counted_and_committed(
    model: Model,
) -> None:
    broker = MemoryBroker()
    broker.produce("in", b"oops", b"a")
    broker.produce("in", bodies(1)[0], b"b")
    scorer, _ = make(broker, model, dlq=False)
    stats = asyncio.run(run_until(scorer, lambda: len(broker.committed) == 2, "commit"))
    assert stats.dead_letters == 1 and [o["key"] for o in outputs(broker, "out")] == ["b"]


def test_a_refusing_sink_is_retried_and_nothing_is_committed_before_it_accepts(
    model: Model,
) -> None:
    broker = MemoryBroker()
    for body in bodies(50):
        broker.produce("in", body)
    broker.fail_sends = 3
    scorer, source = make(broker, model, max_batch=50)

    stats = asyncio.run(run_until(scorer, lambda: len(broker.committed) == 50, "commit"))

    assert len(outputs(broker, "out")) == 50  # written once, after three refusals
    assert source.commits == [50]
    assert stats.messages_out == 50
    assert 'conveyor_stream_errors_total{kind="sink"} 3.0' in scorer.metrics.render().decode()


def test_stopping_while_the_sink_refuses_leaves_the_batch_uncommitted(model: Model) -> None:
    broker = MemoryBroker()
    for body in bodies(10):
        broker.produce("in", body)
    broker.fail_sends = 10**9
    scorer, source = make(broker, model)

    async def main() -> None:
        task = asyncio.create_task(scorer.run())
        await scorer.wait_ready(10)
        await until(
            lambda: scorer.metrics.errors.labels("sink")._value.get() >= 1, what="a refusal"
        )
        scorer.stop()
        with pytest.raises(ServingError, match="10 scored messages could not be delivered"):
            await task

    asyncio.run(main())
    assert broker.committed == set() and source.commits == []


def test_a_model_error_on_one_row_refuses_that_row_only(model: Model) -> None:
    base = servable_from_model(model, "churn", "1")

    def fragile(frame: pd.DataFrame) -> Any:
        if (frame["mean radius"] > 25).any():
            raise ValueError("radius out of the model's domain")
        return base.predict_frame(frame)

    servable = Servable("churn", "1", base.rules, fragile, base.classes)
    broker = MemoryBroker()
    X, _ = cancer()
    big = int(np.flatnonzero(X["mean radius"] > 25)[0])
    for i, body in enumerate(bodies(10, start=big - 4)):
        broker.produce("in", body, f"k{i}".encode())
    scorer, _ = make(broker, FixedSource(servable, "churn", "1"))

    stats = asyncio.run(run_until(scorer, lambda: len(broker.committed) == 10, "commit"))

    dead = outputs(broker, "dlq")
    assert [d["key"] for d in dead] == ["k4"] and dead[0]["problem"] == "model_error"
    assert "radius out of the model's domain" in dead[0]["error"]
    assert stats.messages_out == 9


def test_hot_reload_switches_version_between_batches(model: Model, model_v2: Model) -> None:
    broker = MemoryBroker()
    source = FixedSource(model, "churn", "1")
    scorer, _ = make(broker, source, reload_interval=0.05)
    data = bodies(200)

    async def main() -> None:
        task = asyncio.create_task(scorer.run())
        await scorer.wait_ready(10)
        for body in data[:100]:
            broker.produce("in", body)
        await until(lambda: len(broker.committed) == 100, what="first half")
        source.replace(model_v2, "2")
        await until(lambda: scorer.stats.reloads == 1, what="the reload")
        for body in data[100:]:
            broker.produce("in", body)
        await until(lambda: len(broker.committed) == 200, what="second half")
        scorer.stop()
        await task

    asyncio.run(main())
    versions = [o["version"] for o in outputs(broker, "out")]
    assert versions == ["1"] * 100 + ["2"] * 100
    text = scorer.metrics.render().decode()
    assert 'conveyor_stream_model_info{model="churn",version="2"} 1.0' in text
    assert "conveyor_stream_model_reloads_total 1.0" in text


def test_predictions_are_logged_with_the_message_position(model: Model, tmp_path: Any) -> None:
    broker = MemoryBroker()
    for i, body in enumerate(bodies(30)):
        broker.produce("in", body, f"k{i}".encode())
    store = open_artifact_store(str(tmp_path / "artifacts"))
    scorer = StreamScorer(
        FixedSource(model, "churn", "1"),
        MemorySource(broker, "in"),
        MemorySink(broker, "out"),
        options=StreamOptions(prediction_log=LogPolicy(roll_rows=10), reload_interval=None),
        log_store=store,
    )
    asyncio.run(run_until(scorer, lambda: len(broker.committed) == 30, "commit"))

    files = store.list_files("predictions/churn/")
    table = pd.concat(pq.read_table(io.BytesIO(store.read_file(f))).to_pandas() for f in files)
    assert sorted(table["_request_id"]) == sorted(f"in/0/{i}" for i in range(30))
    assert set(table["_model_version"]) == {"1"}
    assert "mean radius" in table.columns


def test_lag_and_batch_metrics(model: Model) -> None:
    broker = MemoryBroker()
    for body in bodies(40):
        broker.produce("in", body)
    scorer, _ = make(broker, model, max_batch=10, lag_interval=0.0)
    asyncio.run(run_until(scorer, lambda: len(broker.committed) == 40, "commit"))
    text = scorer.metrics.render().decode()
    assert "conveyor_stream_messages_in_total 40.0" in text
    assert "conveyor_stream_messages_out_total 40.0" in text
    assert "conveyor_stream_batch_messages_count 4.0" in text
    assert 'conveyor_stream_lag_messages{partition="in"} 0.0' in text
