"""Which reported windows hold given requests (so late labels can update their reports).

Labels arrive after the windows they belong to were reported. To update those reports we
find, in the prediction log, the time of each labeled request and the stored report
window that contains it; only the ``_request_id`` and ``_timestamp`` columns are read.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.stores.metadata import tables_monitoring as tm

if TYPE_CHECKING:
    from conveyor.monitoring.monitor import Monitor


def reported_windows(monitor: Monitor) -> list[tuple[float, float]]:
    """Distinct (start, end) of the monitor's stored reports, oldest first."""
    r = tm.monitor_reports
    query = (
        sa.select(r.c.window_start, r.c.window_end)
        .where(r.c.monitor_id == monitor.id)
        .distinct()
        .order_by(r.c.window_start)
    )
    with monitor.metadata_store.engine.connect() as c:
        return [(float(row.window_start), float(row.window_end)) for row in c.execute(query)]


def labeled_request_ids(monitor: Monitor) -> set[str]:
    """Every request id with a stored label for this monitor."""
    lab = tm.monitor_labels
    with monitor.metadata_store.engine.connect() as c:
        rows = c.execute(
            sa.select(lab.c.request_id).where(lab.c.monitor_id == monitor.id).distinct()
        )
        return {str(row.request_id) for row in rows}


def windows_holding(
    monitor: Monitor, model_name: str, request_ids: Iterable[Any]
) -> list[tuple[float, float]]:
    """The stored report windows that contain a prediction of one of `request_ids`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = pa.array(sorted({str(i) for i in request_ids}), pa.string())
    windows = reported_windows(monitor)
    if not len(wanted) or not windows:
        return []
    starts = np.array([w[0] for w in windows])
    ends = np.array([w[1] for w in windows])
    found: set[int] = set()
    for path in monitor.segments(model_name, float(starts.min()), float(ends.max())):
        data = io.BytesIO(monitor.artifact_store.read_file(path))
        schema = pq.read_schema(data)
        if "_request_id" not in schema.names or "_timestamp" not in schema.names:
            continue
        table = pq.read_table(data, columns=["_request_id", "_timestamp"])
        ids = pc.cast(table.column("_request_id"), pa.string())
        hits = table.filter(pc.is_in(ids, value_set=wanted))
        if not hits.num_rows:
            continue
        stamps = pc.cast(hits.column("_timestamp"), pa.timestamp("us", "UTC"))
        seconds = pc.cast(stamps, pa.int64()).to_numpy(zero_copy_only=False) / 1e6
        found.update(_containing(starts, ends, seconds))
    return [windows[i] for i in sorted(found)]


def _containing(starts: Any, ends: Any, moments: Sequence[float] | Any) -> set[int]:
    import numpy as np

    index = np.searchsorted(starts, moments, side="right") - 1
    inside = (index >= 0) & (moments < ends[np.maximum(index, 0)])
    return {int(i) for i in np.unique(index[inside])}
