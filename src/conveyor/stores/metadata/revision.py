"""The schema revision this code expects, importable without SQLAlchemy."""

from __future__ import annotations

# The Alembic revision this code expects; tests check it equals the migrations' head.
HEAD_REVISION = "0008"
