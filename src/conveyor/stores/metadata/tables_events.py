"""Event log tables: one row per thing that happened, and the webhook delivery log.

`events.seq` is the cursor order (autoincrement, never reused); `events.id` is the sortable
unique id a receiver deduplicates by. `notify_targets` remembers where each configured
target started, so a target added later is not flooded with the whole history.
"""

from __future__ import annotations

import sqlalchemy as sa

from conveyor.stores.metadata.tables import ID, metadata

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", ID, nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("links", sa.JSON, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Index("ix_events_kind_seq", "kind", "seq"),
    sa.Index("ix_events_subject_seq", "subject", "seq"),
)

notify_targets = sa.Table(
    "notify_targets",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("start_seq", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

event_deliveries = sa.Table(
    "event_deliveries",
    metadata,
    sa.Column("target", sa.String(200), primary_key=True),
    sa.Column("event_seq", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("last_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_event_deliveries_target_status", "target", "status", "event_seq"),
)

# Live comparisons of a champion and a challenger over logged traffic (shadow or canary).
release_comparisons = sa.Table(
    "release_comparisons",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("monitor", sa.String(200), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("champion_version", sa.Integer, nullable=False),
    sa.Column("challenger_version", sa.Integer, nullable=False),
    sa.Column("window_start", sa.Float, nullable=False),
    sa.Column("window_end", sa.Float, nullable=False),
    sa.Column("metric", sa.String(50), nullable=False),
    sa.Column("labeled", sa.Integer, nullable=False),
    sa.Column("difference", sa.Float),
    sa.Column("ci_low", sa.Float),
    sa.Column("ci_high", sa.Float),
    sa.Column("verdict", sa.String(30), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_release_comparisons_monitor_created", "monitor", "created_at"),
)
