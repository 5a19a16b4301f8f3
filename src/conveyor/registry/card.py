"""Model cards generated from what the stores already know about a version.

Nothing here is typed in by hand: intended use is the registration's description, the
training data are the dataset versions the producing run read (with their stored
profiles), evaluation and gate come from the version's row, lineage from its run. A card
therefore can't drift from the model it describes. Markdown, HTML and JSON.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import NotFoundError

if TYPE_CHECKING:
    from conveyor.registry.registry import Registry


@dataclass(frozen=True)
class ModelCard:
    """The facts of one model version, grouped as a model card.

    Attributes:
        model: Name, version, aliases, estimator, flavor, who registered it and when.
        intended_use: The registration's description (None when none was given).
        training_data: Dataset versions the producing run read, with a profile summary.
        signature: Input columns and outputs.
        evaluation: Overall metrics, confidence interval and per-slice metrics.
        gate: The gate decision behind the version and its reasons (None without a gate).
        libraries: Library versions recorded with the model.
        lineage: Run, pipeline, step and code version that produced it.
        metrics: Metrics recorded on the version.
    """

    model: dict[str, Any]
    intended_use: str | None
    training_data: list[dict[str, Any]] = field(default_factory=list)
    signature: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    libraries: dict[str, str] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "intended_use": self.intended_use,
            "training_data": self.training_data,
            "signature": self.signature,
            "evaluation": self.evaluation,
            "gate": self.gate,
            "libraries": self.libraries,
            "lineage": self.lineage,
            "metrics": self.metrics,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)

    def to_markdown(self) -> str:
        return "\n".join(_markdown(self)) + "\n"

    def to_html(self) -> str:
        from jinja2 import Environment, PackageLoader, select_autoescape

        env = Environment(
            loader=PackageLoader("conveyor", "templates"),
            autoescape=select_autoescape(["html"]),
        )
        env.filters["num"] = _num
        return env.get_template("registry/model_card.html").render(card=self, when=_when)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(float(epoch), dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _column_summary(column: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": column.get("name"),
        "kind": column.get("kind"),
        "dtype": column.get("dtype"),
        "null_share": float(column.get("null_fraction") or 0.0),
    }
    for key in ("min", "max", "mean"):
        if column.get(key) is not None:
            out[key] = column[key]
    if column.get("top_k"):
        out["top"] = [str(value) for value, _ in column["top_k"][:5]]
    return out


def _training_data(registry: Registry, lineage: Mapping[str, Any]) -> list[dict[str, Any]]:
    from conveyor.data.datasets import get_dataset

    out: list[dict[str, Any]] = []
    for item in lineage.get("data") or []:
        ref = item.get("dataset")
        if not ref:
            out.append({"source": item.get("uri"), "version": item.get("version")})
            continue
        entry: dict[str, Any] = {"dataset": ref, "step": item.get("step")}
        try:
            version = get_dataset(str(ref), metadata_store=registry.metadata_store)
        except NotFoundError:
            entry["missing"] = True
            out.append(entry)
            continue
        entry.update(
            rows=version.row_count,
            source=version.source,
            fingerprint=version.fingerprint,
            created_at=version.created_at,
        )
        try:
            profile = version.load_profile(registry.artifact_store).to_dict(bins=0, top=5)
            entry["columns"] = [_column_summary(c) for c in profile["columns"].values()]
        except Exception as exc:  # a pruned artifact store: the card still renders
            entry["profile_error"] = f"{type(exc).__name__}: {exc}"
        out.append(entry)
    return out


def build_card(registry: Registry, ref: str) -> ModelCard:
    """The model card of `ref` (``name/3``, ``name@production``, ``name``).

    Raises:
        NotFoundError: the reference names no version.
    """
    version = registry.resolve(ref)
    lineage = registry.lineage(version.ref)
    report = version.report or None
    evaluation = None
    if report:
        evaluation = {
            "task": report.get("task"),
            "primary": report.get("primary"),
            "metrics": dict(report.get("metrics") or {}),
            "ci": dict(report.get("ci") or {}),
            "slices": dict(report.get("slices") or {}),
            "n_rows": report.get("n_rows"),
            "pos_label": report.get("pos_label"),
        }
    gate = None
    if version.gate:
        gate = {
            "passed": bool(version.gate.get("passed")),
            "reasons": list(version.gate.get("reasons") or []),
            "champion": version.gate.get("champion"),
            "primary": version.gate.get("primary"),
            "checks": list(version.gate.get("checks") or []),
        }
    run = lineage.get("run") or {}
    step = lineage.get("step_run") or {}
    code = lineage.get("code") or {}
    return ModelCard(
        model={
            "name": version.name,
            "version": version.version,
            "ref": version.ref,
            "aliases": list(version.aliases),
            "estimator": version.estimator,
            "flavor": version.flavor,
            "created_by": version.created_by,
            "created_at": version.created_at,
            "content_hash": version.content_hash,
            "tags": dict(version.tags),
        },
        intended_use=version.description,
        training_data=_training_data(registry, lineage),
        signature=dict(version.signature),
        evaluation=evaluation,
        gate=gate,
        libraries=dict(version.library_versions),
        lineage={
            "run_id": run.get("id"),
            "pipeline": run.get("pipeline"),
            "params": run.get("params"),
            "step": step.get("name"),
            "code_sha": code.get("sha"),
            "code_dirty": code.get("dirty"),
        },
        metrics=dict(version.metrics),
    )


def _signature_rows(signature: Mapping[str, Any]) -> list[tuple[str, str]]:
    inputs = signature.get("inputs") or signature.get("columns") or []
    rows = []
    for item in inputs:
        if isinstance(item, Mapping):
            rows.append((str(item.get("name")), str(item.get("type") or item.get("dtype"))))
        else:
            rows.append((str(item), ""))
    return rows


def _markdown(card: ModelCard) -> list[str]:
    m = card.model
    lines = [f"# Model card: {m['ref']}", ""]
    aliases = ", ".join(m["aliases"]) or "none"
    lines += [
        f"- Estimator: `{m['estimator']}` ({m['flavor']})",
        f"- Aliases: {aliases}",
        f"- Registered by {m['created_by'] or 'unknown'} on {_when(m['created_at'])}",
        "",
        "## Intended use",
        "",
        card.intended_use
        or "_No description was registered. Pass description=... to register_model._",
        "",
        "## Training data",
        "",
    ]
    if not card.training_data:
        lines.append("_The producing run recorded no dataset reads._")
    for data in card.training_data:
        if "dataset" not in data:
            lines.append(f"- source `{data.get('source')}` version {data.get('version')}")
            continue
        lines.append(
            f"- `{data['dataset']}`: {data.get('rows', '?')} rows from `{data.get('source')}`"
        )
        for column in data.get("columns", []):
            stats = ", ".join(
                f"{k} {_num(column[k])}" for k in ("min", "max", "mean") if k in column
            )
            lines.append(
                f"  - {column['name']} ({column['kind']}): nulls {column['null_share']:.1%}"
                + (f", {stats}" if stats else "")
            )
    lines += ["", "## Signature", "", "| input | type |", "|---|---|"]
    lines += [f"| {name} | {kind} |" for name, kind in _signature_rows(card.signature)]
    lines += ["", "## Evaluation", ""]
    if card.evaluation is None:
        lines.append("_No evaluation report was registered with this version._")
    else:
        ev = card.evaluation
        ci = ev.get("ci") or {}
        lines.append(f"Task {ev.get('task')}, {ev.get('n_rows')} holdout rows.")
        lines += ["", "| metric | value |", "|---|---|"]
        for name, value in sorted(ev["metrics"].items()):
            extra = ""
            if name == ev.get("primary") and ci:
                extra = f" (95% CI {_num(ci.get('low'))} to {_num(ci.get('high'))})"
            lines.append(f"| {name} | {_num(value)}{extra} |")
        for column, values in sorted((ev.get("slices") or {}).items()):
            lines += ["", f"Slices by `{column}`:", "", "| value | metrics |", "|---|---|"]
            for value, metrics in sorted(values.items(), key=lambda kv: str(kv[0])):
                text = ", ".join(f"{k} {_num(v)}" for k, v in sorted(metrics.items()))
                lines.append(f"| {value} | {text} |")
    lines += ["", "## Gate", ""]
    if card.gate is None:
        lines.append("_No gate decided this version._")
    else:
        verdict = "passed" if card.gate["passed"] else "refused"
        lines.append(
            f"The gate {verdict} this version"
            + (f" against {card.gate['champion']}" if card.gate.get("champion") else "")
            + "."
        )
        lines += [f"- {reason}" for reason in card.gate["reasons"]]
    lines += ["", "## Libraries", ""]
    lines += [f"- {k} {v}" for k, v in sorted(card.libraries.items())]
    lin = card.lineage
    lines += ["", "## Lineage", ""]
    if lin.get("run_id"):
        dirty = " (uncommitted changes)" if lin.get("code_dirty") else ""
        lines += [
            f"- Run `{lin['run_id']}` of pipeline `{lin.get('pipeline')}`,"
            f" step `{lin.get('step')}`",
            f"- Code version `{lin.get('code_sha') or 'unknown'}`{dirty}",
        ]
    else:
        lines.append("_Registered outside a pipeline run._")
    return lines
