"""Alembic environment: runs on the connection conveyor hands over."""

from __future__ import annotations

from alembic import context

from conveyor.stores.metadata import tables

metadata = tables.metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
if connection.dialect.name == "postgresql":
    # Serialize concurrent first starts against one database.
    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(784120631)")
with context.begin_transaction():
    context.run_migrations()
