"""What the serving layer needs from a model, and where loaded models come from.

`Servable` wraps one loaded model version: its name, version, validation rules and one
`predict_frame` call that returns predictions and, for classifiers, probabilities in a
single pass. A `ModelSource` tells which version a reference points at now (a cheap
query, polled for hot reload) and loads a given version.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from conveyor.exceptions import ServingError
from conveyor.serving.validation import ColumnRule, Unseen, Validator, rules_from_signature

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from conveyor.registry import Registry


@dataclass
class Servable:
    """One loaded model version, ready to answer.

    Attributes:
        name: Registered model name.
        version: Version label (the registry's integer version, as a string).
        rules: Input column rules from the model signature.
        predictor: Callable taking a frame, returning (predictions, probabilities | None).
        classes: Class labels in probability column order, or None.
        flavor: The model flavor, for metadata.
        model: The underlying model object (a `conveyor.training.model.Model`, usually).
    """

    name: str
    version: str
    rules: tuple[ColumnRule, ...]
    predictor: Any
    classes: list[Any] | None = None
    flavor: str = "unknown"
    model: Any = None
    _validators: dict[str, Validator] = field(default_factory=dict, repr=False)

    def predict_frame(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        result: tuple[np.ndarray, np.ndarray | None] = self.predictor(frame)
        return result

    def validator(self, unseen: Unseen) -> Validator:
        validator = self._validators.get(unseen)
        if validator is None:
            validator = self._validators[unseen] = Validator(self.rules, unseen)
        return validator


def servable_from_model(model: Any, name: str, version: str) -> Servable:
    """Wrap a conveyor `Model` (predict, optional predict_proba, signature, flavor).

    For a classifier exposing ``classes_`` and ``predict_proba``, predictions are the
    most probable class, computed from the one probability call: a second pass through
    the model (a forest, say) would double the cost of every batch.
    """
    signature = getattr(model, "signature", None)
    if signature is None:
        raise ServingError(
            f"Model {name} version {version} has no input signature, so the server cannot "
            "validate requests. Register it with Model.from_fitted(estimator, train_frame)."
        )
    import numpy as np

    rules = rules_from_signature(signature)
    classes = getattr(model, "classes_", None)
    has_proba = bool(getattr(model, "has_proba", False))
    predictor: Any
    if has_proba and classes is not None:
        labels = np.asarray(classes)
        predict_proba = _direct(model, "predict_proba")

        def predictor(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
            proba = np.asarray(predict_proba(frame))
            return labels.take(proba.argmax(axis=1)), proba

    else:
        predict = _direct(model, "predict")

        def predictor(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
            return np.asarray(predict(frame)), None

    return Servable(
        name=name,
        version=str(version),
        rules=rules,
        predictor=predictor,
        classes=[c.item() if hasattr(c, "item") else c for c in classes]
        if (has_proba and classes is not None)
        else None,
        flavor=str(getattr(model, "flavor", "unknown")),
        model=model,
    )


def _direct(model: Any, method: str) -> Any:
    """`model.<method>`, skipping the Model's signature coercion where it changes nothing.

    `Model.predict` casts every column to its training dtype, which costs more than the
    model call for a small forest. For an all-float64 signature, a frame of float64
    columns in signature order (what the server and the validator build) is already what
    the coercion would return, so the fitted object is called directly.

    A scikit-learn estimator fitted on a frame whose columns are the signature's (its
    ``feature_names_in_``) is called with the frame's float64 array instead: its checks of
    a DataFrame input (dtypes, feature names, through pandas) cost a one-row LR pipeline
    three times its arithmetic. The first call computes both and keeps the array path
    only when it returns the same values (an estimator that needs column names, a
    ColumnTransformer selecting by name say, stays on frames).
    """
    wrapped = getattr(model, method)
    signature = getattr(model, "signature", None)
    obj = getattr(model, "obj", None)
    if (
        obj is None
        or signature is None
        or not all(
            spec.dtype == "float" and spec.pandas_dtype in (None, "float64")
            for spec in signature.columns
        )
    ):
        return wrapped
    import numpy as np

    raw = getattr(obj, method)
    names = list(signature.names)
    f64 = np.dtype(np.float64)
    fitted = getattr(obj, "feature_names_in_", None)
    by_array = _ArrayPath(raw) if fitted is not None and list(fitted) == names else None

    def call(frame: pd.DataFrame) -> Any:
        if frame.columns.tolist() != names:
            return wrapped(frame)
        if by_array is not None and by_array.usable is not False:
            values = frame.to_numpy()
            if values.dtype == f64:
                return by_array(frame, values)
        if all(d == f64 for d in frame.dtypes):
            return raw(frame)
        return wrapped(frame)

    return call


# What scikit-learn says when an estimator fitted on a frame gets an array: expected on
# the array path, whose columns were checked against the fitted names beforehand.
_NO_NAMES = "X does not have valid feature names"


class _ArrayPath:
    """Calls a fitted estimator with an array, once shown to answer as with the frame."""

    __slots__ = ("raw", "usable")

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.usable: bool | None = None  # None: not tried yet

    def _quiet(self, values: np.ndarray) -> Any:
        import warnings

        # catch_warnings swaps the process-wide filter list (not thread-safe before 3.14).
        # The server calls this from its one model thread; the filter added hides nothing
        # but the message above, so a racing thread can at worst keep that one filter.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NO_NAMES, category=UserWarning)
            return self.raw(values)

    def __call__(self, frame: pd.DataFrame, values: np.ndarray) -> Any:
        if self.usable:
            return self._quiet(values)
        import numpy as np

        expected = self.raw(frame)
        try:
            got = self._quiet(values)
            same = np.array_equal(np.asarray(got), np.asarray(expected))
        except Exception:
            same = False
        self.usable = same
        return expected


class ModelSource(Protocol):
    """Where the served model comes from.

    Implementations are called from worker threads; `current_version` must be cheap (it
    is polled for hot reload) and `load` may be slow.
    """

    name: str
    ref: str

    def current_version(self) -> str:
        """The version the reference points at now.

        Raises:
            ConveyorError: the reference cannot be resolved.
        """
        ...

    def load(self, version: str) -> Servable:
        """Load the given version.

        Raises:
            ConveyorError: the version cannot be loaded.
        """
        ...


async def load_if_moved(source: ModelSource, live: Servable | None) -> Servable | None:
    """The version the source points at now, loaded beside `live`; None when unchanged.

    Both calls run in worker threads, so the event loop keeps serving meanwhile. Used by
    the online server and the stream scorer for hot reload.

    Raises:
        ConveyorError: the reference cannot be resolved or the version cannot be loaded.
    """
    import asyncio

    version = await asyncio.to_thread(source.current_version)
    if live is not None and version == live.version:
        return None
    return await asyncio.to_thread(source.load, version)


class FixedSource:
    """Serve one in-memory model; the version moves only when `replace` is called."""

    def __init__(self, model: Any, name: str, version: str = "1") -> None:
        self.name = name
        self.ref = f"{name}:{version}"
        self._lock = threading.Lock()
        self._models: dict[str, Any] = {str(version): model}
        self._version = str(version)

    def replace(self, model: Any, version: str) -> None:
        """Point the source at another model (what moving an alias does in a registry)."""
        with self._lock:
            self._models[str(version)] = model
            self._version = str(version)

    def current_version(self) -> str:
        return self._version

    def load(self, version: str) -> Servable:
        with self._lock:
            model = self._models[version]
        if isinstance(model, Servable):
            return model
        return servable_from_model(model, self.name, version)


class RegistrySource:
    """A registry reference such as ``churn@production``, resolved on every poll.

    Args:
        ref: ``name@alias``, ``name/VERSION`` or ``name`` (latest version).
        registry: The registry to ask; by default the one of the current settings.
        trusted: Type names to trust beyond the allow-list and the version's recorded
            list (explicit opt-in, e.g. for versions registered before they were recorded).
    """

    def __init__(
        self, ref: str, registry: Registry | None = None, *, trusted: Collection[str] = ()
    ) -> None:
        from conveyor.registry import ModelRef

        self.ref = ref
        self.name = ModelRef.parse(ref).name
        self._registry = registry
        self.trusted = frozenset(trusted)

    def _get(self) -> Registry:
        if self._registry is None:
            from conveyor.registry import get_registry

            self._registry = get_registry()
        return self._registry

    def current_version(self) -> str:
        return str(self._get().resolve(self.ref).version)

    def load(self, version: str) -> Servable:
        from conveyor.serving.modelcache import load_model

        registry = self._get()
        found = registry.resolve(f"{self.name}/{version}")
        model = load_model(
            registry.artifact_store,
            found.content_hash,
            metadata=registry.metadata_store,
            trusted=self.trusted | set(found.trusted_types),
            flavor=found.flavor,
        )
        servable = servable_from_model(model, self.name, version)
        _record_loaded(registry, self.ref, self.name, version)
        return servable


def _record_loaded(registry: Registry, ref: str, name: str, version: str) -> None:
    """A server_loaded event: which process now answers `ref` with which version."""
    import os
    import socket

    from conveyor.stores.metadata import events as ev

    where = f"{socket.gethostname()}:{os.getpid()}"
    ev.emit(
        registry.metadata_store.engine,
        ev.SERVER_LOADED,
        ref,
        f"{where} loaded {name}/{version} for {ref}",
        links={"model_version": f"{name}/{version}"},
        data={"host": socket.gethostname(), "pid": os.getpid()},
    )


if TYPE_CHECKING:
    _fixed: ModelSource = FixedSource(None, "m")
    _registry: ModelSource = RegistrySource("m@production")
