"""Broker URLs, codecs and options: the messages users see when they get them wrong."""

from __future__ import annotations

import pytest

from conveyor.exceptions import ServingError
from conveyor.serving.streaming.base import Endpoint, open_sink, open_source
from conveyor.serving.streaming.codecs import JsonCodec, get_codec, register_codec
from conveyor.serving.streaming.scorer import StreamOptions


def test_endpoint_parses_hosts_name_and_options() -> None:
    e = Endpoint.parse("kafka://a:9092,b:9093/customer-events?acks=1")
    assert e.scheme == "kafka" and e.hosts == ("a:9092", "b:9093")
    assert e.name == "customer-events" and e.options == {"acks": "1"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("127.0.0.1:9092/topic", "is not a broker URL"),
        ("kafka://127.0.0.1:9092", "is not a broker URL"),
        ("kafak://127.0.0.1:9092/t", "Did you mean kafka://"),
        ("nats://127.0.0.1:4222/t", "streaming knows kafka://, redis://"),
    ],
)
def test_bad_urls_are_explained(url: str, message: str) -> None:
    with pytest.raises(ServingError, match=message):
        open_source(url, group="g")


def test_sources_and_sinks_are_built_without_connecting() -> None:
    source = open_source("redis://127.0.0.1:1/events", group="g", consumer="c", claim_idle=5)
    assert "events" in source.description and "'c'" in source.description
    assert "scores" in open_sink("kafka://127.0.0.1:1/scores").description


def test_codecs_are_pluggable() -> None:
    class Upper(JsonCodec):
        name = "upper"

    register_codec("upper", Upper)
    assert get_codec("upper").name == "upper"
    assert get_codec("json").decode(b'{"a": 1}') == {"a": 1}
    with pytest.raises(ServingError, match="Did you mean 'json'"):
        get_codec("jsn")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_batch": 0}, "'max_batch' parameter of StreamOptions must be an int >= 1"),
        ({"max_wait": -1}, "'max_wait'"),
        ({"unseen": "drop"}, "'unseen'"),
        ({"reload_interval": 0}, "'reload_interval'"),
    ],
)
def test_options_are_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ServingError, match=message):
        StreamOptions(**kwargs)  # type: ignore[arg-type]
