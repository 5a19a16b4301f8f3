"""safe loading: bindings of serving caches to registry rows, reject counts (issue 12)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trusted_types", sa.JSON(), nullable=True))
    op.create_table(
        "serving_caches",
        sa.Column("model_hash", sa.String(length=64), nullable=False),
        sa.Column("runtime", sa.String(length=64), nullable=False),
        sa.Column("blob_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("model_hash", "runtime"),
    )


def downgrade() -> None:
    op.drop_table("serving_caches")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("trusted_types")
