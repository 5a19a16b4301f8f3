"""Model flavors: how each supported library's fitted objects become bytes and come back.

A flavor turns a fitted object into bytes in the library's own safe format (skops for
scikit-learn, native model files for LightGBM and XGBoost, a state dict for PyTorch) and
loads them back as an object with ``predict`` (and ``predict_proba`` where the model is a
classifier). Nothing here unpickles arbitrary objects. Libraries are imported only when a
flavor is used, so the extras stay optional.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, Protocol

from conveyor._internal.lazy import import_skops_io
from conveyor.exceptions import ModelError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


class Flavor(Protocol):
    """Saves and loads the fitted objects of one library.

    Attributes:
        name: Recorded with the model (``sklearn``, ``lightgbm``, ``xgboost``, ``torch``).
        module: The library's import name, whose version is recorded and checked on load.
    """

    name: str
    module: str

    def matches(self, obj: Any) -> bool: ...

    def save(self, obj: Any) -> tuple[bytes, dict[str, Any]]:
        """The object's bytes and a small JSON-able description needed to load them."""
        ...

    def load(self, data: bytes, meta: dict[str, Any], trusted: Collection[str] = ()) -> Any:
        """An object with ``predict`` (and ``predict_proba`` for classifiers).

        Args:
            data: The flavor's bytes.
            meta: The description saved with them. A flavor whose bytes name code (types,
                classes) checks those names and records the verified ones in `meta`.
            trusted: Names trusted beyond the fixed allow-list: from the registered
                version's database row or an explicit opt-in, never from the file.

        Raises:
            ModelError: the bytes hold something this flavor did not write, or name code
                that is neither allowed nor trusted.
        """
        ...

    def trusted_types(self, meta: dict[str, Any]) -> list[str]:
        """The names beyond the fixed allow-list these bytes need (recorded at register)."""
        ...


def _mro_names(obj: Any) -> set[str]:
    return {f"{c.__module__}.{c.__qualname__}" for c in type(obj).__mro__}


def library_version(module: str) -> str | None:
    """The installed version of an importable library, or None when it is absent."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    return str(getattr(mod, "__version__", "unknown"))


# ---------------------------------------------------------------------------- scikit-learn
class SklearnFlavor:
    """Any scikit-learn estimator, including Pipeline and ColumnTransformer, via skops."""

    name = "sklearn"
    module = "sklearn"

    def matches(self, obj: Any) -> bool:
        return "sklearn.base.BaseEstimator" in _mro_names(obj) and hasattr(obj, "predict")

    def save(self, obj: Any) -> tuple[bytes, dict[str, Any]]:
        import_skops_io()  # not torch: see the helper
        import skops.io

        try:
            data = bytes(skops.io.dumps(obj))
        except Exception as exc:
            raise ModelError(
                f"skops cannot store this {type(obj).__name__}: {exc}. Models are stored in "
                "a format that loads without running code; use estimators skops supports."
            ) from exc
        # Types beyond skops' default trust list are recorded now, while we know the bytes
        # are ours; on load anything else is refused.
        return data, {"skops_trusted": sorted(skops.io.get_untrusted_types(data=data))}

    def load(self, data: bytes, meta: dict[str, Any], trusted: Collection[str] = ()) -> Any:
        from conveyor.materializers.builtin import load_skops

        # meta["skops_trusted"] is what the file claims: never trusted, only replaced by
        # the list that was verified now.
        obj, found = load_skops(data, trusted, error=ModelError, what="this scikit-learn model")
        meta["skops_trusted"] = found
        return obj

    def trusted_types(self, meta: dict[str, Any]) -> list[str]:
        return [str(n) for n in meta.get("skops_trusted", [])]


# ---------------------------------------------------------------------------- LightGBM
class _BoosterPredictor:
    """A loaded LightGBM or XGBoost booster with the scikit-learn predict interface."""

    def __init__(
        self,
        raw_predict: Callable[[Any], np.ndarray],
        kind: str,
        classes: list[Any] | None,
    ) -> None:
        self._raw_predict = raw_predict
        self.kind = kind
        if classes is not None:
            import numpy as np

            self.classes_ = np.asarray(classes)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        import numpy as np

        raw = np.asarray(self._raw_predict(X))
        if self.kind != "classifier":
            return raw
        return np.asarray(self.classes_[np.argmax(self._proba(raw), axis=1)])

    def _proba(self, raw: np.ndarray) -> np.ndarray:
        import numpy as np

        if raw.ndim == 1:
            return np.column_stack([1.0 - raw, raw])
        return raw


class _ClassifierPredictor(_BoosterPredictor):
    """Only classifiers have predict_proba, so `hasattr(model, "predict_proba")` is honest."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        import numpy as np

        return self._proba(np.asarray(self._raw_predict(X)))


def _predictor(
    raw_predict: Callable[[Any], np.ndarray], kind: str, classes: list[Any] | None
) -> _BoosterPredictor:
    cls = _ClassifierPredictor if kind == "classifier" else _BoosterPredictor
    return cls(raw_predict, kind, classes)


def _classes(obj: Any) -> list[Any] | None:
    classes = getattr(obj, "classes_", None)
    if classes is None:
        return None
    return [c.item() if hasattr(c, "item") else c for c in classes]


def _kind(obj: Any) -> str:
    names = _mro_names(obj)
    if "sklearn.base.ClassifierMixin" in names or getattr(obj, "_estimator_type", "") == (
        "classifier"
    ):
        return "classifier"
    if "sklearn.base.RegressorMixin" in names:
        return "regressor"
    return "booster"


class LightGBMFlavor:
    """LightGBM's scikit-learn estimators and Boosters, as LightGBM model text."""

    name = "lightgbm"
    module = "lightgbm"

    def matches(self, obj: Any) -> bool:
        names = _mro_names(obj)
        return "lightgbm.sklearn.LGBMModel" in names or "lightgbm.basic.Booster" in names

    def save(self, obj: Any) -> tuple[bytes, dict[str, Any]]:
        booster = obj if "lightgbm.basic.Booster" in _mro_names(obj) else obj.booster_
        text: str = booster.model_to_string()
        return text.encode(), {"kind": _kind(obj), "classes": _classes(obj)}

    def trusted_types(self, meta: dict[str, Any]) -> list[str]:
        return []

    def load(self, data: bytes, meta: dict[str, Any], trusted: Collection[str] = ()) -> Any:
        import lightgbm

        booster = lightgbm.Booster(model_str=data.decode())

        def raw_predict(X: Any) -> np.ndarray:
            import numpy as np

            return np.asarray(booster.predict(X))

        return _predictor(raw_predict, str(meta.get("kind")), meta.get("classes"))


# ---------------------------------------------------------------------------- XGBoost
class XGBoostFlavor:
    """XGBoost's scikit-learn estimators and Boosters, as XGBoost UBJSON model files."""

    name = "xgboost"
    module = "xgboost"

    def matches(self, obj: Any) -> bool:
        names = _mro_names(obj)
        return "xgboost.sklearn.XGBModel" in names or "xgboost.core.Booster" in names

    def save(self, obj: Any) -> tuple[bytes, dict[str, Any]]:
        booster = obj if "xgboost.core.Booster" in _mro_names(obj) else obj.get_booster()
        data = bytes(booster.save_raw(raw_format="ubj"))
        meta: dict[str, Any] = {"kind": _kind(obj), "classes": _classes(obj)}
        if meta["kind"] == "classifier":
            meta["n_classes"] = len(meta["classes"] or [])
        return data, meta

    def trusted_types(self, meta: dict[str, Any]) -> list[str]:
        return []

    def load(self, data: bytes, meta: dict[str, Any], trusted: Collection[str] = ()) -> Any:
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(bytearray(data))

        def raw_predict(X: Any) -> np.ndarray:
            matrix = xgboost.DMatrix(X, enable_categorical=True)
            return booster.predict(matrix)  # type: ignore[no-any-return]

        return _predictor(raw_predict, str(meta.get("kind")), meta.get("classes"))


# ---------------------------------------------------------------------------- PyTorch
class _TorchPredictor:
    """A torch module in eval mode fed with the frame's values as float32."""

    def __init__(self, module: Any, classes: list[Any] | None) -> None:
        self.module = module.eval()
        if classes is not None:
            import numpy as np

            self.classes_ = np.asarray(classes)

    def _forward(self, X: Any) -> np.ndarray:
        import numpy as np
        import torch

        values = np.asarray(X, dtype=np.float32)
        with torch.no_grad():
            out = self.module(torch.from_numpy(values))
        return np.asarray(out.detach().cpu().numpy())

    def predict(self, X: Any) -> np.ndarray:
        import numpy as np

        out = self._forward(X)
        if out.ndim == 2 and out.shape[1] > 1:
            labels = np.argmax(out, axis=1)
            return np.asarray(self.classes_[labels]) if hasattr(self, "classes_") else labels
        return out.reshape(-1)

    def predict_proba(self, X: Any) -> np.ndarray:
        import numpy as np

        out = self._forward(X)
        if out.ndim == 1 or out.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-out.reshape(-1)))
            return np.column_stack([1.0 - p, p])
        shifted = np.exp(out - out.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


class TorchFlavor:
    """``torch.nn.Module`` as a state dict plus the class and its constructor arguments.

    The module's class must be importable where the model loads, and constructible from
    the keyword arguments in its ``conveyor_init`` attribute (a dict, empty by default).
    Weights load with ``weights_only=True``: no pickled code runs.
    """

    name = "torch"
    module = "torch"

    def matches(self, obj: Any) -> bool:
        return "torch.nn.modules.module.Module" in _mro_names(obj)

    def save(self, obj: Any) -> tuple[bytes, dict[str, Any]]:
        import torch

        cls = type(obj)
        if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
            raise ModelError(
                f"The torch module class {cls.__qualname__} is defined in __main__ or inside "
                "a function, so it cannot be imported when the model loads. Move it to a "
                "module of your project."
            )
        buffer = io.BytesIO()
        torch.save(obj.state_dict(), buffer)
        init = dict(getattr(obj, "conveyor_init", {}) or {})
        classes = getattr(obj, "classes_", None)
        return buffer.getvalue(), {
            "class": f"{cls.__module__}:{cls.__qualname__}",
            "init": init,
            "classes": None if classes is None else list(classes),
        }

    def trusted_types(self, meta: dict[str, Any]) -> list[str]:
        return [_torch_class_name(meta)]

    def load(self, data: bytes, meta: dict[str, Any], trusted: Collection[str] = ()) -> Any:
        import torch

        # The class is named by the file: it is imported only when torch's own modules
        # define it or the caller trusts it (the version's database row, or an opt-in).
        name = _torch_class_name(meta)
        if not (name.startswith("torch.") or name in trusted):
            from conveyor.materializers.trust import refusal_message

            raise ModelError(refusal_message("this torch model", [name]))
        module_name, _, qualname = str(meta["class"]).partition(":")
        cls: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise ModelError(f"{name} is not a torch.nn.Module class; refusing to build it.")
        init = meta.get("init", {})
        if not isinstance(init, dict):
            raise ModelError("The torch model's constructor arguments must be an object.")
        module = cls(**init)
        state = torch.load(io.BytesIO(data), weights_only=True)
        module.load_state_dict(state)
        return _TorchPredictor(module, meta.get("classes"))


def _torch_class_name(meta: dict[str, Any]) -> str:
    module_name, _, qualname = str(meta.get("class", "")).partition(":")
    return f"{module_name}.{qualname}"


# Checked in order: boosters before scikit-learn, because LightGBM's and XGBoost's
# estimators also derive from scikit-learn's BaseEstimator.
FLAVORS: tuple[Flavor, ...] = (LightGBMFlavor(), XGBoostFlavor(), TorchFlavor(), SklearnFlavor())

SUPPORTED = (
    "scikit-learn estimators with predict (including Pipeline and ColumnTransformer), "
    "LightGBM (LGBMClassifier, LGBMRegressor, Booster), XGBoost (XGBClassifier, "
    "XGBRegressor, Booster), PyTorch (torch.nn.Module)"
)


def flavor_for(obj: Any) -> Flavor:
    """The flavor that can store `obj`.

    Raises:
        ModelError: no flavor fits (lists the supported ones).
    """
    for flavor in FLAVORS:
        if flavor.matches(obj):
            return flavor
    cls = type(obj)
    raise ModelError(
        f"No model flavor for {cls.__module__}.{cls.__qualname__}. Supported: {SUPPORTED}. "
        "Wrap other models in a scikit-learn estimator, or store them as a plain artifact."
    )


def flavor_named(name: str) -> Flavor:
    """The flavor recorded as `name` with a model.

    Raises:
        ModelError: an unknown flavor name (lists the known ones).
    """
    for flavor in FLAVORS:
        if flavor.name == name:
            return flavor
    raise ModelError(
        f"Unknown model flavor {name!r}; known flavors: "
        + ", ".join(f.name for f in FLAVORS)
        + ". The model was saved by a newer conveyor; upgrade conveyor to load it."
    )
