"""`Model`: a fitted object with its signature, training Profile, metrics and versions.

A `Model` is what a training step returns and what the registry stores and serves. It
serializes itself (a small zip: ``model.json`` + the flavor's bytes + the Profile), so a
``@step`` returning one is stored as an artifact, and every flavor loads back as an object
with ``predict`` and, for classifiers, ``predict_proba``.
"""

from __future__ import annotations

import io
import json
import logging
import platform
import warnings
import zipfile
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from conveyor._version import __version__
from conveyor.exceptions import ModelError
from conveyor.training.flavors import flavor_for, flavor_named, library_version
from conveyor.training.signature import Signature

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

logger = logging.getLogger("conveyor.training")

FORMAT_VERSION = 1
# A fixed timestamp in zip entries, so equal models give equal bytes (and one blob).
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


class LibraryVersionWarning(UserWarning):
    """A model is loaded with another version of its library than it was trained with."""


def _profile_class() -> Any:
    """`conveyor.data.profile.Profile` when that module is available, else None."""
    try:
        from conveyor.data import profile as profile_module  # type: ignore[attr-defined]
    except ImportError:
        return None
    return getattr(profile_module, "Profile", None)


# Attributes through which estimators hold other estimators, beyond get_params(): fitted
# clones (ensembles, searches, calibration, stacking) and Pipeline / ColumnTransformer parts.
_NESTED = (
    "steps",
    "transformers",
    "transformers_",
    "estimator",
    "estimator_",
    "estimators",
    "estimators_",
    "base_estimator",
    "base_estimator_",
    "best_estimator_",
    "final_estimator",
    "final_estimator_",
    "calibrated_classifiers_",
    "named_estimators_",
)
# Not libraries a model depends on in the sense of a version check.
_NOT_LIBRARIES = frozenset({"builtins", "__main__", "conveyor", "python"})
# Recorded for every model; checked on load only as the flavor's own library or a component.
_ENVIRONMENT = ("numpy", "pandas")


def component_libraries(obj: Any, limit: int = 100_000) -> set[str]:
    """Top-level packages of every estimator inside `obj` (itself included).

    Walks scikit-learn composition: `get_params(deep=False)` at every level plus the
    fitted parts (`steps`, `transformers_`, `estimators_`, `best_estimator_`, ...), so
    a LightGBM model inside a Pipeline inside a search is found. Only objects that fit,
    predict or transform count as estimators.
    """
    seen: set[int] = set()
    stack = [obj]
    roots: set[str] = set()
    while stack and len(seen) < limit:
        item = stack.pop()
        if id(item) in seen or item is None or isinstance(item, (str, bytes, int, float)):
            continue
        seen.add(id(item))
        if isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
            continue
        if isinstance(item, Mapping):
            stack.extend(item.values())
            continue
        if not any(callable(getattr(type(item), m, None)) for m in ("fit", "predict", "transform")):
            continue
        roots.add(type(item).__module__.partition(".")[0])
        get_params = getattr(item, "get_params", None)
        if callable(get_params):
            try:
                stack.extend(get_params(deep=False).values())
            except Exception:  # an estimator whose params cannot be read is still counted
                pass
        for name in _NESTED:
            try:
                value = getattr(item, name, None)
            except Exception:  # a property of an unfitted estimator may raise
                continue
            if value is not None:
                stack.append(value)
    return {root for root in roots if root and root not in _NOT_LIBRARIES}


def _versions(flavor_module: str, obj: Any = None) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    nested = sorted(component_libraries(obj) - {flavor_module}) if obj is not None else []
    for module in (*_ENVIRONMENT, flavor_module, *nested):
        version = library_version(module)
        if version is not None and (version != "unknown" or module not in nested):
            versions[module] = version
    versions["conveyor"] = __version__
    return versions


def installed_version(module: str) -> str | None:
    """The installed version of `module` without importing anything new.

    An imported module answers with its ``__version__``; otherwise the installed
    distribution's metadata is read (no code of the package runs), so a library name
    read from a model file never chooses code to import.
    """
    import sys
    from importlib import metadata

    loaded = sys.modules.get(module)
    if loaded is not None:
        return str(getattr(loaded, "__version__", "unknown"))
    for dist in metadata.packages_distributions().get(module, []):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def check_component_versions(
    trained: Mapping[str, str], flavor_module: str, *, stacklevel: int = 3
) -> None:
    """Warn for each library of the model's components whose installed version differs.

    Args:
        trained: The versions recorded with the model (`Model.library_versions`).
        flavor_module: The flavor's own library, checked by the caller.
        stacklevel: Passed to `warnings.warn`, so the warning names the user's call.
    """
    skip = {flavor_module, *_ENVIRONMENT, *_NOT_LIBRARIES}
    for module, recorded in sorted(trained.items()):
        if module in skip:
            continue
        current = installed_version(module)
        if current is None:
            warnings.warn(
                f"This model holds a {module} component (trained with {module} {recorded}) "
                f"but {module} is not installed; loading or predicting may fail. Install "
                f"{module}=={recorded}.",
                LibraryVersionWarning,
                stacklevel=stacklevel,
            )
        elif current != recorded:
            warnings.warn(
                f"This model was trained with {module} {recorded} and is loaded with "
                f"{module} {current}; predictions may differ. Install {module}=={recorded} "
                "or retrain and register a new version.",
                LibraryVersionWarning,
                stacklevel=stacklevel,
            )


class Model:
    """A fitted model ready to register, load and serve.

    Attributes:
        flavor: The library family (``sklearn``, ``lightgbm``, ``xgboost``, ``torch``).
        obj: The fitted object (after `load`, the flavor's loaded object).
        signature: Input columns, dtypes and categorical domains of the training frame.
        profile: The training data Profile (a ``conveyor.data.profile.Profile``, or its
            bytes when that module is not available), or None.
        metrics: Metrics recorded with the model (e.g. validation scores).
        library_versions: Versions of python, numpy, pandas and the flavor's library at
            training time.
        target: Name of the label column of the training frame, when given.
        flavor_meta: What the flavor needs to load its bytes (JSON-able).
    """

    __conveyor_artifact__ = True

    def __init__(
        self,
        *,
        flavor: str,
        obj: Any,
        signature: Signature,
        profile: Any = None,
        metrics: Mapping[str, float] | None = None,
        library_versions: Mapping[str, str] | None = None,
        target: str | None = None,
        flavor_meta: Mapping[str, Any] | None = None,
        data: bytes | None = None,
    ) -> None:
        self.flavor = flavor
        self.obj = obj
        self.signature = signature
        self._profile = profile
        self.metrics: dict[str, float] = {k: float(v) for k, v in (metrics or {}).items()}
        self.library_versions: dict[str, str] = dict(library_versions or {})
        self.target = target
        self.flavor_meta: dict[str, Any] = dict(flavor_meta or {})
        self._data = data  # the flavor's bytes, once computed

    # ------------------------------------------------------------------ building
    @classmethod
    def from_fitted(
        cls,
        obj: Any,
        train_frame: pd.DataFrame,
        metrics: Mapping[str, float] | None = None,
        *,
        target: str | None = None,
        profile: bool = True,
    ) -> Model:
        """Wrap a fitted estimator with what it was trained on.

        Args:
            obj: A fitted scikit-learn estimator or Pipeline, LightGBM or XGBoost model,
                or a torch module.
            train_frame: The training frame. Its columns, without `target`, become the
                signature; the whole frame is profiled.
            metrics: Scores to keep with the model.
            target: The label column of `train_frame`, if it holds one.
            profile: Compute the training Profile (when conveyor.data is available).

        Raises:
            ModelError: no flavor supports `obj` (lists the supported ones), or `target`
                is not a column of the frame.
        """
        flavor = flavor_for(obj)
        features = train_frame
        if target is not None:
            if target not in train_frame.columns:
                from conveyor.exceptions import did_you_mean

                raise ModelError(
                    f"The target column {target!r} is not in the training frame."
                    + did_you_mean(target, [str(c) for c in train_frame.columns])
                )
            features = train_frame.drop(columns=[target])
        signature = Signature.from_frame(features)
        profile_value = None
        profile_cls = _profile_class() if profile else None
        if profile_cls is not None:
            try:
                profile_value = profile_cls.from_frame(train_frame)
            except Exception as exc:
                # The Profile is an extra (drift baseline); a frame it cannot describe must
                # not stop training. The reason is logged for the user.
                logger.warning("The training frame could not be profiled: %s", exc)
        return cls(
            flavor=flavor.name,
            obj=obj,
            signature=signature,
            profile=profile_value,
            metrics=metrics,
            library_versions=_versions(flavor.module, obj),
            target=target,
        )

    @property
    def profile(self) -> Any:
        """The training data Profile, or None.

        A loaded model keeps the Profile's bytes and decodes them on first use, so loading a
        model to predict does not import what profiles need (pyarrow, the sketches).
        """
        # Models pickled before this was a property (serving caches) hold `profile`.
        value = self.__dict__.get("_profile", self.__dict__.get("profile"))
        if isinstance(value, bytes):
            profile_cls = _profile_class()
            if profile_cls is not None:
                value = self._profile = profile_cls.from_bytes(value)
        return value

    @profile.setter
    def profile(self, value: Any) -> None:
        self._profile = value

    # ------------------------------------------------------------------ predicting
    def _frame(self, X: Any) -> pd.DataFrame:
        import pandas as pd

        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(X, columns=self.signature.names)
        return self.signature.coerce(X)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions for the rows of `X` (a DataFrame with the signature's columns).

        Raises:
            ModelError: a column is missing or cannot be cast to its training type.
        """
        import numpy as np

        return np.asarray(self.obj.predict(self._frame(X)))

    @property
    def has_proba(self) -> bool:
        return callable(getattr(self.obj, "predict_proba", None))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of `classes_`.

        Raises:
            ModelError: the model is not a probabilistic classifier.
        """
        import numpy as np

        method = getattr(self.obj, "predict_proba", None)
        if not callable(method):
            raise ModelError(
                f"This {self.flavor} model ({type(self.obj).__name__}) has no predict_proba: "
                "it is not a probabilistic classifier. Use predict."
            )
        return np.asarray(method(self._frame(X)))

    def __getattr__(self, name: str) -> Any:
        # `classes_` exists exactly when the fitted object has it.
        if name == "classes_":
            obj = self.__dict__.get("obj")
            if obj is not None and hasattr(obj, "classes_"):
                return obj.classes_
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ------------------------------------------------------------------ bytes
    def _flavor_bytes(self) -> bytes:
        if self._data is None:
            data, meta = flavor_named(self.flavor).save(self.obj)
            self._data = data
            self.flavor_meta = meta
        return self._data

    def header(self) -> dict[str, Any]:
        """The JSON-able description stored as ``model.json``."""
        self._flavor_bytes()
        return {
            "format": FORMAT_VERSION,
            "flavor": self.flavor,
            "flavor_meta": self.flavor_meta,
            "estimator": f"{type(self.obj).__module__}.{type(self.obj).__qualname__}",
            "signature": self.signature.to_dict(),
            "metrics": self.metrics,
            "library_versions": self.library_versions,
            "target": self.target,
        }

    def to_bytes(self) -> bytes:
        header = self.header()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, payload in (
                ("model.json", json.dumps(header, sort_keys=True).encode()),
                ("model.bin", self._flavor_bytes()),
                ("profile.bin", self._profile_bytes()),
            ):
                if payload is None:
                    continue
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, payload)
        return buffer.getvalue()

    def _profile_bytes(self) -> bytes | None:
        value = self.__dict__.get("_profile", self.__dict__.get("profile"))
        if value is None:
            return None
        if isinstance(value, bytes):
            return value
        return bytes(value.to_bytes())

    def self_contained(self) -> Model:
        """A copy holding everything `to_bytes` writes, ready to pickle.

        The Profile is kept as its bytes (decoded on first use, as after `from_bytes`) and
        the flavor's bytes and description are computed, so the unpickled copy writes the
        same bytes back and records the same trusted names, without importing the flavor's
        serializer.
        """
        data = self._flavor_bytes()
        return Model(
            flavor=self.flavor,
            obj=self.obj,
            signature=self.signature,
            profile=self._profile_bytes(),
            metrics=self.metrics,
            library_versions=self.library_versions,
            target=self.target,
            flavor_meta=self.flavor_meta,
            data=data,
        )

    def lean(self) -> Model:
        """A copy without the Profile and the flavor's bytes: what answering requests needs.

        Writing it (`to_bytes`) serializes the fitted object again.
        """
        return Model(
            flavor=self.flavor,
            obj=self.obj,
            signature=self.signature,
            metrics=self.metrics,
            library_versions=self.library_versions,
            target=self.target,
            flavor_meta=self.flavor_meta,
        )

    def trusted_types(self) -> list[str]:
        """The code names (types, classes) this model's bytes need beyond the allow-list.

        Recorded in the registry's database row when the model is registered, so the
        registered version loads without trusting anything its file says. For a model
        built in this process they come from the live object; for a loaded one, they are
        the names verified when it was loaded.
        """
        self._flavor_bytes()
        return sorted(flavor_named(self.flavor).trusted_types(self.flavor_meta))

    @classmethod
    def from_artifact(cls, data: bytes, summary: Mapping[str, Any]) -> Model:
        """Load a stored artifact; `summary` is its database row's summary."""
        return cls.from_bytes(data, trusted=summary.get("trusted_types") or ())

    @classmethod
    def from_bytes(cls, data: bytes, *, trusted: Collection[str] = ()) -> Model:
        """Load a model written by `to_bytes`.

        Nothing the file says decides which code runs: the types its bytes name must be on
        the fixed allow-list of the flavors' libraries (see
        `conveyor.materializers.trust`) or in `trusted`.

        Warns with `LibraryVersionWarning` when the flavor's library version differs from
        the one the model was trained with.

        Args:
            data: The model's bytes.
            trusted: Type names to trust beyond the allow-list: the list the registry
                recorded for these bytes, or names you reviewed (explicit opt-in).

        Raises:
            ModelError: the bytes are not a conveyor model, its flavor's library is not
                installed, or they name a type that is neither allowed nor trusted.
        """
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                header = json.loads(archive.read("model.json"))
                payload = archive.read("model.bin")
                names = set(archive.namelist())
                profile_bytes = archive.read("profile.bin") if "profile.bin" in names else None
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise ModelError(f"These bytes are not a conveyor model: {exc}.") from exc
        if int(header.get("format", 0)) > FORMAT_VERSION:
            raise ModelError(
                f"This model was written in format {header['format']}; this conveyor reads "
                f"up to {FORMAT_VERSION}. Upgrade conveyor to load it."
            )
        flavor = flavor_named(str(header["flavor"]))
        trained = dict(header.get("library_versions", {}))
        current = library_version(flavor.module)
        if current is None:
            raise ModelError(
                f"This is a {flavor.name} model but {flavor.module} is not installed. "
                f"Install {flavor.module}=={trained.get(flavor.module, '')}".rstrip("=")
                + " to load it."
            )
        recorded = trained.get(flavor.module)
        if recorded is not None and recorded != current:
            warnings.warn(
                f"This model was trained with {flavor.module} {recorded} and is loaded with "
                f"{flavor.module} {current}; predictions may differ. Install "
                f"{flavor.module}=={recorded} or retrain and register a new version.",
                LibraryVersionWarning,
                stacklevel=2,
            )
        meta = dict(header.get("flavor_meta", {}))
        obj = flavor.load(payload, meta, frozenset(trusted))
        # After loading: the components' modules are imported by now, so no lookup is slow.
        check_component_versions(trained, flavor.module)
        return cls(
            flavor=flavor.name,
            obj=obj,
            signature=Signature.from_dict(header["signature"]),
            profile=profile_bytes,  # decoded on first use of `profile`
            metrics=header.get("metrics"),
            library_versions=trained,
            target=header.get("target"),
            flavor_meta=meta,
            data=payload,
        )

    def artifact_summary(self) -> dict[str, Any]:
        """What the UI and `conveyor runs show` display for a Model artifact."""
        return {
            "flavor": self.flavor,
            "estimator": f"{type(self.obj).__module__}.{type(self.obj).__qualname__}",
            "columns": self.signature.names[:200],
            "metrics": self.metrics,
            "library_versions": self.library_versions,
            "trusted_types": self.trusted_types(),
        }

    def __repr__(self) -> str:
        return (
            f"Model(flavor={self.flavor!r}, estimator={type(self.obj).__name__}, "
            f"columns={len(self.signature.columns)})"
        )


def load(source: bytes | str, *, trusted: Collection[str] = ()) -> Model:
    """A Model from its bytes or from a registry reference (``name@alias``, ``name/3``).

    Args:
        source: The model's bytes, or a registry reference.
        trusted: For bytes, type names to trust beyond the allow-list (explicit opt-in);
            a registered version uses the list recorded in its database row.

    Raises:
        ModelError: the bytes are not a model, or name a type that is not trusted.
        NotFoundError: the reference names no registered model version.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return Model.from_bytes(bytes(source), trusted=trusted)
    from conveyor.registry.registry import load_model

    return load_model(source)
