"""Row helpers shared by the run and step-run queries."""

from __future__ import annotations

import sqlalchemy as sa

from conveyor.exceptions import NotFoundError
from conveyor.stores.metadata import tables as t


def first_line(text: str | None) -> str | None:
    """The first line of an error message (at most 500 characters), for lists."""
    if not text:
        return text
    return text.strip().splitlines()[0][:500] if text.strip() else text


def resolve_run_id(c: sa.Connection, run_id: str) -> str:
    """The full id of the run `run_id` names (the id, or a unique prefix of 6+ characters).

    Raises:
        NotFoundError: no run matches.
    """
    found = c.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)).scalar_one_or_none()
    if found is None and len(run_id) >= 6:
        rows = c.execute(
            sa.select(t.runs.c.id).where(t.runs.c.id.like(run_id.upper() + "%")).limit(2)
        ).all()
        found = rows[0][0] if len(rows) == 1 else None
    if found is None:
        raise NotFoundError(f"No run with id {run_id!r}. List runs with `conveyor runs list`.")
    return str(found)
