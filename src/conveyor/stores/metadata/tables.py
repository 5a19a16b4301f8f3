"""Table declarations of the metadata store (SQLAlchemy Core), shared by every backend.

Times are float epoch seconds; ids are 26-character sortable strings (see _internal.ids).
Domain tables (datasets, models, monitoring, ...) live in sibling modules that add their
tables to the same `metadata` object.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ID = sa.String(26)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("pipeline", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("ended_at", sa.Float),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("outputs", sa.JSON),
    sa.Column("code_sha", sa.String(64)),
    sa.Column("code_dirty", sa.Boolean),
    sa.Column("executor", sa.String(100)),
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Column("proc_start", sa.BigInteger),
    sa.Column("error", sa.Text),
    sa.Column("trigger", sa.JSON),
    sa.Index("ix_runs_created_at", "created_at"),
    sa.Index("ix_runs_pipeline_created_at", "pipeline", "created_at"),
    sa.Index("ix_runs_status", "status"),
    # The runs list of the UI/API: filtered by pipeline and/or status, newest first.
    sa.Index("ix_runs_pipeline_status_created", "pipeline", "status", "created_at", "id"),
    sa.Index("ix_runs_status_created", "status", "created_at", "id"),
)

step_runs = sa.Table(
    "step_runs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("step", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("started_at", sa.Float),
    sa.Column("ended_at", sa.Float),
    sa.Column("duration", sa.Float),
    sa.Column("cache_key", sa.String(64)),
    sa.Column("cache_hit", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("cache_source", ID),
    # What went into `cache_key` (issue 11), written when the step is started: read by
    # `conveyor cache explain`; a cache hit shares the components of its source.
    sa.Column("cache_components", sa.JSON),
    sa.Column("params", sa.JSON),
    sa.Column("error_type", sa.String(200)),
    sa.Column("error", sa.Text),
    sa.Column("traceback", sa.Text),
    sa.Column("host", sa.String(255)),
    sa.Index("ix_step_runs_run_id", "run_id"),
    sa.Index("ix_step_runs_cache_key", "cache_key", "status"),
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("type_name", sa.String(300), nullable=False),
    sa.Column("materializer", sa.String(100), nullable=False),
    sa.Column("materializer_version", sa.String(20), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("summary", sa.JSON),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE")),
    sa.Column("step_run_id", ID),
    sa.Index("ix_artifacts_content_hash", "content_hash"),
    sa.Index("ix_artifacts_run_id", "run_id"),
    sa.Index("ix_artifacts_step_run_id", "step_run_id"),
)

# Lineage: artifact -> step run (direction "in") and step run -> artifact ("out").
edges = sa.Table(
    "lineage_edges",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("step_run_id", ID, nullable=False),
    sa.Column("artifact_id", ID, nullable=False),
    sa.Column("direction", sa.String(3), nullable=False),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Index("ix_edges_step_run", "step_run_id", "direction"),
    sa.Index("ix_edges_artifact", "artifact_id", "direction"),
    sa.Index("ix_edges_run", "run_id", "direction"),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("step_run_id", ID),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("step", sa.Integer),
    sa.Column("timestamp", sa.Float, nullable=False),
    sa.Index("ix_metrics_run_key", "run_id", "key"),
    # Leaderboards: runs sorted by a metric walk this index in value order.
    sa.Index("ix_metrics_key_value", "key", "value", "run_id"),
)

run_tags = sa.Table(
    "run_tags",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Index("ix_run_tags_key_value", "key", "value"),
)

step_logs = sa.Table(
    "step_logs",
    metadata,
    sa.Column("step_run_id", ID, primary_key=True),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

# Every domain's tables join `metadata` whenever this module is imported, so migrations
# and schema comparisons always see the whole schema.
from conveyor.stores.metadata import (  # noqa: E402
    tables_data,  # noqa: F401
    tables_events,  # noqa: F401
    tables_monitoring,  # noqa: F401
    tables_registry,  # noqa: F401
)
