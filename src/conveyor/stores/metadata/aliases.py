"""What registry references point at right now, read for cache keys.

The execution engine sits below the registry, so it reads the alias table directly: a
step declaring ``models=["churn@production"]`` gets the version the alias holds at the
moment its cache key is computed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from conveyor.stores.metadata import tables_registry as r


def current_versions(engine: sa.Engine, refs: Sequence[str]) -> list[str]:
    """``ref=version`` for each reference (``ref=none`` when it points at nothing yet).

    ``name@alias`` reads the alias, ``name`` the latest version; ``name/3`` is fixed.
    """
    out: list[str] = []
    with engine.connect() as c:
        for ref in refs:
            name, at, alias = ref.partition("@")
            if "/" in name and not at:
                out.append(f"{ref}={name.rpartition('/')[2]}")
                continue
            if at:
                query = (
                    sa.select(r.model_aliases.c.version)
                    .join(r.models, r.models.c.id == r.model_aliases.c.model_id)
                    .where(r.models.c.name == name, r.model_aliases.c.alias == alias)
                )
            else:
                query = sa.select(r.models.c.latest_version).where(r.models.c.name == name)
            version = c.execute(query).scalar_one_or_none()
            out.append(f"{ref}={'none' if version is None else version}")
    return out
