"""Tables of the model registry, tuning studies and gate decisions.

Run ids are plain columns, not foreign keys: a version registered from a notebook has no
run, and deleting a run must not delete the models it produced.
"""

from __future__ import annotations

import sqlalchemy as sa

from conveyor.stores.metadata.tables import ID, metadata

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("description", sa.Text),
    sa.Column("tags", sa.JSON, nullable=False),
    # The highest version number handed out; bumped under the row lock of this model.
    sa.Column("latest_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("model_id", ID, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("flavor", sa.String(50), nullable=False),
    sa.Column("estimator", sa.String(300), nullable=False),
    sa.Column("signature", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("library_versions", sa.JSON, nullable=False),
    sa.Column("report", sa.JSON),
    sa.Column("gate", sa.JSON),
    sa.Column("description", sa.Text),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("run_id", ID),
    sa.Column("step_run_id", ID),
    sa.Column("created_by", sa.String(200)),
    sa.Column("created_at", sa.Float, nullable=False),
    # Code names (skops types, a torch class) the model's bytes may use beyond the fixed
    # allow-list, recorded at registration from the live object: the file is never asked.
    # NULL for versions registered before revision 0006 (allow-list only).
    sa.Column("trusted_types", sa.JSON),
    sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
    sa.Index("ix_model_versions_run_id", "run_id"),
    sa.Index("ix_model_versions_content_hash", "content_hash"),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("model_id", ID, sa.ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("alias", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(200)),
)

# Serving caches: a pickle of a loaded model, per model blob and runtime (interpreter and
# library versions). Unpickled only when its bytes hash to `blob_hash`, so the cache is bound
# to this row: files in the artifact store alone never choose what is unpickled.
serving_caches = sa.Table(
    "serving_caches",
    metadata,
    sa.Column("model_hash", sa.String(64), primary_key=True),
    sa.Column("runtime", sa.String(64), primary_key=True),
    sa.Column("blob_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# Audit log: one row per registration, alias move, rollback or refused promotion.
registry_events = sa.Table(
    "registry_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_id", ID, sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("alias", sa.String(64)),
    sa.Column("from_version", sa.Integer),
    sa.Column("to_version", sa.Integer),
    sa.Column("actor", sa.String(200)),
    sa.Column("reason", sa.Text),
    sa.Column("run_id", ID),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_registry_events_model_alias", "model_id", "alias", "id"),
)

gate_decisions = sa.Table(
    "gate_decisions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("model_name", sa.String(200)),
    sa.Column("champion", sa.String(300)),
    sa.Column("champion_version", sa.Integer),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("primary_metric", sa.String(100), nullable=False),
    sa.Column("decision", sa.JSON, nullable=False),
    sa.Column("run_id", ID),
    sa.Column("step_run_id", ID),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_gate_decisions_run_id", "run_id"),
)

tuning_studies = sa.Table(
    "tuning_studies",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("direction", sa.String(10), nullable=False),
    sa.Column("space", sa.JSON, nullable=False),
    sa.Column("sampler", sa.String(200)),
    sa.Column("pruner", sa.String(200)),
    sa.Column("run_id", ID),
    sa.Column("created_at", sa.Float, nullable=False),
)

tuning_trials = sa.Table(
    "tuning_trials",
    metadata,
    sa.Column(
        "study_id", ID, sa.ForeignKey("tuning_studies.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("state", sa.String(10), nullable=False),
    sa.Column("intermediate", sa.JSON),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("duration", sa.Float, nullable=False),
    sa.Column("run_id", ID),
    sa.Column("step_run_id", ID),
    sa.Index("ix_tuning_trials_run_id", "run_id"),
)
