"""Models: versions, aliases, audit log, gate decisions; promote and rollback."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.api.queries._page import DEFAULT_LIMIT, Page, check_limit, paginate, reading
from conveyor.exceptions import NotFoundError, did_you_mean
from conveyor.stores.metadata import tables_registry as r

if TYPE_CHECKING:
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore


@dataclass(frozen=True)
class ModelSummary:
    """A registered model with its aliases (alias -> version)."""

    id: str
    name: str
    description: str | None
    latest_version: int
    aliases: Mapping[str, int]
    tags: Mapping[str, Any]
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class ModelVersionSummary:
    """One version of a model."""

    name: str
    version: int
    ref: str
    aliases: tuple[str, ...]
    flavor: str
    estimator: str
    metrics: Mapping[str, float]
    gate_passed: bool | None
    run_id: str | None
    created_by: str | None
    created_at: float


@dataclass(frozen=True)
class ModelVersionDetail:
    """Everything a model card shows about a version."""

    version: ModelVersionSummary
    content_hash: str
    size: int
    signature: Mapping[str, Any]
    library_versions: Mapping[str, str]
    report: Mapping[str, Any] | None
    gate: Mapping[str, Any] | None
    description: str | None
    tags: Mapping[str, Any]
    step_run_id: str | None


@dataclass(frozen=True)
class AuditEntry:
    """One row of a model's audit log: who moved which alias, when, why."""

    id: int
    name: str
    action: str
    alias: str | None
    from_version: int | None
    to_version: int | None
    actor: str | None
    reason: str | None
    run_id: str | None
    created_at: float


@dataclass(frozen=True)
class GateDecision:
    """A recorded gate decision (candidate vs champion)."""

    id: str
    model_name: str | None
    champion: str | None
    champion_version: int | None
    passed: bool
    primary_metric: str
    decision: Mapping[str, Any]
    run_id: str | None
    step_run_id: str | None
    created_at: float


def _model_row(c: sa.Connection, name: str) -> Any:
    row = c.execute(sa.select(r.models).where(r.models.c.name == name)).first()
    if row is None:
        names = list(c.execute(sa.select(r.models.c.name).limit(1000)).scalars())
        raise NotFoundError(
            f"No model named {name!r}."
            + did_you_mean(name, names)
            + " List models with `conveyor models list`."
        )
    return row


def _aliases(c: sa.Connection, model_ids: list[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {m: {} for m in model_ids}
    if model_ids:
        a = r.model_aliases
        for row in c.execute(
            sa.select(a.c.model_id, a.c.alias, a.c.version)
            .where(a.c.model_id.in_(model_ids))
            .order_by(a.c.alias)
        ):
            out[row.model_id][row.alias] = row.version
    return out


def list_models(
    db: MetadataStore,
    *,
    before: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[ModelSummary]:
    """Registered models by name, with their aliases (two queries per page).

    Raises:
        QueryError: a bad cursor or limit.
    """
    check_limit(limit)
    m = r.models
    with reading(db) as c:
        rows, next_cursor, prev_cursor = paginate(
            c,
            sa.select(m),
            order=[(m.c.name, False)],
            key=lambda row: (row.name,),
            before=before,
            after=after,
            limit=limit,
        )
        aliases = _aliases(c, [row.id for row in rows])
    items = tuple(
        ModelSummary(
            id=row.id,
            name=row.name,
            description=row.description,
            latest_version=row.latest_version,
            aliases=aliases[row.id],
            tags=row.tags or {},
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in rows
    )
    return Page(items, next_cursor, prev_cursor, limit)


def get_model(db: MetadataStore, name: str) -> ModelSummary:
    """One model with its aliases.

    Raises:
        NotFoundError: no such model (suggests close names).
    """
    with reading(db) as c:
        row = _model_row(c, name)
        aliases = _aliases(c, [row.id])[row.id]
    return ModelSummary(
        id=row.id,
        name=row.name,
        description=row.description,
        latest_version=row.latest_version,
        aliases=aliases,
        tags=row.tags or {},
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _version_summary(name: str, row: Any, aliases: Mapping[str, int]) -> ModelVersionSummary:
    gate = row.gate or None
    passed = gate.get("passed") if isinstance(gate, Mapping) else None
    return ModelVersionSummary(
        name=name,
        version=row.version,
        ref=f"{name}/{row.version}",
        aliases=tuple(sorted(a for a, v in aliases.items() if v == row.version)),
        flavor=row.flavor,
        estimator=row.estimator,
        metrics=row.metrics or {},
        gate_passed=bool(passed) if passed is not None else None,
        run_id=row.run_id,
        created_by=row.created_by,
        created_at=row.created_at,
    )


_VERSION_LIST_COLUMNS = [
    r.model_versions.c.version,
    r.model_versions.c.flavor,
    r.model_versions.c.estimator,
    r.model_versions.c.metrics,
    r.model_versions.c.gate,
    r.model_versions.c.run_id,
    r.model_versions.c.created_by,
    r.model_versions.c.created_at,
]


def list_model_versions(
    db: MetadataStore,
    name: str,
    *,
    before: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[ModelVersionSummary]:
    """Versions of a model, newest first, each with the aliases pointing at it.

    Raises:
        NotFoundError: no such model.
        QueryError: a bad cursor or limit.
    """
    check_limit(limit)
    v = r.model_versions
    with reading(db) as c:
        model = _model_row(c, name)
        rows, next_cursor, prev_cursor = paginate(
            c,
            sa.select(*_VERSION_LIST_COLUMNS).where(v.c.model_id == model.id),
            order=[(v.c.version, True)],
            key=lambda row: (row.version,),
            before=before,
            after=after,
            limit=limit,
        )
        aliases = _aliases(c, [model.id])[model.id]
    items = tuple(_version_summary(name, row, aliases) for row in rows)
    return Page(items, next_cursor, prev_cursor, limit)


def get_model_version(db: MetadataStore, name: str, version: int | str) -> ModelVersionDetail:
    """One version (a number, or an alias) with everything its model card shows.

    Raises:
        NotFoundError: no such model, version or alias.
    """
    v = r.model_versions
    with reading(db) as c:
        model = _model_row(c, name)
        aliases = _aliases(c, [model.id])[model.id]
        if isinstance(version, str) and not version.isdigit():
            if version not in aliases:
                raise NotFoundError(
                    f"Model {name!r} has no alias {version!r}."
                    + did_you_mean(version, list(aliases))
                    + (f" Its aliases: {', '.join(aliases)}." if aliases else "")
                )
            number = aliases[version]
        else:
            number = int(version)
        row = c.execute(sa.select(v).where(v.c.model_id == model.id, v.c.version == number)).first()
        if row is None:
            raise NotFoundError(
                f"Model {name!r} has no version {number}. Its latest is {model.latest_version}."
            )
    return ModelVersionDetail(
        version=_version_summary(name, row, aliases),
        content_hash=row.content_hash,
        size=row.size,
        signature=row.signature or {},
        library_versions=row.library_versions or {},
        report=row.report,
        gate=row.gate,
        description=row.description,
        tags=row.tags or {},
        step_run_id=row.step_run_id,
    )


def audit_log(
    db: MetadataStore,
    name: str,
    *,
    alias: str | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[AuditEntry]:
    """The audit log of a model (optionally one alias), newest first.

    Raises:
        NotFoundError: no such model.
        QueryError: a bad cursor or limit.
    """
    check_limit(limit)
    e = r.registry_events
    with reading(db) as c:
        model = _model_row(c, name)
        query = sa.select(e).where(e.c.model_id == model.id)
        if alias is not None:
            query = query.where(e.c.alias == alias)
        rows, next_cursor, prev_cursor = paginate(
            c,
            query,
            order=[(e.c.id, True)],
            key=lambda row: (row.id,),
            before=before,
            after=after,
            limit=limit,
        )
    items = tuple(
        AuditEntry(
            id=row.id,
            name=name,
            action=row.action,
            alias=row.alias,
            from_version=row.from_version,
            to_version=row.to_version,
            actor=row.actor,
            reason=row.reason,
            run_id=row.run_id,
            created_at=row.created_at,
        )
        for row in rows
    )
    return Page(items, next_cursor, prev_cursor, limit)


def list_gate_decisions(
    db: MetadataStore,
    *,
    model: str | None = None,
    run_id: str | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> Page[GateDecision]:
    """Gate decisions, newest first, optionally of one model or one run.

    Raises:
        QueryError: a bad cursor or limit.
    """
    check_limit(limit)
    g = r.gate_decisions
    query = sa.select(g)
    if model is not None:
        query = query.where(g.c.model_name == model)
    if run_id is not None:
        query = query.where(g.c.run_id == run_id)
    with reading(db) as c:
        rows, next_cursor, prev_cursor = paginate(
            c,
            query,
            order=[(g.c.created_at, True), (g.c.id, True)],
            key=lambda row: (row.created_at, row.id),
            before=before,
            after=after,
            limit=limit,
        )
    items = tuple(
        GateDecision(
            id=row.id,
            model_name=row.model_name,
            champion=row.champion,
            champion_version=row.champion_version,
            passed=bool(row.passed),
            primary_metric=row.primary_metric,
            decision=row.decision or {},
            run_id=row.run_id,
            step_run_id=row.step_run_id,
            created_at=row.created_at,
        )
        for row in rows
    )
    return Page(items, next_cursor, prev_cursor, limit)


def promote(
    db: MetadataStore,
    artifacts: ArtifactStore,
    name: str,
    version: int,
    alias: str,
    *,
    actor: str,
    reason: str | None = None,
    force: bool = False,
) -> AuditEntry | None:
    """Point `name@alias` at `version`, recorded in the audit log under `actor`.

    Returns None when the alias already points there (nothing recorded).

    Raises:
        ModelError: an invalid alias, or a version its gate refused without `force`.
        NotFoundError: no such model or version.
    """
    from conveyor.registry.registry import Registry

    event = Registry(db, artifacts).promote(
        name, version, alias, reason=reason, actor=actor, force=force
    )
    return None if event is None else _entry(event)


def rollback(
    db: MetadataStore,
    artifacts: ArtifactStore,
    name: str,
    alias: str,
    *,
    actor: str,
    reason: str | None = None,
) -> AuditEntry:
    """Point `name@alias` back at its previous holder, recorded under `actor`.

    Raises:
        NotFoundError: no such model or alias.
        ModelError: the alias has had only one holder.
    """
    from conveyor.registry.registry import Registry

    return _entry(Registry(db, artifacts).rollback(name, alias, reason=reason, actor=actor))


def _entry(event: Any) -> AuditEntry:
    return AuditEntry(
        id=event.id,
        name=event.name,
        action=event.action,
        alias=event.alias,
        from_version=event.from_version,
        to_version=event.to_version,
        actor=event.actor,
        reason=event.reason,
        run_id=event.run_id,
        created_at=event.created_at,
    )
