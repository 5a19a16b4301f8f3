"""library_versions covers the libraries of nested estimators, and a mismatch in one of
them warns on load (issue 18 item 10)."""

from __future__ import annotations

import lightgbm
import numpy as np
import pandas as pd
import pytest
import sklearn
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import StackingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline

from conveyor.training.model import LibraryVersionWarning, Model, component_libraries
from tests.unit.training.test_model import _rewrite_header


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = (X["a"] + rng.normal(scale=0.5, size=300) > 0).astype(int).to_numpy()
    return X, y


def lgbm() -> lightgbm.LGBMClassifier:
    return lightgbm.LGBMClassifier(n_estimators=5, verbose=-1)


def test_lightgbm_inside_a_pipeline_is_recorded(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    pipe = make_pipeline(SimpleImputer(), lgbm()).fit(X, y)
    model = Model.from_fitted(pipe, X, profile=False)
    assert model.library_versions["sklearn"] == sklearn.__version__
    assert model.library_versions["lightgbm"] == lightgbm.__version__


def test_deeper_compositions_are_walked(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    prep = ColumnTransformer([("num", SimpleImputer(), ["a", "b"])])
    stack = StackingClassifier(
        [("gbm", lgbm()), ("xgb", xgboost.XGBClassifier(n_estimators=3))],
        final_estimator=LogisticRegression(),
        cv=2,
    )
    search = GridSearchCV(Pipeline([("prep", prep), ("model", stack)]), {"model__cv": [2]}, cv=2)
    assert component_libraries(search) == {"sklearn", "lightgbm", "xgboost"}
    search.fit(X, y)
    assert component_libraries(search) == {"sklearn", "lightgbm", "xgboost"}
    versions = Model.from_fitted(search, X, profile=False).library_versions
    assert versions["xgboost"] == xgboost.__version__ and versions["lightgbm"]
    assert "__main__" not in versions and "builtins" not in versions


def _with_versions(model: Model, **versions: str) -> bytes:
    return _rewrite_header(
        model.to_bytes(), library_versions={**model.library_versions, **versions}
    )


def test_a_nested_library_mismatch_warns_on_load(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    model = Model.from_fitted(make_pipeline(SimpleImputer(), lgbm()).fit(X, y), X, profile=False)
    trusted = model.trusted_types()
    same = Model.from_bytes(model.to_bytes(), trusted=trusted)  # no warning: same versions
    np.testing.assert_array_equal(same.predict(X), model.predict(X))
    older = _with_versions(model, lightgbm="3.0.0")
    with pytest.warns(LibraryVersionWarning, match=r"lightgbm 3\.0\.0 and is loaded with") as got:
        Model.from_bytes(older, trusted=trusted)
    assert lightgbm.__version__ in str(got[0].message)
    absent = _with_versions(model, notinstalled_lib="1.2")
    with pytest.warns(LibraryVersionWarning, match="notinstalled_lib is not installed"):
        Model.from_bytes(absent, trusted=trusted)
