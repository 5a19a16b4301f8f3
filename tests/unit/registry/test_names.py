"""Names and aliases never carry a line break, whitespace or control characters (issue 12,
item 8): every entry point that stores or parses one refuses them with a clear message."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.config import Settings
from conveyor.data.datasets import register_dataset
from conveyor.exceptions import ConfigError, DataError, ModelError
from conveyor.monitoring.monitor import Monitor
from conveyor.registry import ModelRef, Registry
from conveyor.registry.refs import check_alias, check_name
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store

BAD = {
    "production\n": "ends with a line break",
    "production\r\n": "ends with a line break",
    " production": "whitespace around it",
    "production ": "whitespace around it",
    "prod\tuction": "control character U+0009",
    "prod\x00": "control character U+0000",
    "prod\u200buction": "control character U+200B",  # zero-width space (a format char)
    "prod\x1b[31m": "control character U+001B",
    "": "it is empty",
}


@pytest.mark.parametrize("alias", BAD)
def test_promote_refuses_a_dirty_alias_and_lists_one_production(
    settings: Settings, registry: Registry, models: list[Any], alias: str
) -> None:
    registry.register(models[0], "churn", promote_to="production")
    registry.register(models[1], "churn")
    with pytest.raises(ModelError, match=re.escape(BAD[alias])) as caught:
        registry.promote("churn", 2, alias)
    assert "Invalid alias" in str(caught.value)
    with pytest.raises(ModelError, match=re.escape(BAD[alias])):
        registry.register(models[2], "churn", promote_to=alias)
    with pytest.raises(ModelError, match=re.escape(BAD[alias])):
        registry.rollback("churn", alias)
    [listed] = registry.list_models()
    assert listed["aliases"] == {"production": 1}
    assert sorted(v.version for v in registry.versions("churn")) == [1, 2]


@pytest.mark.parametrize("name", BAD)
def test_register_refuses_a_dirty_model_name(
    registry: Registry, models: list[Any], name: str
) -> None:
    with pytest.raises(ModelError, match=re.escape(BAD[name])):
        registry.register(models[0], name)
    with pytest.raises(ModelError, match=re.escape(BAD[name])):
        registry.promote(name, 1, "production")
    with pytest.raises(ModelError, match=re.escape(BAD[name])):
        registry.rollback(name, "production")
    assert registry.list_models() == []


@pytest.mark.parametrize("suffix", ["\n", " ", "\t", "\x07"])
def test_references_with_dirt_are_refused_not_stripped(suffix: str) -> None:
    for ref in ("churn", "churn@production", "churn/2"):
        with pytest.raises(ModelError, match="is not a model reference"):
            ModelRef.parse(ref + suffix)
        with pytest.raises(ModelError, match="is not a model reference"):
            ModelRef.parse(suffix + ref)
    assert ModelRef.parse("churn@production") == ModelRef("churn", alias="production")


@pytest.mark.parametrize("name", ["customers\n", " customers", "cust\x00omers"])
def test_dataset_names_are_checked_the_same_way(settings: Settings, name: str) -> None:
    stores = open_metadata_store(settings.db_url), open_artifact_store(settings.artifact_url)
    with pytest.raises(DataError, match="Invalid dataset name"):
        register_dataset(
            name, pd.DataFrame({"a": [1, 2]}), metadata_store=stores[0], artifact_store=stores[1]
        )


def test_monitor_names_are_checked_the_same_way() -> None:
    with pytest.raises(
        ConfigError, match=r"Invalid monitor name 'churn\\n': it ends with a line break"
    ):
        Monitor("churn\n", "churn@production")


def test_cli_promote_with_a_newline_alias_is_one_line(
    settings: Settings, registry: Registry, models: list[Any]
) -> None:
    registry.register(models[0], "churn", promote_to="production")
    runner = CliRunner()
    base = ["--db-url", settings.db_url, "--artifact-url", settings.artifact_url, "models"]
    result = runner.invoke(app, [*base, "promote", "churn", "1", "--alias", "production\n"])
    out = result.stderr if result.stderr_bytes else result.output
    assert result.exit_code == 1
    assert "ends with a line break" in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1
    listed = json.loads(runner.invoke(app, [*base, "list", "--json"]).output)
    assert [m["aliases"] for m in listed] == [{"production": 1}]


@given(st.text(max_size=80))
def test_an_accepted_name_or_alias_is_always_clean(text: str) -> None:
    for check in (check_name, check_alias):
        try:
            accepted = check(text)
        except ModelError as exc:
            assert str(exc).startswith("Invalid ")
            continue
        assert accepted == text == text.strip()
        assert not any(unicodedata.category(c).startswith(("C", "Z")) for c in text)
