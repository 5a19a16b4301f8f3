"""The data layer inside a pipeline run: dataset lineage and a validate step that stops it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conveyor import pipeline, step
from conveyor.config import Settings
from conveyor.data.datasets import dataset, register_dataset
from conveyor.data.profile import Profile
from conveyor.data.schema import Schema
from conveyor.data.validate import validate
from conveyor.exceptions import RunFailedError
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store


@step
def count_rows(df: pd.DataFrame) -> int:
    return len(df)


@step
def shift_ages(df: pd.DataFrame, by: int) -> pd.DataFrame:
    return df.assign(age=df["age"] + by)


@pipeline
def checked(by: int = 0, schema: str = "schema.yaml"):
    df = shift_ages(dataset("customers", version=1), by=by)
    report = validate(df, schema=schema, reference="customers@1")
    return count_rows(df, after=[report])


@pytest.fixture
def project(tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    # No env: inside the run, the dataset step must use the run's own stores.
    monkeypatch.delenv("CONVEYOR_DB_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_ARTIFACT_URL", raising=False)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.integers(18, 90, 3000), "plan": rng.choice(["a", "b"], 3000)})
    register_dataset(
        "customers",
        frame,
        metadata_store=open_metadata_store(settings.db_url),
        artifact_store=open_artifact_store(settings.artifact_url),
    )
    Schema.infer(Profile.from_frame(frame), range_margin=0.0).save(tmp_path / "schema.yaml")
    return tmp_path


def test_lineage_records_dataset_version(project: Path, settings: Settings) -> None:
    run = checked.configure(settings=settings).run(by=0, schema=str(project / "schema.yaml"))
    assert run.status == "completed" and run.output() == 3000
    loader = run.step("dataset")
    assert loader["params"]["dataset"]["ref"] == "customers@1"
    assert run.record["tags"]["dataset"] == "customers@1"


def test_validation_errors_stop_the_run(project: Path, settings: Settings) -> None:
    with pytest.raises(RunFailedError) as info:
        checked.configure(settings=settings).run(by=100, schema=str(project / "schema.yaml"))
    run = info.value.run
    failed = run.step("validate")
    assert failed["status"] == "failed"
    assert "out_of_range" in failed["error"] or "maximum" in failed["error"]
    assert run.step("count_rows")["status"] != "completed"
    # The report the failed step logged is stored and linked to it.
    from conveyor.execution.run import Artifact
    from conveyor.stores.artifacts import open_artifact_store
    from conveyor.stores.metadata import open_metadata_store

    store = open_metadata_store(settings.db_url)
    logged = [e for e in store.step_edges([failed["id"]]) if e["direction"] == "log"]
    assert [e["name"] for e in logged] == ["validation_report"]
    report = Artifact.from_row(
        store.get_artifact(logged[0]["artifact_id"]), open_artifact_store(settings.artifact_url)
    ).load()
    assert not report.ok


@step
def train_on(df: pd.DataFrame) -> int:
    from sklearn.linear_model import LogisticRegression

    from conveyor.registry import register_model
    from conveyor.training.model import Model

    fitted = LogisticRegression().fit(df[["age"]], df["age"] > 50)
    version = register_model(Model.from_fitted(fitted, df[["age"]], profile=False), "ages")
    return version.version


@pipeline
def trained():
    return train_on(shift_ages(dataset("customers", version=1), by=1))


def test_model_lineage_names_the_dataset_version_it_was_trained_on(
    project: Path, settings: Settings
) -> None:
    from conveyor.registry import get_registry

    run = trained.configure(settings=settings).run()
    registry = get_registry(
        open_metadata_store(settings.db_url), open_artifact_store(settings.artifact_url)
    )
    lineage = registry.lineage(f"ages/{run.output()}")
    assert lineage["run"]["id"] == run.id
    assert [d["dataset"] for d in lineage["data"] if "dataset" in d] == ["customers@1"]
    assert lineage["data"][0]["step"] == "dataset"
