"""Batch scoring: chunks, order, id column, rejects with reasons, CSV, worker processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from conveyor.exceptions import ServingError
from conveyor.registry import Registry
from conveyor.serving.batch import score_file
from conveyor.training.model import Model


def _input(mixed_frame: Any) -> pd.DataFrame:
    frame, _ = mixed_frame
    data = frame.copy()
    data["band"] = data["band"].astype(str)
    data.insert(0, "customer", [f"c{i:04d}" for i in range(len(data))])
    return data


def test_parquet_in_chunks_keeps_order_ids_and_rejects(
    tmp_path: Path, mixed_model: Model, mixed_frame: Any
) -> None:
    data = _input(mixed_frame)
    data.loc[5, "radius"] = np.nan  # not nullable
    data.loc[9, "band"] = "huge"  # unseen category
    source = tmp_path / "in.parquet"
    data.to_parquet(source)
    out = tmp_path / "scored.parquet"
    seen: list[int] = []
    summary = score_file(
        mixed_model,
        source,
        out,
        chunk_rows=100,
        id_column="customer",
        progress=lambda done, total: seen.append(done),
    )
    assert seen == [100, 200, 300, 400, 500, 569]
    assert (summary.rows_in, summary.rows_scored, summary.rows_rejected) == (569, 567, 2)
    scored = pd.read_parquet(out)
    assert list(scored.columns) == ["_row", "customer", "prediction", "proba_0", "proba_1"]
    assert scored["_row"].tolist() == [i for i in range(569) if i not in (5, 9)]
    valid = data.drop(index=[5, 9])
    frame = valid.drop(columns="customer").astype({"band": mixed_frame[0]["band"].dtype})
    assert scored["customer"].tolist() == valid["customer"].tolist()
    assert scored["prediction"].tolist() == mixed_model.predict(frame).tolist()
    assert np.allclose(scored["proba_1"], mixed_model.predict_proba(frame)[:, 1])
    rejects = pd.read_parquet(summary.reject_file)
    assert rejects["_row"].tolist() == [5, 9]
    assert rejects["customer"].tolist() == ["c0005", "c0009"]
    assert rejects["_reason"].tolist() == [
        "column 'radius' is null",
        "column 'band' has a category unseen in training",
    ]


def test_csv_with_bad_cells_rejects_only_their_rows(
    tmp_path: Path, mixed_model: Model, mixed_frame: Any
) -> None:
    data = _input(mixed_frame).iloc[:50]
    text = data.to_csv(index=False).splitlines()
    cells = text[4].split(",")
    cells[1] = "abc"  # radius of row 3
    text[4] = ",".join(cells)
    source = tmp_path / "in.csv"
    source.write_text("\n".join(text) + "\n")
    summary = score_file(mixed_model, source, tmp_path / "out.parquet", chunk_rows=16)
    assert (summary.rows_scored, summary.rows_rejected) == (49, 1)
    rejects = pd.read_parquet(summary.reject_file)
    assert rejects["_row"].tolist() == [3]
    assert rejects["_reason"].tolist() == ["column 'radius' is not a number"]
    scored = pd.read_parquet(tmp_path / "out.parquet")
    expected = mixed_model.predict(mixed_frame[0].drop(index=3).iloc[:49])
    assert scored["prediction"].tolist() == expected.tolist()


def test_a_missing_column_fails_before_scoring(
    tmp_path: Path, lr_model: Model, cancer: Any
) -> None:
    X, _ = cancer
    X.drop(columns=["mean radius"]).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(ServingError, match="'mean radius'"):
        score_file(lr_model, tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_unknown_format_is_refused(tmp_path: Path, lr_model: Model) -> None:
    (tmp_path / "in.xlsx").write_bytes(b"")
    with pytest.raises(ServingError, match=r"\.parquet or \.csv"):
        score_file(lr_model, tmp_path / "in.xlsx", tmp_path / "out.parquet")


@pytest.mark.slow
def test_worker_processes_from_a_registry_reference(
    tmp_path: Path, registry: Registry, lr_model: Model, cancer: Any
) -> None:
    X, _ = cancer
    registry.register(lr_model, "cancer", promote_to="production")
    big = pd.concat([X] * 4, ignore_index=True)
    big.to_parquet(tmp_path / "in.parquet")
    summary = score_file(
        "cancer@production",
        tmp_path / "in.parquet",
        tmp_path / "out.parquet",
        chunk_rows=300,
        workers=2,
        registry=registry,
    )
    assert (summary.version, summary.rows_scored, summary.rows_rejected) == ("1", len(big), 0)
    scored = pd.read_parquet(tmp_path / "out.parquet")
    assert scored["_row"].tolist() == list(range(len(big)))
    assert scored["prediction"].tolist() == lr_model.predict(big).tolist()


def _score_both_ways(
    tmp_path: Path, model: Model, data: pd.DataFrame, executor: Any
) -> tuple[tuple[pd.DataFrame, pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]:
    source = tmp_path / "in.parquet"
    data.to_parquet(source)
    results = []
    for name, how in (("single", None), ("executor", executor)):
        summary = score_file(
            model,
            source,
            tmp_path / f"{name}.parquet",
            chunk_rows=50,
            executor=how,
            id_column="customer",
        )
        assert summary.reject_file is not None
        results.append(
            (pd.read_parquet(tmp_path / f"{name}.parquet"), pd.read_parquet(summary.reject_file))
        )
    return results[0], results[1]


def _with_bad_rows(mixed_frame: Any) -> pd.DataFrame:
    data = _input(mixed_frame)
    data.loc[[5, 130, 400], "radius"] = np.nan
    data.loc[[9, 251], "band"] = "huge"
    return data


def test_an_executor_object_scores_like_one_process(
    tmp_path: Path, mixed_model: Model, mixed_frame: Any
) -> None:
    from conveyor.execution.executors import ThreadsExecutor

    pool = ThreadsExecutor(2)
    try:
        single, threaded = _score_both_ways(
            tmp_path, mixed_model, _with_bad_rows(mixed_frame), pool
        )
        pool.submit(int).result()  # a caller's executor is left running
    finally:
        pool.shutdown()
    pd.testing.assert_frame_equal(threaded[0], single[0])
    pd.testing.assert_frame_equal(threaded[1], single[1])
    assert single[1]["_row"].tolist() == [5, 9, 130, 251, 400]


def test_workers_and_executor_together_are_refused(tmp_path: Path, lr_model: Model) -> None:
    with pytest.raises(ServingError, match="both workers=2 and executor='dask-local:2'"):
        score_file(
            lr_model,
            tmp_path / "in.parquet",
            tmp_path / "o.parquet",
            workers=2,
            executor="dask-local:2",
        )


@pytest.mark.slow
def test_dask_local_cluster_scores_like_one_process(
    tmp_path: Path, mixed_model: Model, mixed_frame: Any
) -> None:
    single, dask = _score_both_ways(
        tmp_path, mixed_model, _with_bad_rows(mixed_frame), "dask-local:2"
    )
    assert len(single[0]) == 564 and len(single[1]) == 5
    pd.testing.assert_frame_equal(dask[0], single[0])
    pd.testing.assert_frame_equal(dask[1], single[1])
