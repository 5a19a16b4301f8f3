"""CLI commands of the data component (filled in by its issue)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this component's commands and sub-apps to the root app."""
    return None
