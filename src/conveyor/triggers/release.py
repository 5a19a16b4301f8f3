"""`on_challenger_better`: start a run when a live comparison finds the challenger better."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import sqlalchemy as sa

from conveyor.exceptions import ConfigError
from conveyor.stores.metadata import tables_events as te
from conveyor.triggers.specs import Evaluation, Occurrence, Trigger, _check_cooldown


@dataclass(frozen=True)
class OnChallengerBetter(Trigger):
    """A stored release comparison of `monitor` found the challenger better.

    Attributes:
        monitor: The monitor whose comparisons are read (`conveyor monitor compare`).
        metric: The compared metric (the comparison's own must match).
        margin: The whole confidence interval of the difference must clear this margin.
        min_labeled: Labeled rows the comparison needs.
        cooldown: Minimum seconds between two runs started by this trigger.
    """

    monitor: str
    metric: str = "accuracy"
    margin: float = 0.0
    min_labeled: int = 100
    cooldown: float = 3600.0
    params: Mapping[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "challenger_better"

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ConfigError(
                f"The 'margin' parameter of on_challenger_better must be >= 0. Got {self.margin!r}."
            )
        if self.min_labeled < 1:
            raise ConfigError(
                "The 'min_labeled' parameter of on_challenger_better must be an int >= 1. Got "
                f"{self.min_labeled!r} instead."
            )
        _check_cooldown("on_challenger_better", self.cooldown)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "monitor": self.monitor,
            "metric": self.metric,
            "margin": self.margin,
            "min_labeled": self.min_labeled,
        }

    def evaluate(self, connection: sa.Connection, cursor: Any, now: float) -> Evaluation:
        rc = te.release_comparisons
        query = sa.select(rc).where(rc.c.monitor == self.monitor, rc.c.metric == self.metric)
        seen = (cursor or {}).get("created_at")
        if seen is not None:
            query = query.where(rc.c.created_at > seen)
        rows = list(connection.execute(query.order_by(rc.c.created_at)).all())
        occurrences = []
        for row in rows:
            if row.verdict != "challenger_better" or row.labeled < self.min_labeled:
                continue
            data = row.data or {}
            lower = self.metric in ("rmse", "mae", "log_loss", "brier")
            clears = (row.ci_high < -self.margin) if lower else (row.ci_low > self.margin)
            if not clears:
                continue
            occurrences.append(
                Occurrence(
                    dedup_key=f"comparison:{row.id}",
                    reason=(
                        f"monitor {self.monitor!r}: {row.model_name}/{row.challenger_version} "
                        f"beats {row.champion_version} on {self.metric} by "
                        f"{row.difference:+.4f} [{row.ci_low:+.4f}, {row.ci_high:+.4f}] "
                        f"({row.labeled} labeled rows, margin {self.margin})"
                    ),
                    details={
                        "monitor": self.monitor,
                        "comparison_id": row.id,
                        "model": row.model_name,
                        "champion_version": row.champion_version,
                        "challenger_version": row.challenger_version,
                        "metric": self.metric,
                        "difference": row.difference,
                        "mode": data.get("mode"),
                    },
                )
            )
        new_cursor = {"created_at": max(float(r.created_at) for r in rows)} if rows else cursor
        return Evaluation(occurrences[-1:], new_cursor)


def on_challenger_better(
    monitor: str,
    *,
    metric: str = "accuracy",
    margin: float = 0.0,
    min_labeled: int = 100,
    cooldown: float = 3600.0,
    params: Mapping[str, Any] | None = None,
) -> OnChallengerBetter:
    """Run when a live comparison of `monitor` finds the challenger better by `margin`."""
    return OnChallengerBetter(
        monitor,
        metric=metric,
        margin=margin,
        min_labeled=min_labeled,
        cooldown=cooldown,
        params=dict(params or {}),
    )
