"""Read side of stored tuning studies: list them, and one study's trials, best trial and
best-so-far history (what `conveyor tune list` / `tune show` print)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from conveyor.exceptions import NotFoundError, did_you_mean
from conveyor.stores.metadata import tables_registry as r

if TYPE_CHECKING:
    from conveyor.stores.metadata import MetadataStore

COMPLETE = "complete"


@dataclass(frozen=True)
class StudyView:
    """A stored study with its trials.

    Attributes:
        study: The study's row (id, name, direction, space, sampler, pruner, run, created).
        trials: Trial rows in trial order.
        best: The best completed trial (None when none completed).
        history: Per completed trial in order: ``{"number", "value", "best"}`` where
            ``best`` is the best value so far.
        states: Trial count per state.
    """

    study: dict[str, Any]
    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": dict(self.study),
            "trials": [dict(t) for t in self.trials],
            "best": None if self.best is None else dict(self.best),
            "history": [dict(h) for h in self.history],
            "states": dict(self.states),
        }


def _completed(trial: dict[str, Any]) -> bool:
    value = trial.get("value")
    return trial.get("state") == COMPLETE and value is not None and not math.isnan(value)


def list_studies(store: MetadataStore) -> list[dict[str, Any]]:
    """Every study, newest first, with trial counts and its best value."""
    s, t = r.tuning_studies, r.tuning_trials
    counts = (
        sa.select(
            t.c.study_id,
            sa.func.count().label("trials"),
            sa.func.sum(sa.case((t.c.state == COMPLETE, 1), else_=0)).label("completed"),
            sa.func.max(sa.case((t.c.state == COMPLETE, t.c.value))).label("max_value"),
            sa.func.min(sa.case((t.c.state == COMPLETE, t.c.value))).label("min_value"),
        )
        .group_by(t.c.study_id)
        .subquery()
    )
    query = (
        sa.select(s, counts.c.trials, counts.c.completed, counts.c.max_value, counts.c.min_value)
        .outerjoin(counts, counts.c.study_id == s.c.id)
        .order_by(s.c.created_at.desc(), s.c.id.desc())
    )
    with store.engine.connect() as c:
        rows = [dict(row) for row in c.execute(query).mappings()]
    for row in rows:
        low, high = row.pop("min_value"), row.pop("max_value")
        row["best_value"] = low if row["direction"] == "minimize" else high
        row["trials"] = int(row["trials"] or 0)
        row["completed"] = int(row["completed"] or 0)
    return rows


def get_study(store: MetadataStore, name: str) -> StudyView:
    """The study with this name (the newest, if several share it) or id.

    Raises:
        NotFoundError: no such study (with the closest name).
    """
    s, t = r.tuning_studies, r.tuning_trials
    with store.engine.connect() as c:
        row = (
            c.execute(
                sa.select(s)
                .where(sa.or_(s.c.name == name, s.c.id == name))
                .order_by(s.c.created_at.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
        if row is None:
            names = sorted(set(c.execute(sa.select(s.c.name)).scalars()))
            raise NotFoundError(
                f"No tuning study named {name!r}."
                + did_you_mean(name, names)
                + (" Studies: " + ", ".join(names[:15]) + "." if names else " None stored yet.")
            )
        trials = [
            dict(x)
            for x in c.execute(
                sa.select(t).where(t.c.study_id == row["id"]).order_by(t.c.number)
            ).mappings()
        ]
    minimize = row["direction"] == "minimize"
    best: dict[str, Any] | None = None
    history = []
    states: dict[str, int] = {}
    for trial in trials:
        states[trial["state"]] = states.get(trial["state"], 0) + 1
        if not _completed(trial):
            continue
        if best is None or (
            trial["value"] < best["value"] if minimize else trial["value"] > best["value"]
        ):
            best = trial
        history.append({"number": trial["number"], "value": trial["value"], "best": best["value"]})
    return StudyView(dict(row), trials, best, history, states)


__all__ = ["StudyView", "get_study", "list_studies"]
