"""lifecycle: tuning studies by cache key, fresh-data datasets, gate records (issue 18)

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


# Indexes of the UI and REST API lists (issue 13): runs filtered by pipeline/status newest
# first, runs sorted by a metric, runs by tag, and the step graph of one run.
_UI_INDEXES = (
    ("ix_runs_pipeline_status_created", "runs", ("pipeline", "status", "created_at", "id")),
    ("ix_runs_status_created", "runs", ("status", "created_at", "id")),
    ("ix_metrics_key_value", "metrics", ("key", "value", "run_id")),
    ("ix_run_tags_key_value", "run_tags", ("key", "value")),
    ("ix_edges_run", "lineage_edges", ("run_id", "direction")),
)


def upgrade() -> None:
    # Where a dataset version came from when conveyor made it (prediction logs joined with
    # labels: the monitor, its windows and reports).
    with op.batch_alter_table("dataset_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin", sa.JSON(), nullable=True))
    for name, table, columns in _UI_INDEXES:
        op.create_index(name, table, list(columns))


def downgrade() -> None:
    for name, table, _ in reversed(_UI_INDEXES):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("dataset_versions", schema=None) as batch_op:
        batch_op.drop_column("origin")
