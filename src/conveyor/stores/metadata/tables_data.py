"""Tables of the data component: named datasets and their versions."""

from __future__ import annotations

import sqlalchemy as sa

from conveyor.stores.metadata.tables import ID, metadata

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("name", name="uq_datasets_name"),
)

# A version points either at a content-addressed Parquet snapshot in the artifact store
# (content_hash/uri) or at a pinned external version (source + external_version, e.g. a
# Delta table version). `fingerprint` identifies the content so identical data maps to
# the existing version instead of a new one.
dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("dataset_id", ID, sa.ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("fingerprint", sa.String(300), nullable=False),
    sa.Column("content_hash", sa.String(64)),
    sa.Column("uri", sa.Text),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("source_kind", sa.String(20), nullable=False),
    sa.Column("external_version", sa.String(100)),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("columns", sa.JSON, nullable=False),
    sa.Column("profile_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("run_id", ID),
    # How conveyor made this version, when it did (e.g. from a monitor's prediction log
    # joined with labels: the monitor, its windows and their reports). Migration 0007.
    sa.Column("origin", sa.JSON),
    sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_version"),
    sa.Index("ix_dataset_versions_fingerprint", "dataset_id", "fingerprint"),
)
