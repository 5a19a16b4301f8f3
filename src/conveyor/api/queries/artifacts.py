"""Artifacts: metadata, where they came from and went, safe previews and downloads.

Previews never unpickle and never import a class named by the data: tables are read as
Parquet, arrays with ``allow_pickle=False``, JSON as JSON; anything else (models, pickles)
shows only the summary its materializer recorded.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.api.queries._page import DEFAULT_LIMIT, Page, check_limit, paginate, reading
from conveyor.exceptions import NotFoundError
from conveyor.stores.metadata import tables as t

if TYPE_CHECKING:
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore

TABLE_MATERIALIZERS = ("pandas.parquet", "arrow.parquet", "polars.parquet")
PREVIEW_ROWS = 20
MAX_PREVIEW_ROWS = 200
_MAX_TEXT = 20_000


@dataclass(frozen=True)
class ArtifactSummary:
    """An artifact's metadata row."""

    id: str
    name: str
    kind: str
    content_hash: str
    type_name: str
    materializer: str
    materializer_version: str
    size: int
    summary: Mapping[str, Any] | None
    created_at: float
    run_id: str | None
    step_run_id: str | None


@dataclass(frozen=True)
class ArtifactUse:
    """A step run that wrote ("out") or read ("in") an artifact."""

    step_run_id: str
    run_id: str
    step: str
    direction: str
    name: str


@dataclass(frozen=True)
class ArtifactDetail:
    """An artifact with the step runs that produced and consumed it (bounded)."""

    artifact: ArtifactSummary
    producers: tuple[ArtifactUse, ...]
    consumers: tuple[ArtifactUse, ...]


@dataclass(frozen=True)
class ArtifactPreview:
    """What a page shows of an artifact's content.

    Attributes:
        artifact_id: The artifact.
        kind: ``table``, ``array``, ``json``, ``model`` or ``binary``.
        schema: Column name to type (tables), or shape/dtype (arrays).
        columns: Column names of `rows` (tables).
        rows: The first rows, values made JSON-safe (tables, arrays).
        total_rows: Row count of the whole table or first axis of the array.
        value: The (truncated) JSON value.
        summary: The materializer's summary (always present).
    """

    artifact_id: str
    kind: str
    schema: Mapping[str, str] | None
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    total_rows: int | None
    value: Any
    summary: Mapping[str, Any] | None


@dataclass(frozen=True)
class ArtifactBlob:
    """The stored bytes of an artifact, with a file name and a media type for download."""

    filename: str
    media_type: str
    data: bytes


_COLUMNS = [
    t.artifacts.c.id,
    t.artifacts.c.name,
    t.artifacts.c.kind,
    t.artifacts.c.content_hash,
    t.artifacts.c.type_name,
    t.artifacts.c.materializer,
    t.artifacts.c.materializer_version,
    t.artifacts.c.size,
    t.artifacts.c.summary,
    t.artifacts.c.created_at,
    t.artifacts.c.run_id,
    t.artifacts.c.step_run_id,
]


def artifact_summary(row: Any) -> ArtifactSummary:
    """An `ArtifactSummary` from a row selecting the artifacts columns."""
    return ArtifactSummary(**{c.name: getattr(row, c.name) for c in _COLUMNS})


def _row(c: sa.Connection, artifact_id: str) -> Any:
    a = t.artifacts
    row = c.execute(sa.select(*_COLUMNS).where(a.c.id == artifact_id)).first()
    if row is None and len(artifact_id) >= 6:
        rows = c.execute(
            sa.select(*_COLUMNS).where(a.c.id.like(artifact_id.upper() + "%")).limit(2)
        ).all()
        row = rows[0] if len(rows) == 1 else None
    if row is None:
        raise NotFoundError(
            f"No artifact with id {artifact_id!r}. Artifacts of a run are listed by "
            "`conveyor runs show RUN_ID` and /api/v1/runs/RUN_ID/artifacts."
        )
    return row


def list_artifacts(
    db: MetadataStore,
    *,
    run_id: str | None = None,
    name: str | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[ArtifactSummary]:
    """Artifacts, newest first; `run_id` lists those the run's steps wrote or reused.

    Raises:
        QueryError: a bad cursor or limit.
    """
    check_limit(limit)
    a, e = t.artifacts, t.edges
    query = sa.select(*_COLUMNS)
    if run_id is not None:
        query = query.where(
            a.c.id.in_(
                sa.select(e.c.artifact_id).where(e.c.run_id == run_id, e.c.direction == "out")
            )
        )
    if name is not None:
        query = query.where(a.c.name == name)
    with reading(db) as c:
        rows, next_cursor, prev_cursor = paginate(
            c,
            query,
            order=[(a.c.created_at, True), (a.c.id, True)],
            key=lambda r: (r.created_at, r.id),
            before=before,
            after=after,
            limit=limit,
        )
    return Page(tuple(artifact_summary(r) for r in rows), next_cursor, prev_cursor, limit)


def get_artifact(db: MetadataStore, artifact_id: str, *, max_uses: int = 200) -> ArtifactDetail:
    """An artifact (id or unique prefix) with up to `max_uses` producers and consumers.

    Raises:
        NotFoundError: no such artifact.
    """
    e, s = t.edges, t.step_runs
    with reading(db) as c:
        row = _row(c, artifact_id)
        uses = c.execute(
            sa.select(e.c.step_run_id, e.c.run_id, e.c.direction, e.c.name, s.c.name.label("step"))
            .join(s, s.c.id == e.c.step_run_id)
            .where(e.c.artifact_id == row.id)
            .order_by(e.c.id)
            .limit(max_uses)
        ).all()
    as_uses = [
        ArtifactUse(
            step_run_id=u.step_run_id,
            run_id=u.run_id,
            step=u.step,
            direction=u.direction,
            name=u.name,
        )
        for u in uses
    ]
    return ArtifactDetail(
        artifact=artifact_summary(row),
        producers=tuple(u for u in as_uses if u.direction == "out"),
        consumers=tuple(u for u in as_uses if u.direction == "in"),
    )


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _json_safe(item())
        except (TypeError, ValueError):
            pass
    return str(value)


def _truncate(value: Any, budget: list[int]) -> Any:
    """A copy of a JSON value cut down to about `_MAX_TEXT` characters in total."""
    if budget[0] <= 0:
        return "..."
    if isinstance(value, str):
        budget[0] -= len(value)
        return value if len(value) <= 500 else value[:500] + f"... ({len(value)} characters)"
    if isinstance(value, Mapping):
        return {k: _truncate(v, budget) for k, v in list(value.items())[:200]}
    if isinstance(value, list):
        return [_truncate(v, budget) for v in value[:200]] + (["..."] if len(value) > 200 else [])
    budget[0] -= 8
    return value


def _table_preview(artifact: ArtifactSummary, data: bytes, rows: int) -> ArtifactPreview:
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(io.BytesIO(data))
    schema = handle.schema_arrow
    head = next(handle.iter_batches(batch_size=rows), None)
    columns = tuple(schema.names)
    values: list[tuple[Any, ...]] = []
    if head is not None:
        lists = [head.column(i).to_pylist() for i in range(head.num_columns)]
        values = [tuple(_json_safe(col[r]) for col in lists) for r in range(head.num_rows)]
    return ArtifactPreview(
        artifact_id=artifact.id,
        kind="table",
        schema={name: str(schema.field(name).type) for name in schema.names},
        columns=columns,
        rows=tuple(values),
        total_rows=handle.metadata.num_rows,
        value=None,
        summary=artifact.summary,
    )


def _array_preview(artifact: ArtifactSummary, data: bytes, rows: int) -> ArtifactPreview:
    import numpy as np

    array = np.load(io.BytesIO(data), allow_pickle=False)
    head = array[:rows] if array.ndim else array
    as_rows: list[tuple[Any, ...]] = []
    if array.ndim == 1:
        as_rows = [(_json_safe(v),) for v in head.tolist()]
    elif array.ndim >= 2:
        as_rows = [tuple(_json_safe(v) for v in row[:50]) for row in head.tolist()]
    return ArtifactPreview(
        artifact_id=artifact.id,
        kind="array",
        schema={"shape": str(tuple(array.shape)), "dtype": str(array.dtype)},
        columns=(),
        rows=tuple(as_rows),
        total_rows=int(array.shape[0]) if array.ndim else None,
        value=_json_safe(array.tolist()) if array.ndim == 0 else None,
        summary=artifact.summary,
    )


def preview_artifact(
    db: MetadataStore, artifacts: ArtifactStore, artifact_id: str, *, rows: int = PREVIEW_ROWS
) -> ArtifactPreview:
    """The head and schema of a table, the head of an array, a JSON value, or a summary.

    Raises:
        NotFoundError: no such artifact.
        QueryError: `rows` outside 1..200.
        ArtifactCorruptError: the stored bytes do not match the recorded hash.
    """
    check_limit(rows, MAX_PREVIEW_ROWS)
    with reading(db) as c:
        artifact = artifact_summary(_row(c, artifact_id))
    materializer = artifact.materializer
    if materializer in TABLE_MATERIALIZERS:
        return _table_preview(artifact, artifacts.get(artifact.content_hash), rows)
    if materializer == "numpy":
        return _array_preview(artifact, artifacts.get(artifact.content_hash), rows)
    if materializer in ("json", "conveyor.object") and artifact.size <= 5_000_000:
        try:
            value = json.loads(artifacts.get(artifact.content_hash))
        except (ValueError, UnicodeDecodeError):
            value = None
        if value is not None:
            return ArtifactPreview(
                artifact_id=artifact.id,
                kind="json",
                schema=None,
                columns=(),
                rows=(),
                total_rows=None,
                value=_truncate(_json_safe(value), [_MAX_TEXT]),
                summary=artifact.summary,
            )
    kind = "model" if artifact.kind == "model" or materializer.startswith("sklearn") else "binary"
    return ArtifactPreview(
        artifact_id=artifact.id,
        kind=kind,
        schema=None,
        columns=(),
        rows=(),
        total_rows=None,
        value=None,
        summary=artifact.summary,
    )


_EXTENSIONS = {
    "pandas.parquet": ("parquet", "application/vnd.apache.parquet"),
    "arrow.parquet": ("parquet", "application/vnd.apache.parquet"),
    "polars.parquet": ("parquet", "application/vnd.apache.parquet"),
    "json": ("json", "application/json"),
    "numpy": ("npy", "application/octet-stream"),
}


def artifact_bytes(db: MetadataStore, artifacts: ArtifactStore, artifact_id: str) -> ArtifactBlob:
    """The stored bytes of an artifact (verified against its hash) for download.

    Raises:
        NotFoundError: no such artifact.
        ArtifactCorruptError: the stored bytes do not match the recorded hash.
    """
    with reading(db) as c:
        artifact = artifact_summary(_row(c, artifact_id))
    extension, media_type = _EXTENSIONS.get(
        artifact.materializer, ("bin", "application/octet-stream")
    )
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in artifact.name)[:100]
    return ArtifactBlob(
        filename=f"{safe or 'artifact'}-{artifact.id[:10].lower()}.{extension}",
        media_type=media_type,
        data=artifacts.get(artifact.content_hash),
    )
