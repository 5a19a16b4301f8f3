"""Guards on alias moves: a version its gate refused for an alias is promoted to that alias
only when forced, and the audit log says it was forced and why the gate refused."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from conveyor.exceptions import ModelError
from conveyor.stores.metadata import tables_registry as r

NOT_PROMOTED = "not_promoted"


def gate_refusal(c: sa.Connection, model_id: str, name: str, row: Any, alias: str) -> str | None:
    """Why the gate refused version `row` for `alias`, or None when it did not.

    A refusal counts for `alias` when the version's recorded decision failed and was made
    against ``name@alias`` (or against no champion: thresholds only), or when registering
    it with ``promote_to=alias`` was refused.
    """
    decision = row.gate or {}
    if decision and not decision.get("passed", True):
        champion = decision.get("champion")
        if champion in (None, f"{name}@{alias}"):
            reasons = "; ".join(decision.get("reasons") or []) or "gate failed"
            return reasons
    refused = c.execute(
        sa.select(r.registry_events.c.reason)
        .where(
            r.registry_events.c.model_id == model_id,
            r.registry_events.c.action == NOT_PROMOTED,
            r.registry_events.c.alias == alias,
            r.registry_events.c.to_version == row.version,
        )
        .order_by(r.registry_events.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if refused is not None:
        return str(refused).removeprefix("Gate failed: ")
    return None


def check_promotion(
    c: sa.Connection,
    model_id: str,
    name: str,
    row: Any,
    alias: str,
    *,
    force: bool,
    reason: str | None,
) -> str | None:
    """The reason to log for the move; raises when the gate refused and `force` is off.

    Raises:
        ModelError: the version's gate refused it for `alias` (names the reasons and
            the way to force it).
    """
    refusal = gate_refusal(c, model_id, name, row, alias)
    if refusal is None:
        return reason
    if not force:
        raise ModelError(
            f"{name}/{row.version} was refused by its gate for {name}@{alias}: {refusal}. "
            "Promote it anyway with --force (force=True), which the audit log records."
        )
    forced = f"forced over the gate's refusal ({refusal})"
    return f"{reason}; {forced}" if reason else forced
