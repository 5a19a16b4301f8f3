"""Query functions behind `/api/v1` and the pages: one module per resource.

Every function takes the metadata store (and the artifact store when it reads bytes),
runs a bounded number of queries whatever the page size (never one per row) and returns
frozen dataclasses. Lists are keyset-paginated (`Page`, `before`/`after` cursors).
"""

from __future__ import annotations

from conveyor.api.queries._page import DEFAULT_LIMIT, MAX_LIMIT, Page, QueryError

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Page", "QueryError"]
