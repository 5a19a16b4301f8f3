"""The model registry: named models, integer versions, movable aliases and their audit log.

References: ``name@alias`` (the version an alias points to), ``name/3`` (version 3) and
``name`` (the latest version). Every alias move is one transaction that locks the model's
row first (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` takes the
write lock), so concurrent promotions serialize instead of overwriting each other, and the
audit log's "from version" is always the holder the move replaced.
"""

from __future__ import annotations

import getpass
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor._internal.ids import new_id
from conveyor.exceptions import ModelError, NotFoundError, did_you_mean
from conveyor.registry import fastload
from conveyor.registry.refs import (
    ModelRef,
    ModelVersion,
    RegistryEvent,
    check_alias,
    check_name,
)
from conveyor.stores.metadata import events as ev
from conveyor.stores.metadata import tables_registry as r

if TYPE_CHECKING:
    from conveyor.stores.artifacts import ArtifactStore
    from conveyor.stores.metadata import MetadataStore
    from conveyor.training.model import Model


REGISTER = "register"
PROMOTE = "promote"
ROLLBACK = "rollback"
NOT_PROMOTED = "not_promoted"


def _actor(actor: str | None) -> str | None:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def _run_link() -> tuple[str | None, str | None]:
    from conveyor.core.context import current_context

    context = current_context()
    if context is None:
        return None, None
    return context.run_id, context.step_run_id


def _as_dict(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    raise ModelError(
        f"Expected a report or decision with to_dict(), or a dict. Got {type(value).__name__}."
    )


# Loaded models by content hash: the same bytes always give the same model, so a cache hit
# never needs a check against the store beyond resolving the reference.
_CACHE: OrderedDict[str, Model] = OrderedDict()
_CACHE_SIZE = 16
_CACHE_LOCK = threading.Lock()


class Registry:
    """The registry over one metadata store and one artifact store.

    Methods are thread safe; each write is one transaction.
    """

    def __init__(self, metadata_store: MetadataStore, artifact_store: ArtifactStore) -> None:
        self.metadata_store = metadata_store
        self.artifact_store = artifact_store
        self.engine = metadata_store.engine

    # ------------------------------------------------------------------ helpers
    def _lock_model(self, c: sa.Connection, name: str) -> sa.Row[Any]:
        query = sa.select(r.models).where(r.models.c.name == name)
        if c.dialect.name == "postgresql":
            query = query.with_for_update()
        row = c.execute(query).first()
        if row is None:
            raise self._no_model(c, name)
        return row

    def _no_model(self, c: sa.Connection, name: str) -> NotFoundError:
        names = list(c.execute(sa.select(r.models.c.name).order_by(r.models.c.name)).scalars())
        return NotFoundError(
            f"No model named {name!r} in the registry."
            + did_you_mean(name, names)
            + (
                " Registered models: " + ", ".join(names[:20]) + "."
                if names
                else " Register one with conveyor.registry.register_model(model, name)."
            )
        )

    def _version_row(self, c: sa.Connection, model_id: str, name: str, version: int) -> Any:
        row = c.execute(
            sa.select(r.model_versions).where(
                r.model_versions.c.model_id == model_id, r.model_versions.c.version == version
            )
        ).first()
        if row is None:
            versions = list(
                c.execute(
                    sa.select(r.model_versions.c.version)
                    .where(r.model_versions.c.model_id == model_id)
                    .order_by(r.model_versions.c.version)
                ).scalars()
            )
            listing = _ranges(versions) if versions else "none yet"
            raise NotFoundError(
                f"Model {name!r} has no version {version}. Its versions: {listing}. "
                f"See them with `conveyor models show {name}`."
            )
        return row

    def _aliases(self, c: sa.Connection, model_id: str) -> dict[str, int]:
        return {
            row.alias: row.version
            for row in c.execute(
                sa.select(r.model_aliases.c.alias, r.model_aliases.c.version).where(
                    r.model_aliases.c.model_id == model_id
                )
            )
        }

    @staticmethod
    def _version(name: str, row: Any, aliases: Sequence[str] = ()) -> ModelVersion:
        return ModelVersion(
            name=name,
            version=row.version,
            content_hash=row.content_hash,
            uri=row.uri,
            size=row.size,
            flavor=row.flavor,
            estimator=row.estimator,
            signature=dict(row.signature or {}),
            metrics=dict(row.metrics or {}),
            library_versions=dict(row.library_versions or {}),
            report=row.report,
            gate=row.gate,
            description=row.description,
            tags=dict(row.tags or {}),
            run_id=row.run_id,
            step_run_id=row.step_run_id,
            created_by=row.created_by,
            created_at=row.created_at,
            aliases=tuple(sorted(aliases)),
            trusted_types=tuple(row.trusted_types or ()),
        )

    def _move_alias(
        self,
        c: sa.Connection,
        model_id: str,
        alias: str,
        version: int,
        *,
        action: str,
        actor: str | None,
        reason: str | None,
        run_id: str | None,
    ) -> bool:
        """Point `alias` at `version` and log it; the caller holds the model's lock.

        Returns False (and logs nothing) when the alias already points there.
        """
        now = time.time()
        current = c.execute(
            sa.select(r.model_aliases.c.version).where(
                r.model_aliases.c.model_id == model_id, r.model_aliases.c.alias == alias
            )
        ).scalar_one_or_none()
        if current == version:
            return False
        if current is None:
            c.execute(
                r.model_aliases.insert(),
                [
                    {
                        "model_id": model_id,
                        "alias": alias,
                        "version": version,
                        "updated_at": now,
                        "updated_by": actor,
                    }
                ],
            )
        else:
            c.execute(
                r.model_aliases.update()
                .where(r.model_aliases.c.model_id == model_id, r.model_aliases.c.alias == alias)
                .values(version=version, updated_at=now, updated_by=actor)
            )
        c.execute(
            r.registry_events.insert(),
            [
                {
                    "model_id": model_id,
                    "action": action,
                    "alias": alias,
                    "from_version": current,
                    "to_version": version,
                    "actor": actor,
                    "reason": reason,
                    "run_id": run_id,
                    "created_at": now,
                }
            ],
        )
        name = c.execute(sa.select(r.models.c.name).where(r.models.c.id == model_id)).scalar()
        verb = "rolled back to" if action == ROLLBACK else "moved to"
        ev.record_event(
            c,
            ev.ROLLBACK if action == ROLLBACK else ev.ALIAS_MOVED,
            f"{name}@{alias}",
            f"{name}@{alias} {verb} version {version}"
            + (f" (from {current})" if current is not None else "")
            + (f" by {actor}" if actor else "")
            + (f": {reason}" if reason else ""),
            links={"model_version": f"{name}/{version}", "run_id": run_id},
            data={"from_version": current, "to_version": version, "actor": actor},
        )
        return True

    # ------------------------------------------------------------------ writes
    def register(
        self,
        model: Model,
        name: str,
        *,
        report: Any = None,
        decision: Any = None,
        promote_to: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        reason: str | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Store `model` as the next version of `name` (created on first use).

        With `promote_to`, the new version also takes that alias in the same transaction,
        unless `decision` (a gate decision) did not pass: then the version is registered,
        not promoted, and the refusal and its reasons are logged.

        Raises:
            ModelError: an invalid name or alias, or `model` is not a Model.
        """
        from conveyor.training.model import Model

        check_name(name)
        if promote_to is not None:
            check_alias(promote_to)
        if not isinstance(model, Model):
            raise ModelError(
                f"register_model expects a conveyor Model. Got {type(model).__name__}; wrap "
                "the fitted estimator with Model.from_fitted(estimator, train_frame)."
            )
        data = model.to_bytes()
        content_hash, uri = self.artifact_store.put(data)
        # The fast-load copy (a pickle of the live model, see conveyor.registry.fastload):
        # its blob is flushed before the row recording its hash commits with the version's.
        fast = fastload.dumps(model)
        fast_hash = self.artifact_store.put(fast)[0] if fast is not None else None
        header = model.header()
        decision_dict = _as_dict(decision)
        report_dict = _as_dict(report)
        run_id, step_run_id = _run_link()
        who = _actor(actor)
        tag_values = {str(k): str(v) for k, v in (tags or {}).items()}
        for attempt in range(5):
            try:
                with self.engine.begin() as c:
                    now = time.time()
                    query = sa.select(r.models).where(r.models.c.name == name)
                    if c.dialect.name == "postgresql":
                        query = query.with_for_update()
                    row = c.execute(query).first()
                    if row is None:
                        model_id = new_id()
                        c.execute(
                            r.models.insert(),
                            [
                                {
                                    "id": model_id,
                                    "name": name,
                                    "description": description,
                                    "tags": {},
                                    "latest_version": 0,
                                    "created_at": now,
                                    "updated_at": now,
                                }
                            ],
                        )
                        latest = 0
                    else:
                        model_id, latest = row.id, row.latest_version
                    version = latest + 1
                    c.execute(
                        r.models.update()
                        .where(r.models.c.id == model_id)
                        .values(latest_version=version, updated_at=now)
                    )
                    values = {
                        "id": new_id(),
                        "model_id": model_id,
                        "version": version,
                        "content_hash": content_hash,
                        "uri": uri,
                        "size": len(data),
                        "flavor": model.flavor,
                        "estimator": header["estimator"],
                        "signature": header["signature"],
                        "metrics": model.metrics,
                        "library_versions": model.library_versions,
                        "report": report_dict,
                        "gate": decision_dict,
                        "description": description,
                        "tags": tag_values,
                        "run_id": run_id,
                        "step_run_id": step_run_id,
                        "created_by": who,
                        "created_at": now,
                        "trusted_types": model.trusted_types(),
                    }
                    c.execute(r.model_versions.insert(), [values])
                    if fast_hash is not None:
                        fastload.record(c, content_hash, fast_hash)
                    c.execute(
                        r.registry_events.insert(),
                        [
                            {
                                "model_id": model_id,
                                "action": REGISTER,
                                "alias": None,
                                "from_version": None,
                                "to_version": version,
                                "actor": who,
                                "reason": reason,
                                "run_id": run_id,
                                "created_at": now,
                            }
                        ],
                    )
                    ev.record_event(
                        c,
                        ev.MODEL_REGISTERED,
                        name,
                        f"{name} version {version} registered ({header['estimator']})",
                        links={"model_version": f"{name}/{version}", "run_id": run_id},
                        data={"metrics": dict(model.metrics or {}), "actor": who},
                    )
                    aliases: list[str] = []
                    if promote_to is not None:
                        if decision_dict is not None and not decision_dict.get("passed", False):
                            reasons = "; ".join(decision_dict.get("reasons", [])) or "gate failed"
                            c.execute(
                                r.registry_events.insert(),
                                [
                                    {
                                        "model_id": model_id,
                                        "action": NOT_PROMOTED,
                                        "alias": promote_to,
                                        "from_version": None,
                                        "to_version": version,
                                        "actor": who,
                                        "reason": f"Gate failed: {reasons}",
                                        "run_id": run_id,
                                        "created_at": now,
                                    }
                                ],
                            )
                        else:
                            self._move_alias(
                                c,
                                model_id,
                                promote_to,
                                version,
                                action=PROMOTE,
                                actor=who,
                                reason=reason,
                                run_id=run_id,
                            )
                            aliases.append(promote_to)
                    stored = c.execute(
                        sa.select(r.model_versions).where(r.model_versions.c.id == values["id"])
                    ).one()
                return self._version(name, stored, aliases)
            except sa.exc.IntegrityError:
                # Another process created the same model between our read and insert
                # (PostgreSQL); the retry finds its row and locks it.
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def promote(
        self,
        name: str,
        version: int,
        alias: str,
        *,
        reason: str | None = None,
        actor: str | None = None,
        force: bool = False,
    ) -> RegistryEvent | None:
        """Point `name@alias` at `version`; None when it already points there.

        A version its gate refused for `alias` moves only with `force`; the audit log's
        reason then says so (see `conveyor.registry.guards`).

        Raises:
            ModelError: an invalid alias, or the gate refused the version and `force`
                is off.
            NotFoundError: no such model or version (lists the versions).
        """
        from conveyor.registry.guards import check_promotion

        check_alias(alias)
        check_name(name)
        who = _actor(actor)
        run_id, _ = _run_link()
        with self.engine.begin() as c:
            model = self._lock_model(c, name)
            row = self._version_row(c, model.id, name, int(version))
            reason = check_promotion(c, model.id, name, row, alias, force=force, reason=reason)
            moved = self._move_alias(
                c,
                model.id,
                alias,
                int(version),
                action=PROMOTE,
                actor=who,
                reason=reason,
                run_id=run_id,
            )
        if not moved:
            return None
        return self.history(name, alias=alias, limit=1)[0]

    def rollback(
        self,
        name: str,
        alias: str,
        *,
        reason: str | None = None,
        actor: str | None = None,
    ) -> RegistryEvent:
        """Point `name@alias` back at the version that held it before the current one.

        Repeated rollbacks walk further back (a rollback undoes the move it reverts).

        Raises:
            NotFoundError: no such model or alias.
            ModelError: an invalid name or alias, or the alias has had only one holder.
        """
        check_alias(alias)
        check_name(name)
        who = _actor(actor)
        run_id, _ = _run_link()
        with self.engine.begin() as c:
            model = self._lock_model(c, name)
            aliases = self._aliases(c, model.id)
            if alias not in aliases:
                raise NotFoundError(
                    f"Model {name!r} has no alias {alias!r}."
                    + did_you_mean(alias, list(aliases))
                    + (f" Its aliases: {', '.join(sorted(aliases))}." if aliases else "")
                )
            moves = c.execute(
                sa.select(r.registry_events.c.action, r.registry_events.c.to_version)
                .where(
                    r.registry_events.c.model_id == model.id,
                    r.registry_events.c.alias == alias,
                    r.registry_events.c.action.in_([PROMOTE, ROLLBACK]),
                )
                .order_by(r.registry_events.c.id)
            ).all()
            holders: list[int] = []
            for move in moves:
                if move.action == PROMOTE:
                    holders.append(move.to_version)
                elif holders:
                    holders.pop()
            if len(holders) < 2:
                raise ModelError(
                    f"{name}@{alias} has no previous holder to roll back to (it points at "
                    f"version {aliases[alias]}, its first). Promote a version instead: "
                    f"`conveyor models promote {name} VERSION --alias {alias}`."
                )
            self._move_alias(
                c,
                model.id,
                alias,
                holders[-2],
                action=ROLLBACK,
                actor=who,
                reason=reason,
                run_id=run_id,
            )
        return self.history(name, alias=alias, limit=1)[0]

    def record_gate(self, decision: Mapping[str, Any]) -> str:
        """Store a gate decision; returns its id."""
        run_id, step_run_id = _run_link()
        decision_id = new_id()
        with self.engine.begin() as c:
            c.execute(
                r.gate_decisions.insert(),
                [
                    {
                        "id": decision_id,
                        "model_name": decision.get("model_name"),
                        "champion": decision.get("champion"),
                        "champion_version": decision.get("champion_version"),
                        "passed": bool(decision["passed"]),
                        "primary_metric": decision["primary"],
                        "decision": dict(decision),
                        "run_id": run_id,
                        "step_run_id": step_run_id,
                        "created_at": time.time(),
                    }
                ],
            )
            passed = bool(decision["passed"])
            name = str(decision.get("model_name") or "model")
            reasons = [str(x) for x in decision.get("reasons", [])]
            ev.record_event(
                c,
                ev.GATE_PASSED if passed else ev.GATE_REFUSED,
                name,
                f"Gate {'passed' if passed else 'refused'} the candidate for {name}"
                + (f" against {decision.get('champion')}" if decision.get("champion") else "")
                + (f": {'; '.join(reasons)}" if reasons else ""),
                links={"gate_decision": decision_id, "run_id": run_id},
                data={"primary": decision.get("primary"), "reasons": reasons},
            )
        return decision_id

    # ------------------------------------------------------------------ reads
    def resolve(self, ref: str | ModelRef) -> ModelVersion:
        """The version a reference points to.

        Raises:
            ModelError: a malformed reference.
            NotFoundError: no such model, alias or version (with close matches).
        """
        parsed = ref if isinstance(ref, ModelRef) else ModelRef.parse(ref)
        mv, m = r.model_versions, r.models
        query = sa.select(mv).join(m, m.c.id == mv.c.model_id).where(m.c.name == parsed.name)
        if parsed.alias is not None:
            a = r.model_aliases
            query = query.join(
                a, sa.and_(a.c.model_id == mv.c.model_id, a.c.version == mv.c.version)
            ).where(a.c.alias == parsed.alias)
        elif parsed.version is not None:
            query = query.where(mv.c.version == parsed.version)
        else:
            query = query.order_by(mv.c.version.desc()).limit(1)
        with self.engine.connect() as c:
            row = c.execute(query).first()
            if row is not None:
                aliases = (parsed.alias,) if parsed.alias else ()
                return self._version(parsed.name, row, aliases)
            model = c.execute(sa.select(m).where(m.c.name == parsed.name)).first()
            if model is None:
                raise self._no_model(c, parsed.name)
            if parsed.alias is not None:
                aliases_now = self._aliases(c, model.id)
                raise NotFoundError(
                    f"Model {parsed.name!r} has no alias {parsed.alias!r}."
                    + did_you_mean(parsed.alias, list(aliases_now))
                    + (
                        f" Its aliases: {', '.join(sorted(aliases_now))}."
                        if aliases_now
                        else f" Promote a version: `conveyor models promote {parsed.name} "
                        f"VERSION --alias {parsed.alias}`."
                    )
                )
            self._version_row(c, model.id, parsed.name, parsed.version or 0)
        raise NotFoundError(f"No version matches {parsed}.")  # pragma: no cover

    def load(self, ref: str | ModelRef | ModelVersion) -> Model:
        """The Model a reference points to; cached by content hash after the first load.

        A scikit-learn model loads from the pickle recorded for it in the database when
        its bytes hash to the recorded value (no skops import); otherwise through skops and
        the trust checks, which then records such a pickle (`conveyor.registry.fastload`).

        Raises:
            NotFoundError: the reference names nothing.
            ArtifactCorruptError: the model's bytes are missing or damaged.
            ModelError: the model's bytes name a type that is not trusted.
        """
        version = ref if isinstance(ref, ModelVersion) else self.resolve(ref)
        with _CACHE_LOCK:
            cached = _CACHE.get(version.content_hash)
            if cached is not None:
                _CACHE.move_to_end(version.content_hash)
                return cached
        model = fastload.load(
            self.artifact_store,
            version.content_hash,
            engine=self.engine,
            trusted=version.trusted_types,
            flavor=version.flavor,
        )
        with _CACHE_LOCK:
            _CACHE[version.content_hash] = model
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        return model

    def get_version(self, name: str, version: int) -> ModelVersion:
        with self.engine.connect() as c:
            model = c.execute(sa.select(r.models).where(r.models.c.name == name)).first()
            if model is None:
                raise self._no_model(c, name)
            row = self._version_row(c, model.id, name, version)
            aliases = [a for a, v in self._aliases(c, model.id).items() if v == version]
        return self._version(name, row, aliases)

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of `name`, newest first, with the aliases each holds."""
        with self.engine.connect() as c:
            model = c.execute(sa.select(r.models).where(r.models.c.name == name)).first()
            if model is None:
                raise self._no_model(c, name)
            by_version: dict[int, list[str]] = {}
            for alias, version in self._aliases(c, model.id).items():
                by_version.setdefault(version, []).append(alias)
            rows = c.execute(
                sa.select(r.model_versions)
                .where(r.model_versions.c.model_id == model.id)
                .order_by(r.model_versions.c.version.desc())
            ).all()
        return [self._version(name, row, by_version.get(row.version, [])) for row in rows]

    def list_models(self) -> list[dict[str, Any]]:
        """Every model: name, description, latest version, aliases, times."""
        with self.engine.connect() as c:
            models = c.execute(sa.select(r.models).order_by(r.models.c.name)).all()
            aliases: dict[str, dict[str, int]] = {}
            for row in c.execute(sa.select(r.model_aliases)):
                aliases.setdefault(row.model_id, {})[row.alias] = row.version
        return [
            {
                "name": m.name,
                "description": m.description,
                "latest_version": m.latest_version,
                "aliases": dict(sorted(aliases.get(m.id, {}).items())),
                "created_at": m.created_at,
                "updated_at": m.updated_at,
            }
            for m in models
        ]

    def history(
        self, name: str, *, alias: str | None = None, limit: int | None = None
    ) -> list[RegistryEvent]:
        """The audit log of `name` (optionally one alias), newest first."""
        with self.engine.connect() as c:
            model = c.execute(sa.select(r.models).where(r.models.c.name == name)).first()
            if model is None:
                raise self._no_model(c, name)
            query = (
                sa.select(r.registry_events)
                .where(r.registry_events.c.model_id == model.id)
                .order_by(r.registry_events.c.id.desc())
            )
            if alias is not None:
                query = query.where(r.registry_events.c.alias == alias)
            if limit is not None:
                query = query.limit(limit)
            rows = c.execute(query).all()
        return [
            RegistryEvent(
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
        ]

    def lineage(self, ref: str) -> dict[str, Any]:
        """Where a version came from: its run, step, code version and upstream artifacts,
        the trigger event (and monitor report) that started the run, and the origin of the
        dataset versions it read (see `conveyor.registry.hops`).

        Raises:
            NotFoundError: the reference names nothing.
        """
        from conveyor.registry.hops import add_hops

        return add_hops(self._lineage(ref), self.metadata_store)

    def _lineage(self, ref: str) -> dict[str, Any]:
        """Where a version came from: its run, step, code version and upstream artifacts.

        Raises:
            NotFoundError: the reference names nothing.
        """
        version = self.resolve(ref)
        out: dict[str, Any] = {
            "model": version.to_dict(),
            "run": None,
            "step_run": None,
            "code": None,
            "inputs": [],
            "upstream": [],
            "data": [],
        }
        store = self.metadata_store
        if version.run_id is None:
            return out
        try:
            run = store.get_run(version.run_id)
        except NotFoundError:
            return out
        out["run"] = {
            k: run.get(k)
            for k in ("id", "pipeline", "status", "created_at", "ended_at", "params", "tags")
        }
        out["code"] = {"sha": run.get("code_sha"), "dirty": run.get("code_dirty")}
        if version.step_run_id is None:
            return out
        try:
            step = store.get_step_run(version.step_run_id)
        except NotFoundError:
            return out
        out["step_run"] = {k: step.get(k) for k in ("id", "name", "step", "status", "params")}
        inputs = [e for e in store.step_edges([step["id"]]) if e["direction"] == "in"]
        seen: dict[str, dict[str, Any]] = {}
        for edge in inputs:
            artifact = store.get_artifact(edge["artifact_id"])
            out["inputs"].append(_artifact_view(edge["name"], artifact))
            graph = store.lineage(edge["artifact_id"])
            producers = graph["step_runs"]
            for artifact_id, row in graph["artifacts"].items():
                if artifact_id != edge["artifact_id"]:
                    seen[artifact_id] = _artifact_view(row["name"], row)
            for step_row in producers.values():
                seen.setdefault(
                    "step:" + step_row["id"],
                    {
                        "step_run": step_row["id"],
                        "step": step_row["name"],
                        "status": step_row["status"],
                    },
                )
        out["upstream"] = list(seen.values())
        steps = [step, *(store.get_step_run(k[5:]) for k in seen if k.startswith("step:"))]
        out["data"] = _data_read(steps)
        return out


def _data_read(steps: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Dataset versions and sources the given step runs recorded reading (deduplicated)."""
    found: dict[str, dict[str, Any]] = {}
    for step in steps:
        params = step.get("params") or {}
        dataset = params.get("dataset")
        if isinstance(dataset, Mapping) and dataset.get("ref"):
            found.setdefault(
                f"dataset:{dataset['ref']}",
                {"dataset": dataset["ref"], "source": dataset.get("source"), "step": step["name"]},
            )
        for source in params.get("data_sources") or []:
            if isinstance(source, Mapping) and source.get("uri"):
                key = f"source:{source['uri']}:{source.get('version')}"
                found.setdefault(key, {**source, "step": step["name"]})
    return list(found.values())


def _artifact_view(name: str, artifact: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "artifact_id": artifact["id"],
        "content_hash": artifact["content_hash"],
        "type": artifact["type_name"],
        "summary": artifact.get("summary"),
        "run_id": artifact.get("run_id"),
    }


def _ranges(values: Sequence[int]) -> str:
    """'1-3, 5' for [1, 2, 3, 5]."""
    parts: list[str] = []
    start = prev = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ", ".join(parts)


# ---------------------------------------------------------------------------- functions
def get_registry(
    metadata_store: MetadataStore | None = None, artifact_store: ArtifactStore | None = None
) -> Registry:
    """A Registry on the given stores, or on those of the current settings."""
    from conveyor.stores.defaults import default_stores

    metadata_store, artifact_store = default_stores(metadata_store, artifact_store)
    return Registry(metadata_store, artifact_store)


def register_model(
    model: Model,
    name: str,
    *,
    report: Any = None,
    decision: Any = None,
    promote_to: str | None = None,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    reason: str | None = None,
    actor: str | None = None,
    metadata_store: MetadataStore | None = None,
    artifact_store: ArtifactStore | None = None,
) -> ModelVersion:
    """Register `model` as the next version of `name`; see `Registry.register`.

    Inside a running step, the version is linked to that run and step run.
    """
    return get_registry(metadata_store, artifact_store).register(
        model,
        name,
        report=report,
        decision=decision,
        promote_to=promote_to,
        description=description,
        tags=tags,
        reason=reason,
        actor=actor,
    )


def load_model(
    ref: str,
    *,
    metadata_store: MetadataStore | None = None,
    artifact_store: ArtifactStore | None = None,
) -> Model:
    """The Model for ``name@alias``, ``name/3`` or ``name`` (latest)."""
    return get_registry(metadata_store, artifact_store).load(ref)


def resolve(
    ref: str,
    *,
    metadata_store: MetadataStore | None = None,
    artifact_store: ArtifactStore | None = None,
) -> ModelVersion:
    """The ModelVersion a reference points to."""
    return get_registry(metadata_store, artifact_store).resolve(ref)


def promote(
    name: str,
    version: int,
    alias: str,
    reason: str | None = None,
    actor: str | None = None,
    *,
    force: bool = False,
    metadata_store: MetadataStore | None = None,
    artifact_store: ArtifactStore | None = None,
) -> RegistryEvent | None:
    """Point `name@alias` at `version` (one transaction, audit-logged); a version its gate
    refused for `alias` needs `force`."""
    return get_registry(metadata_store, artifact_store).promote(
        name, version, alias, reason=reason, actor=actor, force=force
    )


def rollback(
    name: str,
    alias: str,
    reason: str | None = None,
    actor: str | None = None,
    *,
    metadata_store: MetadataStore | None = None,
    artifact_store: ArtifactStore | None = None,
) -> RegistryEvent:
    """Point `name@alias` back at its previous holder."""
    return get_registry(metadata_store, artifact_store).rollback(
        name, alias, reason=reason, actor=actor
    )


def history(
    name: str,
    *,
    alias: str | None = None,
    metadata_store: MetadataStore | None = None,
    artifact_store: ArtifactStore | None = None,
) -> list[RegistryEvent]:
    """The audit log of `name`, newest first."""
    return get_registry(metadata_store, artifact_store).history(name, alias=alias)
