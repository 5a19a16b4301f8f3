"""How a loaded model is called: the array path for estimators fitted on the signature."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.serving.servable import servable_from_model
from conveyor.serving.validation import build_frame
from conveyor.training.model import Model

from .conftest import records


def _answer(model: Model, X: pd.DataFrame, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    servable = servable_from_model(model, "m", "1")
    columns, _ = servable.validator("reject").records(records(X, n))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the array path warns nothing
        return servable.predict_frame(build_frame(servable.rules, columns))


def test_array_path_answers_as_the_frame_does(lr_model: Model, cancer: Any) -> None:
    X, _ = cancer
    servable = servable_from_model(lr_model, "m", "1")
    for n in (1, 5, 1):  # the first call decides the path, later ones take it
        columns, _ = servable.validator("reject").records(records(X, n))
        frame = build_frame(servable.rules, columns)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            preds, proba = servable.predict_frame(frame)
        assert np.array_equal(preds, lr_model.predict(X.iloc[:n]))
        assert np.array_equal(proba, lr_model.predict_proba(X.iloc[:n]))


def test_an_estimator_needing_column_names_stays_on_frames(cancer: Any) -> None:
    X, y = cancer
    by_name = ColumnTransformer([("scale", StandardScaler(), ["mean radius", "mean texture"])])
    pipe = make_pipeline(by_name, LogisticRegression(max_iter=2000)).fit(X, y)
    model = Model.from_fitted(pipe, X, profile=False)
    for n in (3, 2):
        preds, proba = _answer(model, X, n)
        assert np.array_equal(preds, model.predict(X.iloc[:n]))
        assert proba is not None and np.allclose(proba, model.predict_proba(X.iloc[:n]))
