"""Steps are plain functions: test them directly, and the pipeline end to end."""

from __future__ import annotations

from pipelines.training import training
from steps.data import load_data, split


def test_split_keeps_every_row() -> None:
    data = load_data()
    train, test = split(data, test_size=0.25)
    assert len(train) + len(test) == len(data)


def test_pipeline_trains_a_useful_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from conveyor.config import load_settings

    settings = load_settings(db_url=f"sqlite:///{tmp_path}/c.db", artifact_url=str(tmp_path / "a"))
    run = training.configure(settings=settings).run(test_size=0.3)
    assert run.output("metrics")["roc_auc"] > 0.95
