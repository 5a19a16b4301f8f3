"""Tables of monitoring and continuous training.

monitors / monitor_reports / monitor_labels hold what `conveyor.monitoring` computes.
trigger_state / trigger_events / scheduler_leases hold what `conveyor.triggers` decides:
the state row of a trigger is the compare-and-set target that lets exactly one scheduler
fire it, and the unique (trigger_key, dedup_key) of an event makes every occurrence
(a cron tick, a report, a dataset version) decided at most once, across restarts.
"""

from __future__ import annotations

import sqlalchemy as sa

from conveyor.stores.metadata.tables import ID, metadata

monitors = sa.Table(
    "monitors",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("model_ref", sa.String(300), nullable=False),
    sa.Column("window_seconds", sa.Float, nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("name", name="uq_monitors_name"),
)

# One report per (monitor, window, model version): a window that spans a hot reload gets
# one report per version that served in it, each against that version's training Profile.
monitor_reports = sa.Table(
    "monitor_reports",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("monitor_id", ID, sa.ForeignKey("monitors.id", ondelete="CASCADE"), nullable=False),
    sa.Column("window_start", sa.Float, nullable=False),
    sa.Column("window_end", sa.Float, nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("labeled_rows", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("drift_share", sa.Float, nullable=False),
    sa.Column("dataset_drift", sa.Boolean, nullable=False),
    sa.Column("drifted", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("report", sa.JSON, nullable=False),
    sa.Column("profile_hash", sa.String(64)),
    sa.Column("html_path", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint(
        "monitor_id", "window_start", "model_version", name="uq_monitor_reports_window"
    ),
    sa.Index("ix_monitor_reports_monitor_end", "monitor_id", "window_end"),
)

monitor_labels = sa.Table(
    "monitor_labels",
    metadata,
    sa.Column("monitor_id", ID, sa.ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("request_id", sa.String(100), primary_key=True),
    sa.Column("row", sa.Integer, primary_key=True),
    sa.Column("label", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

trigger_state = sa.Table(
    "trigger_state",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("pipeline", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),
    # Where evaluation resumes: the last cron tick handled, the last dataset version or
    # report seen. Written in the same transaction as the event it led to.
    sa.Column("cursor", sa.JSON),
    sa.Column("last_fired_at", sa.Float),
    sa.Column("last_run_id", ID),
    sa.Column("fire_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.Float, nullable=False),
)

trigger_events = sa.Table(
    "trigger_events",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("trigger_key", sa.String(300), nullable=False),
    sa.Column("pipeline", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("dedup_key", sa.String(300), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("report_id", ID),
    sa.Column("run_id", ID),
    sa.Column("scheduler", sa.String(200)),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("trigger_key", "dedup_key", name="uq_trigger_events_dedup"),
    sa.Index("ix_trigger_events_created_at", "created_at"),
    sa.Index("ix_trigger_events_run_id", "run_id"),
)

scheduler_leases = sa.Table(
    "scheduler_leases",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("acquired_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)
