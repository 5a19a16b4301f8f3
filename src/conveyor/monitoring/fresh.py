"""Fresh data for retraining: a monitor's prediction log joined with its labels, as a new
dataset version whose origin names the windows (and their reports) the rows came from.

The rows are the model's input columns as they were served, plus the label under the
model's target name, so the version trains like the original training frame did.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.exceptions import ConfigError, DataError
from conveyor.stores.metadata import tables_monitoring as tm

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from conveyor.data.datasets import DatasetVersion
    from conveyor.monitoring.monitor import Monitor
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore


def parse_moment(value: str | float | dt.datetime | None, now: float | None = None) -> float | None:
    """Epoch seconds from an epoch number, a datetime, an ISO time (UTC unless it names a
    zone) or a duration back from now (``7d``, ``12h``, ``30m``).

    Raises:
        ConfigError: none of these.
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return stamp.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        from conveyor.monitoring.monitor import parse_window

        try:
            return (time.time() if now is None else now) - parse_window(value)
        except ConfigError:
            raise ConfigError(
                f"{value!r} is not a time. Use an ISO time such as 2026-01-31T14:00 (UTC "
                "unless a zone is given) or a duration back from now such as 7d or 12h."
            ) from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)).timestamp()


def dataset_from_predictions(
    monitor: str | Monitor,
    *,
    labeled: bool = False,
    since: str | float | dt.datetime | None = None,
    until: str | float | dt.datetime | None = None,
    name: str | None = None,
    metadata_store: MetadataStore | None = None,
    artifact_store: ArtifactStore | None = None,
) -> DatasetVersion:
    """Turn a monitor's logged predictions (joined with labels) into a dataset version.

    Args:
        monitor: The monitor (or its name) whose model's prediction log is read.
        labeled: Keep only the rows that have a label; otherwise unlabeled rows are kept
            with a null label.
        since: First moment included (epoch, datetime, ISO time or ``7d`` back from now);
            default: the start of the log.
        until: End, excluded; default: now.
        name: Dataset name; default ``<monitor>-fresh``.

    Returns:
        The new version (or the existing one when the rows are identical). Its
        ``origin`` records the monitor, model, time range and, per window and model
        version, the rows taken and the monitor report of that window.

    Raises:
        NotFoundError: no such monitor, or its model is not registered.
        DataError: no logged rows (or no labeled rows) in the range. Nothing is written.
    """
    import numpy as np
    import pyarrow as pa

    from conveyor.data.datasets import register_dataset
    from conveyor.monitoring.monitor import Monitor, _row_in_request
    from conveyor.registry.refs import ModelRef
    from conveyor.stores.defaults import default_stores

    metadata_store, artifact_store = default_stores(metadata_store, artifact_store)
    if isinstance(monitor, str):
        monitor = Monitor.get(monitor, metadata_store=metadata_store, artifact_store=artifact_store)
    now = time.time()
    start = parse_moment(since, now)
    end = parse_moment(until, now)
    low, high = (0.0 if start is None else start), (now + 1e-3 if end is None else end)
    if high <= low:
        raise ConfigError(f"since must be before until. Got {since!r} and {until!r}.")
    model = monitor.registry.load(monitor.model)
    target = model.target or "label"
    features = [n for n in model.signature.names if n != target]
    model_name = ModelRef.parse(monitor.model).name

    parts: list[pa.Table] = []
    stamps: list[np.ndarray] = []
    versions: list[np.ndarray] = []
    has_label: list[np.ndarray] = []
    for table in monitor._tables(model_name, low, high):
        missing = [f for f in features if f not in table.column_names]
        if missing:
            served = sorted({str(v) for v in table.column("_model_version").to_pylist()})
            raise DataError(
                f"Predictions logged by {model_name} version(s) {', '.join(served)} lack "
                f"the columns {', '.join(missing)} that {monitor.model} takes; narrow "
                "--since/--until to traffic served with the current inputs."
            )
        labels: list[Any] = [None] * table.num_rows
        if "_request_id" in table.column_names:
            ids = table.column("_request_id").to_numpy(zero_copy_only=False)
            found = monitor.labels_for(ids)
            labels = [
                found.get((str(i), int(r))) for i, r in zip(ids, _row_in_request(ids), strict=True)
            ]
        mask = np.array([value is not None for value in labels], dtype=bool)
        keep = mask if labeled else np.ones(len(labels), dtype=bool)
        if not keep.any():
            continue
        chosen = table.select(features).filter(pa.array(keep))
        kept_labels = [v for v, k in zip(labels, keep, strict=True) if k]
        parts.append(chosen.append_column(target, _label_array(kept_labels, model)))
        moments = table.column("_timestamp").cast(pa.timestamp("us", "UTC"))
        stamps.append(moments.cast(pa.int64()).to_numpy(zero_copy_only=False)[keep] / 1e6)
        logged = table.column("_model_version").to_numpy(zero_copy_only=False)
        versions.append(np.asarray(logged, dtype=np.int64)[keep])
        has_label.append(mask[keep])
    span = f"in [{_iso(low)}, {_iso(high)})"
    if not parts:
        raise DataError(
            f"Monitor {monitor.name} has no {'labeled ' if labeled else ''}logged predictions "
            f"of {model_name} {span}. "
            + (
                "Add labels with `conveyor labels add`, or widen --since."
                if labeled
                else "Serve the model with its prediction log on, or widen --since."
            )
        )
    frame = pa.concat_tables(parts, promote_options="default")
    windows = _windows(
        monitor,
        np.concatenate(stamps),
        np.concatenate(versions),
        np.concatenate(has_label),
    )
    origin = {
        "kind": "predictions",
        "source": f"monitor {monitor.name} ({model_name} prediction log)",
        "monitor": monitor.name,
        "model": monitor.model,
        "target": target,
        "labeled": labeled,
        "since": start,
        "until": end if end is not None else high,
        "rows": frame.num_rows,
        "labeled_rows": int(sum(int(m.sum()) for m in has_label)),
        "model_versions": sorted({int(v) for v in np.concatenate(versions)}),
        "windows": windows,
    }
    return register_dataset(
        name or f"{monitor.name}-fresh",
        frame,
        origin=origin,
        metadata_store=metadata_store,
        artifact_store=artifact_store,
        description=f"Labeled predictions of {monitor.model} (monitor {monitor.name})",
    )


def _label_array(values: Sequence[Any], model: Any) -> pa.Array:
    """Labels as an Arrow array, typed like the model's classes when it has them."""
    import numpy as np
    import pyarrow as pa

    classes = getattr(getattr(model, "obj", None), "classes_", None)
    array = pa.array(list(values))
    if classes is not None and np.asarray(classes).dtype.kind in "iub":
        try:
            return array.cast(pa.from_numpy_dtype(np.asarray(classes).dtype))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return array
    return array


def _windows(
    monitor: Monitor, stamps: np.ndarray, versions: np.ndarray, labeled: np.ndarray
) -> list[dict[str, Any]]:
    """Per report window (or aligned window where no report exists) and model version: the
    rows taken, how many were labeled, and the report id."""
    import numpy as np

    r = tm.monitor_reports
    with monitor.metadata_store.engine.connect() as c:
        reports = c.execute(
            sa.select(r.c.id, r.c.window_start, r.c.window_end, r.c.model_version)
            .where(
                r.c.monitor_id == monitor.id,
                r.c.window_end > float(stamps.min()),
                r.c.window_start <= float(stamps.max()),
            )
            .order_by(r.c.window_start, r.c.model_version)
        ).all()
    taken = np.zeros(len(stamps), dtype=bool)
    out = []
    for report in reports:
        mask = (
            ~taken
            & (stamps >= report.window_start)
            & (stamps < report.window_end)
            & (versions == report.model_version)
        )
        if mask.any():
            taken |= mask
            out.append(
                _window(report.window_start, report.window_end, report.model_version, mask)
                | {"labeled_rows": int((mask & labeled).sum()), "report_id": str(report.id)}
            )
    rest = ~taken
    if rest.any():
        starts = np.floor(stamps / monitor.window) * monitor.window
        for start in sorted(set(starts[rest].tolist())):
            for version in sorted(set(versions[rest & (starts == start)].tolist())):
                mask = rest & (starts == start) & (versions == version)
                out.append(
                    _window(start, start + monitor.window, version, mask)
                    | {"labeled_rows": int((mask & labeled).sum()), "report_id": None}
                )
    out.sort(key=lambda w: (w["start"], w["model_version"]))
    return out


def _window(start: float, end: float, version: Any, mask: np.ndarray) -> dict[str, Any]:
    return {
        "start": float(start),
        "end": float(end),
        "model_version": int(version),
        "rows": int(mask.sum()),
    }


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["dataset_from_predictions", "parse_moment"]
