"""Why a step re-ran (or was a cache hit): the components of its key and what differs.

`explain_step` reads the components recorded for a step run's cache key and compares them
with another step run: the one named by ``against``, else, for a cache hit, the step run
it reused, else the previous executed run of the same step in the same pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from conveyor.exceptions import NotFoundError
from conveyor.stores.metadata import MetadataStore

_ORDER = {
    kind: n
    for n, kind in enumerate(
        (
            "step",
            "setting",
            "function",
            "class",
            "module",
            "value",
            "global",
            "param",
            "input",
            "file",
            "env",
            "package",
            "model",
            "materializer",
            "library",
        )
    )
}


@dataclass(frozen=True)
class Difference:
    """One component that differs between two keys.

    Attributes:
        change: ``changed``, ``added`` (only in the explained run) or ``removed``.
        kind: The component kind (``function``, ``value``, ``param``...).
        name: The component name.
        where: Its file, when it has one.
        before: Short hash (or display value) in the other run.
        after: Short hash (or display value) in the explained run.
        message: A sentence such as "`CONFIG` in `steps/config.py` changed".
    """

    change: str
    kind: str
    name: str
    where: str
    before: str
    after: str
    message: str


def _short(name: str) -> str:
    return name.partition(":")[2] or name


def _label(component: Mapping[str, Any]) -> str:
    kind, name, where = component["kind"], component["name"], component.get("where", "")
    place = f" in `{where}`" if where else ""
    short = _short(name)
    labels = {
        "step": f"the step name `{name}`",
        "setting": f"the step setting `{name}`",
        "function": f"function `{short}`{place}",
        "class": f"class `{short}`{place}",
        "module": f"module `{name}` (hashed whole)",
        "value": f"`{short}`{place}",
        "global": f"what `{short}`{place} refers to",
        "param": f"parameter `{name}`",
        "input": f"input `{name}`",
        "file": f"file `{name}`",
        "env": f"environment variable `{name}`",
        "package": f"package `{name}`",
        "model": f"model `{name}`",
        "materializer": f"materializer `{name}`",
        "library": f"library `{name}`",
    }
    return labels.get(kind, f"{kind} `{name}`")


def _shown(component: Mapping[str, Any]) -> str:
    return str(component.get("value") or component["hash"][:12])


def _changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    message = f"{_label(after)} changed"
    old, new = before.get("detail") or {}, after.get("detail") or {}
    parts = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if parts and after["kind"] in ("function", "class"):
        message += f" ({', '.join(parts)})"
    shown_before, shown_after = before.get("value"), after.get("value")
    if after["kind"] == "env":
        if shown_before != shown_after:
            message += f" ({shown_before} -> {shown_after})"
    elif shown_before and shown_after and shown_before != shown_after:
        message += f": {shown_before} -> {shown_after}"
    return message


def diff_components(
    before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]
) -> list[Difference]:
    """The components that differ from `before` to `after`, most telling first."""
    old = {(c["kind"], c["name"]): c for c in before}
    new = {(c["kind"], c["name"]): c for c in after}
    out = []
    for key in sorted(set(old) | set(new), key=lambda k: (_ORDER.get(k[0], 99), k[1])):
        a, b = old.get(key), new.get(key)
        if a is not None and b is not None:
            if a["hash"] == b["hash"]:
                continue
            out.append(
                Difference(
                    "changed",
                    key[0],
                    key[1],
                    b.get("where", ""),
                    _shown(a),
                    _shown(b),
                    _changed(a, b),
                )
            )
        elif b is not None:
            out.append(
                Difference(
                    "added",
                    key[0],
                    key[1],
                    b.get("where", ""),
                    "",
                    _shown(b),
                    f"now also depends on {_label(b)}",
                )
            )
        elif a is not None:
            out.append(
                Difference(
                    "removed",
                    key[0],
                    key[1],
                    a.get("where", ""),
                    _shown(a),
                    "",
                    f"no longer depends on {_label(a)}",
                )
            )
    return out


def _step_run(
    metadata: MetadataStore, run_id: str, step: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    run = metadata.get_run(run_id)
    return run, metadata.find_step_run(run["id"], step)


def explain_step(
    metadata: MetadataStore, run_id: str, step: str, against: str | None = None
) -> dict[str, Any]:
    """The components of a step run's cache key and why it differs from another run's.

    Args:
        metadata: The metadata store.
        run_id: The run (id or unique prefix).
        step: The step's invocation name in that run.
        against: Another run to compare the same step with; by default the step run a
            cache hit reused, or the previous executed run of the step.

    Raises:
        NotFoundError: no such run or step, or the step has no recorded key components
            (it was skipped, or recorded by a conveyor that did not keep them).
    """
    run, row = _step_run(metadata, run_id, step)
    key = row.get("cache_key")
    recorded = metadata.cache_key_components([key] if key else [])
    if not key or key not in recorded:
        raise NotFoundError(
            f"Step {step!r} of run {run['id']} has no recorded cache key components "
            f"(status {row['status']}). Only steps that were started record them; re-run the "
            "pipeline to record them."
        )
    components = recorded[key]
    other: dict[str, Any] | None = None
    basis = ""
    if against is not None:
        _, other = _step_run(metadata, against, step)
        basis = "against"
    elif row.get("cache_hit") and row.get("cache_source"):
        other = metadata.get_step_run(row["cache_source"])
        basis = "cache source"
    else:
        other = metadata.previous_step_run(row)
        basis = "previous run"
    result: dict[str, Any] = {
        "run": run["id"],
        "step": row["name"],
        "step_run": row["id"],
        "status": row["status"],
        "cache_hit": bool(row.get("cache_hit")),
        "cache_key": key,
        "components": components,
        "compared_with": None,
        "differences": [],
    }
    if other is None:
        result["summary"] = (
            f"cache hit: reused step run {row['cache_source']}"
            if result["cache_hit"]
            else "ran: no earlier run of this step to compare with"
        )
        return result
    other_key = other.get("cache_key")
    other_components = metadata.cache_key_components([other_key] if other_key else []).get(
        other_key or ""
    )
    result["compared_with"] = {
        "run": other["run_id"],
        "step_run": other["id"],
        "cache_key": other_key,
        "basis": basis,
    }
    if other_key == key:
        result["summary"] = (
            f"cache hit: reused step run {other['id']} of run {other['run_id']} (same key)"
            if result["cache_hit"]
            else f"same cache key as step run {other['id']} of run {other['run_id']}: nothing "
            "that goes into the key differs"
        )
        return result
    if other_components is None:
        result["summary"] = (
            f"the key differs from step run {other['id']} of run {other['run_id']}, which has "
            "no recorded components to compare"
        )
        return result
    differences = diff_components(other_components, components)
    result["differences"] = [asdict(d) for d in differences]
    reasons = "; ".join(d.message for d in differences) or "the key differs"
    verb = "re-ran because" if not result["cache_hit"] else "differs because"
    result["summary"] = f"{verb} {reasons} (compared with run {other['run_id']})"
    return result


__all__ = ["Difference", "diff_components", "explain_step"]
