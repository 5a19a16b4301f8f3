"""Loading a model never trusts the file: the skops types it names must be on the fixed
allow-list or in the registered version's database row (issue 12, item 1)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from conveyor.config import Settings
from conveyor.exceptions import MaterializerError, ModelError
from conveyor.materializers import trust
from conveyor.materializers.base import default_registry
from conveyor.registry import Registry
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata import open_metadata_store
from conveyor.training.model import Model, load
from tests.unit.training import safe_loading_helpers as helpers


def _skops_call(module: str, name: str, argument: str) -> bytes:
    """A skops file whose root node calls `module.name(argument)` when loaded."""
    schema = {
        "__class__": name,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [
                {
                    "__class__": "str",
                    "__module__": "builtins",
                    "__loader__": "JsonNode",
                    "content": json.dumps(argument),
                    "is_json": True,
                    "__id__": 2,
                }
            ],
            "__id__": 3,
        },
        "__id__": 1,
        "protocol": 2,
        "_skops_version": skops.__version__,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return buffer.getvalue()


def _frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    return X, (X["a"] > 0).to_numpy().astype(int)


def _crafted_model(marker: Path, claimed: list[str]) -> bytes:
    """A conveyor model file whose skops payload runs `touch marker` through posix.system,
    and whose header lists `claimed` as the trusted types."""
    X, y = _frame()
    honest = Model.from_fitted(LogisticRegression().fit(X, y), X, profile=False)
    header = honest.header()
    header["flavor_meta"] = {"skops_trusted": claimed}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.json", json.dumps(header))
        archive.writestr("model.bin", _skops_call("posix", "system", f"touch {marker}"))
    return buffer.getvalue()


def test_a_model_file_listing_posix_system_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = _crafted_model(marker, ["posix.system"])
    with pytest.raises(ModelError) as caught:
        Model.from_bytes(data)
    message = str(caught.value)
    assert "posix.system" in message and "trusted=" in message
    assert not marker.exists()
    with pytest.raises(ModelError):
        load(data)
    assert not marker.exists()


def test_a_library_module_name_resolving_to_foreign_code_is_refused() -> None:
    # What counts is where the resolved object lives, not the name's prefix.
    assert not trust.allowed("sklearn.base.copy")  # the stdlib copy module
    assert not trust.allowed("sklearn.utils._joblib.load")  # joblib.load: unpickles
    assert not trust.allowed("numpy.load")  # allow_pickle can be passed positionally
    assert not trust.allowed("numpy.memmap")  # creates or truncates files
    assert not trust.allowed("builtins.eval") and not trust.allowed("posix.system")
    assert not trust.allowed("os.system") and not trust.allowed("subprocess.Popen")
    assert trust.allowed("sklearn.tree._tree.Tree") and trust.allowed("numpy.dtype")


def test_the_explicit_opt_in_is_the_only_way_to_trust_an_unlisted_type(tmp_path: Path) -> None:
    marker = tmp_path / "opted-in"
    data = _crafted_model(marker, [])
    # The header's claim changes nothing; the caller's explicit list does.
    with pytest.raises(ModelError):
        Model.from_bytes(data)
    assert not marker.exists()
    Model.from_bytes(data, trusted=["posix.system"])
    assert marker.exists()


@pytest.mark.parametrize(
    "estimator",
    [
        RandomForestClassifier(n_estimators=3, random_state=0),
        HistGradientBoostingClassifier(max_iter=3),
        make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()),
    ],
    ids=["forest", "hist-gradient-boosting", "ufunc-transformer"],
)
def test_models_of_the_flavors_libraries_load_without_any_recorded_list(estimator: Any) -> None:
    X, y = _frame()
    model = Model.from_fitted(estimator.fit(X.abs(), y), X.abs(), profile=False)
    loaded = Model.from_bytes(model.to_bytes())
    assert np.array_equal(loaded.predict(X.abs()), model.predict(X.abs()))


def test_a_registered_version_trusts_the_types_its_database_row_records(
    settings: Settings,
) -> None:
    X, y = _frame()
    pipe = make_pipeline(FunctionTransformer(helpers.double), LogisticRegression()).fit(X, y)
    model = Model.from_fitted(pipe, X, profile=False)
    name = f"{helpers.__name__}.double"
    assert model.trusted_types() == [name]
    # Outside the registry the project function is not on the allow-list.
    with pytest.raises(ModelError, match=name):
        Model.from_bytes(model.to_bytes())
    registry = Registry(
        open_metadata_store(settings.db_url), open_artifact_store(settings.artifact_url)
    )
    version = registry.register(model, "doubled")
    assert version.trusted_types == (name,)
    again = Registry(
        open_metadata_store(settings.db_url), open_artifact_store(settings.artifact_url)
    ).resolve("doubled/1")
    assert again.trusted_types == (name,)
    from conveyor.registry import registry as registry_module

    registry_module._CACHE.clear()
    loaded = registry.load("doubled/1")
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_a_loaded_model_records_only_the_types_verified_at_load(tmp_path: Path) -> None:
    X, y = _frame()
    model = Model.from_fitted(RandomForestClassifier(n_estimators=2).fit(X, y), X, profile=False)
    data = model.to_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        header = json.loads(archive.read("model.json"))
        payload = archive.read("model.bin")
    header["flavor_meta"]["skops_trusted"] = ["posix.system", "builtins.eval"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.json", json.dumps(header))
        archive.writestr("model.bin", payload)
    loaded = Model.from_bytes(buffer.getvalue())
    # What a registry would record for this model: the file's claim is gone.
    assert loaded.trusted_types() == ["sklearn.tree._tree.Tree"]


def test_the_sklearn_materializer_refuses_types_its_artifact_row_does_not_record(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "materializer"
    materializer = default_registry().by_name("sklearn.skops")
    data = _skops_call("posix", "system", f"touch {marker}")
    with pytest.raises(MaterializerError, match=r"posix\.system"):
        materializer.load(data, {"skops_trusted": []})
    assert not marker.exists()
