"""Persistence: the metadata store (SQLAlchemy) and the artifact store (files, fsspec)."""
