"""Model artifacts for every flavor: round trip through bytes, predict, safety checks."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from conveyor.exceptions import ModelError
from conveyor.materializers.base import default_registry
from conveyor.training.model import LibraryVersionWarning, Model, load


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :6].copy()
    X["region"] = np.where(np.arange(len(X)) % 3 == 0, "north", "south")
    return X, y


def _pipeline(X: pd.DataFrame, y: pd.Series) -> object:
    numeric = [c for c in X.columns if c != "region"]
    features = ColumnTransformer(
        [("num", StandardScaler(), numeric), ("cat", OneHotEncoder(), ["region"])]
    )
    return make_pipeline(features, LogisticRegression(max_iter=1000)).fit(X, y)


def test_sklearn_pipeline_round_trip_applies_fitted_features(cancer) -> None:
    X, y = cancer
    pipe = _pipeline(X, y)
    model = Model.from_fitted(pipe, X.assign(label=y), metrics={"auc": 0.9}, target="label")
    assert model.signature.names == list(X.columns)
    assert model.library_versions["sklearn"]
    loaded = Model.from_bytes(model.to_bytes())
    assert loaded.flavor == "sklearn" and loaded.target == "label"
    assert loaded.metrics == {"auc": 0.9}
    # JSON-decoded rows with shuffled columns and an extra field give the same output.
    rows = pd.DataFrame(X.head(50).to_dict(orient="records")).assign(request_id=1)
    rows = rows[list(reversed(rows.columns))]
    np.testing.assert_array_equal(loaded.predict(rows), pipe.predict(X.head(50)))
    np.testing.assert_allclose(loaded.predict_proba(rows), pipe.predict_proba(X.head(50)))
    np.testing.assert_array_equal(loaded.classes_, [0, 1])


def test_bytes_are_deterministic(cancer) -> None:
    X, y = cancer
    model = Model.from_fitted(_pipeline(X, y), X, profile=False)
    assert model.to_bytes() == model.to_bytes()


def test_regressor_has_no_proba_or_classes() -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = Model.from_fitted(LinearRegression().fit(X, y), X, profile=False)
    loaded = Model.from_bytes(model.to_bytes())
    assert not loaded.has_proba
    assert not hasattr(loaded, "classes_")
    with pytest.raises(ModelError, match="no predict_proba"):
        loaded.predict_proba(X)
    np.testing.assert_allclose(loaded.predict(X), model.predict(X))


def test_lightgbm_classifier_with_categorical_feature(cancer) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    X, y = cancer
    Xc = X.assign(region=X["region"].astype("category"))
    clf = lightgbm.LGBMClassifier(n_estimators=15, verbose=-1).fit(Xc, y)
    loaded = Model.from_bytes(Model.from_fitted(clf, Xc, profile=False).to_bytes())
    assert loaded.flavor == "lightgbm"
    rows = pd.DataFrame(X.to_dict(orient="records"))  # region as plain strings
    np.testing.assert_allclose(loaded.predict_proba(rows), clf.predict_proba(Xc))
    np.testing.assert_array_equal(loaded.predict(rows), clf.predict(Xc))


def test_lightgbm_multiclass_and_booster() -> None:
    lightgbm = pytest.importorskip("lightgbm")
    X, y = load_iris(return_X_y=True, as_frame=True)
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, labels)
    loaded = Model.from_bytes(Model.from_fitted(clf, X, profile=False).to_bytes())
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    assert list(loaded.classes_) == ["setosa", "versicolor", "virginica"]
    booster = lightgbm.train(
        {"objective": "regression", "verbose": -1}, lightgbm.Dataset(X, y), num_boost_round=5
    )
    loaded = Model.from_bytes(Model.from_fitted(booster, X, profile=False).to_bytes())
    np.testing.assert_allclose(loaded.predict(X), booster.predict(X))
    assert not loaded.has_proba


def test_xgboost_classifier_and_regressor(cancer) -> None:
    xgboost = pytest.importorskip("xgboost")
    X, y = cancer
    Xc = X.assign(region=X["region"].astype("category"))
    clf = xgboost.XGBClassifier(n_estimators=10, enable_categorical=True).fit(Xc, y)
    loaded = Model.from_bytes(Model.from_fitted(clf, Xc, profile=False).to_bytes())
    assert loaded.flavor == "xgboost"
    rows = pd.DataFrame(X.to_dict(orient="records"))
    np.testing.assert_allclose(loaded.predict_proba(rows), clf.predict_proba(Xc), rtol=1e-6)
    np.testing.assert_array_equal(loaded.predict(rows), clf.predict(Xc))
    Xd, yd = load_diabetes(return_X_y=True, as_frame=True)
    reg = xgboost.XGBRegressor(n_estimators=5).fit(Xd, yd)
    loaded = Model.from_bytes(Model.from_fitted(reg, Xd, profile=False).to_bytes())
    np.testing.assert_allclose(loaded.predict(Xd), reg.predict(Xd), rtol=1e-6)
    assert not loaded.has_proba


def test_model_is_a_self_serializing_artifact(cancer) -> None:
    X, y = cancer
    model = Model.from_fitted(_pipeline(X, y), X, profile=False)
    registry = default_registry()
    materializer, data, summary = registry.dump(model)
    assert materializer.name == "conveyor.object"
    assert summary["flavor"] == "sklearn" and summary["columns"][0] == "mean radius"
    back = materializer.load(data, summary)
    np.testing.assert_array_equal(back.predict(X), model.predict(X))
    np.testing.assert_array_equal(load(data).predict(X), model.predict(X))


def test_unsupported_model_type_lists_flavors() -> None:
    class Homemade:
        def predict(self, X: object) -> None:
            return None

    with pytest.raises(ModelError) as info:
        Model.from_fitted(Homemade(), pd.DataFrame({"a": [1]}))
    message = str(info.value)
    assert "Homemade" in message
    for flavor in ("scikit-learn", "LightGBM", "XGBoost", "PyTorch"):
        assert flavor in message


def test_missing_target_column_is_named(cancer) -> None:
    X, y = cancer
    with pytest.raises(ModelError, match=r"'labl'.*Did you mean 'label'"):
        Model.from_fitted(_pipeline(X, y), X.assign(label=y), target="labl")


def _rewrite_header(data: bytes, **changes: object) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            payload = src.read(name)
            if name == "model.json":
                header = json.loads(payload)
                for key, value in changes.items():
                    header[key] = value
                payload = json.dumps(header).encode()
            dst.writestr(name, payload)
    return out.getvalue()


def test_loading_with_another_library_version_warns_with_both(cancer) -> None:
    import sklearn

    X, y = cancer
    model = Model.from_fitted(_pipeline(X, y), X, profile=False)
    versions = dict(model.library_versions, sklearn="0.0.1")
    data = _rewrite_header(model.to_bytes(), library_versions=versions)
    with pytest.warns(LibraryVersionWarning) as record:
        loaded = Model.from_bytes(data)
    message = str(record[0].message)
    assert "0.0.1" in message and sklearn.__version__ in message
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def _square(values: object) -> object:
    return np.square(values)


def test_types_beyond_the_allow_list_load_only_when_the_caller_trusts_them(cancer) -> None:
    from sklearn.preprocessing import FunctionTransformer

    X, y = cancer
    Xn = X.drop(columns="region")
    pipe = make_pipeline(FunctionTransformer(_square), DecisionTreeClassifier(max_depth=2))
    model = Model.from_fitted(pipe.fit(Xn, y), Xn, profile=False)
    data = model.to_bytes()
    recorded = model.trusted_types()
    assert any("_square" in t for t in recorded)
    # The list inside the file is never what decides.
    with pytest.raises(ModelError, match="Refusing to load"):
        Model.from_bytes(data)
    loaded = Model.from_bytes(data, trusted=recorded)
    np.testing.assert_array_equal(loaded.predict(Xn), pipe.predict(Xn))


def test_garbage_bytes_are_not_a_model() -> None:
    with pytest.raises(ModelError, match="not a conveyor model"):
        Model.from_bytes(b"hello")


def test_a_loaded_models_profile_decodes_on_first_use(cancer) -> None:
    X, y = cancer
    model = Model.from_fitted(_pipeline(X, y), X)
    data = model.to_bytes()
    loaded = Model.from_bytes(data)
    assert loaded.profile.row_count == model.profile.row_count == len(X)
    assert loaded.profile.to_bytes() == model.profile.to_bytes()
    assert loaded.to_bytes() == data


@pytest.mark.slow
def test_loading_a_model_to_predict_does_not_import_the_profile_code(tmp_path) -> None:
    import subprocess
    import sys

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = Model.from_fitted(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), X)
    path = tmp_path / "model.zip"
    path.write_bytes(model.to_bytes())
    script = (
        "import sys\nfrom pathlib import Path\nimport pandas as pd\n"
        "from conveyor.training.model import Model\n"
        f"m = Model.from_bytes(Path({str(path)!r}).read_bytes())\n"
        "m.predict(pd.DataFrame([[0.0] * 30], columns=m.signature.names))\n"
        "before = 'conveyor.data.profile' in sys.modules\n"
        "print(before, m.profile.row_count)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", str(len(X))]
