"""monitoring tables: monitors, reports, labels, trigger state and events, scheduler leases

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.String(length=26)


def upgrade() -> None:
    op.create_table(
        "monitors",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("model_ref", sa.String(length=300), nullable=False),
        sa.Column("window_seconds", sa.Float(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_monitors_name"),
    )
    op.create_table(
        "monitor_reports",
        sa.Column("id", ID, nullable=False),
        sa.Column("monitor_id", ID, nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("window_end", sa.Float(), nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("labeled_rows", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("drift_share", sa.Float(), nullable=False),
        sa.Column("dataset_drift", sa.Boolean(), nullable=False),
        sa.Column("drifted", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("profile_hash", sa.String(length=64), nullable=True),
        sa.Column("html_path", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["monitor_id"], ["monitors.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "monitor_id", "window_start", "model_version", name="uq_monitor_reports_window"
        ),
    )
    with op.batch_alter_table("monitor_reports", schema=None) as batch_op:
        batch_op.create_index(
            "ix_monitor_reports_monitor_end", ["monitor_id", "window_end"], unique=False
        )

    op.create_table(
        "monitor_labels",
        sa.Column("monitor_id", ID, nullable=False),
        sa.Column("request_id", sa.String(length=100), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("label", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["monitor_id"], ["monitors.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("monitor_id", "request_id", "row"),
    )
    op.create_table(
        "trigger_state",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("pipeline", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("cursor", sa.JSON(), nullable=True),
        sa.Column("last_fired_at", sa.Float(), nullable=True),
        sa.Column("last_run_id", ID, nullable=True),
        sa.Column("fire_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "trigger_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("trigger_key", sa.String(length=300), nullable=False),
        sa.Column("pipeline", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("dedup_key", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("report_id", ID, nullable=True),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("scheduler", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("trigger_key", "dedup_key", name="uq_trigger_events_dedup"),
    )
    with op.batch_alter_table("trigger_events", schema=None) as batch_op:
        batch_op.create_index("ix_trigger_events_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_trigger_events_run_id", ["run_id"], unique=False)

    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("scheduler_leases")
    with op.batch_alter_table("trigger_events", schema=None) as batch_op:
        batch_op.drop_index("ix_trigger_events_run_id")
        batch_op.drop_index("ix_trigger_events_created_at")
    op.drop_table("trigger_events")
    op.drop_table("trigger_state")
    op.drop_table("monitor_labels")
    with op.batch_alter_table("monitor_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_reports_monitor_end")
    op.drop_table("monitor_reports")
    op.drop_table("monitors")
