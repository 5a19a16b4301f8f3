"""Open Inference Protocol v2: probability outputs name their classes (metadata and every
infer response), in the order of the probability columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from conveyor.serving.app import ServeOptions, create_app
from conveyor.serving.servable import FixedSource
from conveyor.training.model import Model

from .conftest import client_for, run


def test_predict_proba_names_its_classes_in_column_order() -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    labels = pd.Series(names).map({"setosa": "s", "versicolor": "ve", "virginica": "a"})
    model = Model.from_fitted(LogisticRegression(max_iter=500).fit(X, labels), X, profile=False)
    classes = list(model.classes_)
    assert classes == ["a", "s", "ve"]  # sklearn sorts: column 0 is "a"
    app = create_app(FixedSource(model, "iris"), ServeOptions(reload_interval=None))
    rows = X.iloc[[0, 60, 120]]
    body: dict[str, Any] = {
        "inputs": [
            {"name": c, "shape": [3], "datatype": "FP64", "data": rows[c].tolist()}
            for c in X.columns
        ]
    }

    async def main() -> None:
        async with client_for(app) as c:
            meta = (await c.get("/v2/models/iris")).json()
            proba_meta = next(o for o in meta["outputs"] if o["name"] == "predict_proba")
            assert proba_meta["parameters"]["classes"] == classes
            r = await c.post("/v2/models/iris/infer", json=body)
            assert r.status_code == 200, r.text
            outputs = {o["name"]: o for o in r.json()["outputs"]}
            proba = outputs["predict_proba"]
            assert proba["parameters"]["classes"] == classes
            matrix = np.asarray(proba["data"]).reshape(proba["shape"])
            # the named column of each row's prediction holds its highest probability
            for row, predicted in zip(matrix, outputs["predict"]["data"], strict=True):
                assert classes[int(np.argmax(row))] == predicted
            assert np.allclose(matrix, model.predict_proba(rows))

    run(main())
