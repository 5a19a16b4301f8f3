"""The `Model` a distributed fit returns: built from the data's partitions, not its rows.

The signature comes from the first partition (column order, dtypes, categories), the
Profile is merged from per-partition profiles computed on the workers, and the fitted
object goes through its flavor's bytes once, so what the fit returns is exactly what the
registry stores and every server loads (no live client or process group inside).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import DataError
from conveyor.training.flavors import flavor_for

if TYPE_CHECKING:
    from conveyor.data.partitioned import DatasetRef
    from conveyor.training.model import Model
    from conveyor.training.signature import Signature


def feature_columns(
    ref: DatasetRef, target: str | None, features: Sequence[str] | None
) -> list[str]:
    """The feature columns of a fit: `features`, or every column but `target`.

    Raises:
        DataError: an unknown column, or a target that is also a feature.
    """
    if target is not None:
        ref.check_columns([target])
    if features is None:
        return [c for c in ref.column_names if c != target]
    ref.check_columns(features)
    if target is not None and target in features:
        raise DataError(f"The target column {target!r} is also listed among the features.")
    if not features:
        raise DataError("A fit needs at least one feature column.")
    return list(features)


def build_model(
    obj: Any,
    ref: DatasetRef,
    *,
    target: str | None,
    features: Sequence[str],
    metrics: Mapping[str, float],
    profile: Any,
    signature: Signature | None = None,
) -> Model:
    """A Model of `obj` trained on `ref`, loaded back from its own bytes.

    `signature` is the features' Signature when already known (computed on a worker);
    otherwise it is inferred from the first partition, read here.
    """
    from conveyor.training.model import Model, _versions
    from conveyor.training.signature import Signature

    if signature is None:
        signature = Signature.from_frame(ref.read_partition(0, list(features)))
    built = Model(
        flavor=flavor_for(obj).name,
        obj=obj,
        signature=signature,
        metrics=metrics,
        library_versions=_versions(flavor_for(obj).module),
    )
    built.profile = profile
    built.target = target
    trusted = built.trusted_types()
    loaded = Model.from_bytes(built.to_bytes(), trusted=trusted)
    return loaded
