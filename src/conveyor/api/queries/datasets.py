"""Datasets and their versions: profile, schema and validation reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.api.queries._page import DEFAULT_LIMIT, Page, check_limit, paginate, reading
from conveyor.exceptions import NotFoundError, did_you_mean
from conveyor.stores.metadata import tables as t
from conveyor.stores.metadata import tables_data as td

if TYPE_CHECKING:
    from conveyor.data.profile import Profile
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore


@dataclass(frozen=True)
class DatasetSummary:
    """A named dataset with its newest version."""

    id: str
    name: str
    description: str | None
    created_at: float
    latest_version: int | None
    versions: int
    latest_created_at: float | None
    latest_row_count: int | None


@dataclass(frozen=True)
class DatasetVersionSummary:
    """One version of a dataset."""

    id: str
    name: str
    version: int
    ref: str
    source: str
    source_kind: str
    external_version: str | None
    row_count: int
    columns: Mapping[str, str]
    content_hash: str | None
    profile_hash: str
    created_at: float
    run_id: str | None


@dataclass(frozen=True)
class ValidationReportSummary:
    """A validation report artifact that checked a dataset version."""

    artifact_id: str
    run_id: str | None
    step_run_id: str | None
    created_at: float
    ok: bool | None
    errors: int | None
    warnings: int | None


@dataclass(frozen=True)
class DatasetVersionDetail:
    """A version with the runs that read it and the validation reports about it."""

    version: DatasetVersionSummary
    description: str | None
    read_by: tuple[str, ...]
    reports: tuple[ValidationReportSummary, ...]


VALIDATION_REPORT_TYPE = "conveyor.data.validate.ValidationReport"
MAX_READERS = 200


def list_datasets(
    db: MetadataStore,
    *,
    before: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[DatasetSummary]:
    """Datasets by name, each with its version count and newest version (two queries).

    Raises:
        QueryError: a bad cursor or limit.
    """
    check_limit(limit)
    d, v = td.datasets, td.dataset_versions
    with reading(db) as c:
        rows, next_cursor, prev_cursor = paginate(
            c,
            sa.select(d),
            order=[(d.c.name, False)],
            key=lambda row: (row.name,),
            before=before,
            after=after,
            limit=limit,
        )
        ids = [row.id for row in rows]
        stats: dict[str, tuple[int, int]] = {}
        latest: dict[str, Any] = {}
        if ids:
            for dataset_id, count, newest in c.execute(
                sa.select(v.c.dataset_id, sa.func.count(), sa.func.max(v.c.version))
                .where(v.c.dataset_id.in_(ids))
                .group_by(v.c.dataset_id)
            ):
                stats[dataset_id] = (int(count), int(newest))
            pairs = [sa.and_(v.c.dataset_id == k, v.c.version == n) for k, (_, n) in stats.items()]
            if pairs:
                for row in c.execute(
                    sa.select(v.c.dataset_id, v.c.created_at, v.c.row_count).where(sa.or_(*pairs))
                ):
                    latest[row.dataset_id] = row
    items = tuple(
        DatasetSummary(
            id=row.id,
            name=row.name,
            description=row.description,
            created_at=row.created_at,
            latest_version=stats[row.id][1] if row.id in stats else None,
            versions=stats.get(row.id, (0, 0))[0],
            latest_created_at=latest[row.id].created_at if row.id in latest else None,
            latest_row_count=latest[row.id].row_count if row.id in latest else None,
        )
        for row in rows
    )
    return Page(items, next_cursor, prev_cursor, limit)


def _dataset_row(c: sa.Connection, name: str) -> Any:
    row = c.execute(sa.select(td.datasets).where(td.datasets.c.name == name)).first()
    if row is None:
        names = list(c.execute(sa.select(td.datasets.c.name).limit(1000)).scalars())
        raise NotFoundError(
            f"No dataset named {name!r}."
            + did_you_mean(name, names)
            + " List datasets with `conveyor datasets list`."
        )
    return row


def _version_summary(name: str, row: Any) -> DatasetVersionSummary:
    return DatasetVersionSummary(
        id=row.id,
        name=name,
        version=row.version,
        ref=f"{name}@{row.version}",
        source=row.source,
        source_kind=row.source_kind,
        external_version=row.external_version,
        row_count=row.row_count,
        columns=row.columns or {},
        content_hash=row.content_hash,
        profile_hash=row.profile_hash,
        created_at=row.created_at,
        run_id=row.run_id,
    )


def list_dataset_versions(
    db: MetadataStore,
    name: str,
    *,
    before: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[DatasetVersionSummary]:
    """Versions of a dataset, newest first.

    Raises:
        NotFoundError: no such dataset.
        QueryError: a bad cursor or limit.
    """
    check_limit(limit)
    v = td.dataset_versions
    with reading(db) as c:
        dataset = _dataset_row(c, name)
        rows, next_cursor, prev_cursor = paginate(
            c,
            sa.select(v).where(v.c.dataset_id == dataset.id),
            order=[(v.c.version, True)],
            key=lambda row: (row.version,),
            before=before,
            after=after,
            limit=limit,
        )
    return Page(tuple(_version_summary(name, r) for r in rows), next_cursor, prev_cursor, limit)


def _version_row(c: sa.Connection, name: str, version: int | None) -> tuple[Any, Any]:
    v = td.dataset_versions
    dataset = _dataset_row(c, name)
    query = sa.select(v).where(v.c.dataset_id == dataset.id)
    if version is None:
        query = query.order_by(v.c.version.desc()).limit(1)
    else:
        query = query.where(v.c.version == int(version))
    row = c.execute(query).first()
    if row is None:
        what = "no versions" if version is None else f"no version {version}"
        raise NotFoundError(f"Dataset {name!r} has {what}. See `conveyor datasets show {name}`.")
    return dataset, row


def get_dataset_version(
    db: MetadataStore, name: str, version: int | None = None
) -> DatasetVersionDetail:
    """A version (the newest when `version` is None) with the runs that read it and the
    validation reports those runs (and the run that registered it) produced.

    Raises:
        NotFoundError: no such dataset or version.
    """
    a = t.artifacts
    with reading(db) as c:
        dataset, row = _version_row(c, name, version)
        ref = f"{name}@{row.version}"
        readers = list(
            c.execute(
                sa.select(t.run_tags.c.run_id)
                .where(t.run_tags.c.key == "dataset", t.run_tags.c.value == ref)
                .order_by(t.run_tags.c.run_id.desc())
                .limit(MAX_READERS)
            ).scalars()
        )
        runs = [*([row.run_id] if row.run_id else []), *readers]
        reports: Sequence[Any] = []
        if runs:
            reports = c.execute(
                sa.select(a.c.id, a.c.run_id, a.c.step_run_id, a.c.created_at, a.c.summary)
                .where(a.c.run_id.in_(runs), a.c.type_name == VALIDATION_REPORT_TYPE)
                .order_by(a.c.created_at.desc())
                .limit(MAX_READERS)
            ).all()
    return DatasetVersionDetail(
        version=_version_summary(name, row),
        description=dataset.description,
        read_by=tuple(readers),
        reports=tuple(
            ValidationReportSummary(
                artifact_id=r.id,
                run_id=r.run_id,
                step_run_id=r.step_run_id,
                created_at=r.created_at,
                ok=(r.summary or {}).get("ok"),
                errors=(r.summary or {}).get("errors"),
                warnings=(r.summary or {}).get("warnings"),
            )
            for r in reports
        ),
    )


def _profile(
    db: MetadataStore, artifacts: ArtifactStore, name: str, version: int | None
) -> Profile:
    from conveyor.data.profile import Profile

    with reading(db) as c:
        _, row = _version_row(c, name, version)
    return Profile.from_bytes(artifacts.get(row.profile_hash))


def dataset_profile(
    db: MetadataStore, artifacts: ArtifactStore, name: str, version: int | None = None
) -> dict[str, Any]:
    """The stored Profile of a version as a dict (per-column statistics, histograms, top-k).

    Raises:
        NotFoundError: no such dataset or version.
    """
    return _profile(db, artifacts, name, version).to_dict()


def dataset_schema(
    db: MetadataStore, artifacts: ArtifactStore, name: str, version: int | None = None
) -> dict[str, Any]:
    """The schema inferred from a version's Profile (dtype, required, range, domain).

    Raises:
        NotFoundError: no such dataset or version.
    """
    from conveyor.data.schema import Schema

    return Schema.infer(_profile(db, artifacts, name, version)).to_dict()


def validation_report(
    db: MetadataStore, artifacts: ArtifactStore, artifact_id: str
) -> dict[str, Any]:
    """A stored validation report: ok, counts, anomalies and drift per column.

    Raises:
        NotFoundError: no such artifact, or it is not a validation report.
    """
    import json

    a = t.artifacts
    with reading(db) as c:
        row = c.execute(
            sa.select(a.c.id, a.c.content_hash, a.c.type_name, a.c.run_id).where(
                a.c.id == artifact_id
            )
        ).first()
    if row is None or row.type_name != VALIDATION_REPORT_TYPE:
        raise NotFoundError(f"No validation report with artifact id {artifact_id!r}.")
    # The stored form is JSON; the embedded sketches are dropped, not decoded.
    payload = json.loads(artifacts.get(row.content_hash))
    out = {
        k: payload.get(k) for k in ("ok", "row_count", "errors", "warnings", "anomalies", "drift")
    }
    out["schema"] = payload.get("schema")
    out["artifact_id"] = row.id
    out["run_id"] = row.run_id
    return out
