"""Lineage hops beyond the run: the trigger event that started it (and the monitor report
behind that), and where the data versions it read came from (e.g. a monitor's windows).

`Registry.lineage` adds these to its graph, so `conveyor models lineage` shows the whole
loop: model version <- run <- trigger event <- monitor report, and run <- dataset version
<- prediction-log windows <- their reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.stores.metadata import tables as t
from conveyor.stores.metadata import tables_data as td
from conveyor.stores.metadata import tables_monitoring as tm

if TYPE_CHECKING:
    from conveyor.stores.metadata import MetadataStore


def report_view(c: sa.Connection, report_id: str | None) -> dict[str, Any] | None:
    """A monitor report's identity and headline numbers, or None when it is gone."""
    if report_id is None:
        return None
    r = tm.monitor_reports
    row = c.execute(
        sa.select(
            r.c.id,
            r.c.window_start,
            r.c.window_end,
            r.c.model_name,
            r.c.model_version,
            r.c.rows,
            r.c.drift_share,
            r.c.metrics,
            tm.monitors.c.name.label("monitor"),
        )
        .join(tm.monitors, tm.monitors.c.id == r.c.monitor_id)
        .where(r.c.id == report_id)
    ).first()
    return None if row is None else dict(row._mapping)


def trigger_hop(c: sa.Connection, trigger: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The trigger event recorded on a run, with its report; None for a manual run."""
    if not trigger or not trigger.get("event_id"):
        return None
    e = tm.trigger_events
    event = c.execute(sa.select(e).where(e.c.id == trigger["event_id"])).first()
    out: dict[str, Any] = {
        "event_id": trigger["event_id"],
        "kind": trigger.get("kind"),
        "reason": trigger.get("reason"),
        "status": None,
        "created_at": trigger.get("at"),
    }
    report_id = trigger.get("report_id")
    if event is not None:
        out.update(status=event.status, created_at=event.created_at, pipeline=event.pipeline)
        report_id = event.report_id or report_id
    out["report"] = report_view(c, report_id)
    return out


def dataset_origin(c: sa.Connection, ref: str) -> dict[str, Any] | None:
    """The stored origin of dataset version ``name@N`` (None when it has none)."""
    name, _, number = ref.partition("@")
    if not number.isdigit():
        return None
    value = c.execute(
        sa.select(td.dataset_versions.c.origin)
        .join(td.datasets, td.datasets.c.id == td.dataset_versions.c.dataset_id)
        .where(td.datasets.c.name == name, td.dataset_versions.c.version == int(number))
    ).scalar_one_or_none()
    return dict(value) if value else None


def add_hops(graph: dict[str, Any], store: MetadataStore) -> dict[str, Any]:
    """Add ``trigger`` (event and report) and each read dataset's ``origin`` to `graph`."""
    run = graph.get("run") or {}
    with store.engine.connect() as c:
        trigger = None
        if run.get("id"):
            trigger = c.execute(
                sa.select(t.runs.c.trigger).where(t.runs.c.id == run["id"])
            ).scalar_one_or_none()
        graph["trigger"] = trigger_hop(c, trigger)
        for item in graph.get("data", []):
            if "dataset" in item:
                origin = dataset_origin(c, str(item["dataset"]))
                if origin is not None:
                    item["origin"] = origin
    return graph


__all__ = ["add_hops", "dataset_origin", "report_view", "trigger_hop"]
