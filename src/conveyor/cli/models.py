"""`conveyor models`: list, show, history, promote, rollback and lineage of registered models.

Heavy modules (the registry, pandas, scikit-learn) are imported inside the commands, so
`conveyor --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from conveyor.cli import common

if TYPE_CHECKING:
    from conveyor.registry.registry import Registry

models_app = typer.Typer(
    help="The model registry: versions, aliases, audit log.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripting.")]


def _registry(ctx: typer.Context) -> Registry:
    from conveyor.registry.registry import Registry

    return Registry(common.metadata_store(ctx), common.artifact_store(ctx))


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    common.console().print(table)


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def _metrics(metrics: dict[str, Any], limit: int = 4) -> str:
    items = list(metrics.items())[:limit]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


@models_app.command("list")
def list_models(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Registered models with their latest version and aliases."""
    from conveyor.cli import remote

    client = remote.server_client(ctx)
    if client is not None:
        remote.models_list(client, json_out=as_json)
        return
    with common.errors_to_exit():
        models = _registry(ctx).list_models()
    if as_json:
        common.print_json(models)
        return
    if not models:
        common.console().print("No registered models yet.")
        return
    _table(
        "Models",
        ["name", "latest", "aliases", "updated", "description"],
        [
            [
                m["name"],
                str(m["latest_version"]),
                ", ".join(f"{a}->{v}" for a, v in m["aliases"].items()) or "-",
                common.format_time(m["updated_at"]),
                m["description"] or "",
            ]
            for m in models
        ],
    )


@models_app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name, name@alias or name/VERSION")],
    as_json: JsonFlag = False,
) -> None:
    """A model's versions, or one version's details (signature, metrics, gate)."""
    with common.errors_to_exit():
        registry = _registry(ctx)
        if "@" not in ref and "/" not in ref:
            versions = registry.versions(ref)
            if as_json:
                common.print_json([v.to_dict() for v in versions])
                return
            _table(
                f"Model {ref}",
                ["version", "aliases", "flavor", "metrics", "run", "created"],
                [
                    [
                        str(v.version),
                        ", ".join(v.aliases) or "-",
                        v.flavor,
                        _metrics(v.metrics),
                        v.run_id or "-",
                        common.format_time(v.created_at),
                    ]
                    for v in versions
                ],
            )
            return
        version = registry.resolve(ref)
        version = registry.get_version(version.name, version.version)
    if as_json:
        common.print_json(version.to_dict())
        return
    out = common.console()
    out.print(f"[bold]{version.ref}[/]  aliases: {', '.join(version.aliases) or '-'}")
    out.print(f"flavor: {version.flavor} ({version.estimator})")
    out.print(f"artifact: {version.content_hash}  ({version.size} bytes)")
    out.print(f"run: {version.run_id or '-'}  step run: {version.step_run_id or '-'}")
    out.print(f"created: {common.format_time(version.created_at)} by {version.created_by or '-'}")
    if version.description:
        out.print(f"description: {version.description}")
    if version.tags:
        out.print("tags: " + ", ".join(f"{k}={v}" for k, v in version.tags.items()))
    if version.metrics:
        out.print("metrics: " + _metrics(version.metrics, limit=20))
    if version.report:
        out.print("report metrics: " + _metrics(version.report.get("metrics", {}), limit=20))
    if version.gate:
        gate = version.gate
        verdict = "passed" if gate.get("passed") else "failed"
        out.print(f"gate: {verdict}; " + "; ".join(gate.get("reasons", [])))
        if gate.get("champion_version") is not None and gate.get("champion_metrics"):
            basis = (
                f"on the same {gate.get('rows')} holdout rows"
                if gate.get("champion_basis") == "holdout"
                else "from its stored report"
            )
            primary = gate.get("primary")
            mine = (gate.get("candidate_metrics") or {}).get(primary)
            theirs = gate["champion_metrics"].get(primary)
            out.print(
                f"  vs champion {gate.get('champion')} (version {gate['champion_version']}) "
                f"{basis}: {primary} {_num(mine)} vs {_num(theirs)}",
                highlight=False,
            )
    out.print(
        "library versions: " + ", ".join(f"{k} {v}" for k, v in version.library_versions.items())
    )
    columns = version.signature.get("columns", [])
    _table(
        "Signature",
        ["column", "dtype", "nullable", "categories"],
        [
            [
                c["name"],
                c["dtype"],
                "yes" if c.get("nullable") else "no",
                ", ".join(c["categories"][:8]) + (" ..." if len(c["categories"]) > 8 else "")
                if c.get("categories")
                else "-",
            ]
            for c in columns
        ],
    )


@models_app.command("history")
def history(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional on 3.11
        typer.Option("--alias", help="Only moves of this alias."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """The audit log: registrations and every alias move (who, when, why, from which)."""
    with common.errors_to_exit():
        events = _registry(ctx).history(name, alias=alias)
    if as_json:
        common.print_json([e.to_dict() for e in events])
        return
    _table(
        f"History of {name}",
        ["when", "action", "alias", "from", "to", "actor", "reason"],
        [
            [
                common.format_time(e.created_at),
                e.action,
                e.alias or "-",
                "-" if e.from_version is None else str(e.from_version),
                "-" if e.to_version is None else str(e.to_version),
                e.actor or "-",
                e.reason or "",
            ]
            for e in events
        ],
    )


ReasonOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--reason", help="Why; kept in the audit log."),
]
ActorOption = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option("--actor", help="Who (defaults to the OS user)."),
]


@models_app.command("promote")
def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to promote.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias to move, e.g. production.")],
    reason: ReasonOption = None,
    actor: ActorOption = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Promote a version its gate refused (audit-logged)."),
    ] = False,
) -> None:
    """Point NAME@ALIAS at VERSION (a version its gate refused needs --force)."""
    with common.errors_to_exit():
        event = _registry(ctx).promote(
            name, version, alias, reason=reason, actor=actor, force=force
        )
    if event is None:
        common.console().print(f"{name}@{alias} already points at version {version}.")
        return
    before = "nothing" if event.from_version is None else f"version {event.from_version}"
    common.console().print(f"{name}@{alias}: {before} -> version {event.to_version}.")


@models_app.command("rollback")
def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias to move back, e.g. production.")],
    reason: ReasonOption = None,
    actor: ActorOption = None,
) -> None:
    """Point NAME@ALIAS back at the version that held it before."""
    with common.errors_to_exit():
        event = _registry(ctx).rollback(name, alias, reason=reason, actor=actor)
    common.console().print(
        f"{name}@{alias}: version {event.from_version} -> version {event.to_version} (rollback)."
    )


@models_app.command("lineage")
def lineage(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="name/VERSION, name@alias or name")],
    as_json: JsonFlag = False,
) -> None:
    """The run, step, code version and upstream data that produced a model version."""
    from conveyor.cli.predictions import origin_lines

    with common.errors_to_exit():
        graph = _registry(ctx).lineage(ref)
    if as_json:
        common.print_json(graph)
        return
    out = common.console()
    model = graph["model"]
    out.print(f"[bold]{model['ref']}[/]  ({model['flavor']}, {model['content_hash'][:12]})")
    run = graph["run"]
    if run is None:
        out.print("Registered outside a pipeline run: no run lineage.")
        return
    out.print(f"run: {run['id']}  pipeline: {run['pipeline']}  status: {run['status']}")
    out.print(f"params: {run['params']}")
    code = graph["code"] or {}
    dirty = " (uncommitted changes)" if code.get("dirty") else ""
    out.print(f"code: {code.get('sha') or 'not a git checkout'}{dirty}")
    if graph["step_run"]:
        out.print(f"step: {graph['step_run']['name']} ({graph['step_run']['id']})")
    _print_artifacts("inputs", graph["inputs"], out.print)
    _print_artifacts("upstream", graph["upstream"], out.print)
    if graph["data"]:
        out.print("data read:")
        for item in graph["data"]:
            if "dataset" in item:
                out.print(f"  dataset {item['dataset']} ({item['source']}) in step {item['step']}")
                for line in origin_lines(item.get("origin"), "    "):
                    out.print(line, highlight=False)
            else:
                version = f" version {item['version']}" if item.get("version") is not None else ""
                out.print(f"  {item['kind']} {item['uri']}{version} in step {item['step']}")
    _print_trigger(graph.get("trigger"), out.print)


def _report_line(report: dict[str, Any] | None) -> str:
    if report is None:
        return "no report"
    return (
        f"monitor report {report['id']} ({report['monitor']}, window "
        f"{common.format_time(report['window_start'])} - "
        f"{common.format_time(report['window_end'])}, "
        f"{report['model_name']}/{report['model_version']}, drift share "
        f"{report['drift_share']:.0%})"
    )


def _print_trigger(trigger: dict[str, Any] | None, emit: Callable[[str], None]) -> None:
    if trigger is None:
        emit("started by: a person or a script (no trigger)")
        return
    emit(
        f"started by: trigger event {trigger['event_id']} ({trigger['kind']}, "
        f"{trigger.get('status') or 'unknown'}): {trigger.get('reason') or ''}"
    )
    emit(f"  <- {_report_line(trigger.get('report'))}")


def _print_artifacts(title: str, items: list[dict[str, Any]], emit: Callable[[str], None]) -> None:
    if not items:
        return
    emit(f"{title}:")
    for item in items:
        if "artifact_id" in item:
            shape = (item.get("summary") or {}).get("shape")
            extra = f" shape={shape}" if shape else ""
            emit(f"  {item['name']}: {item['type']} {item['content_hash'][:12]}{extra}")
        else:
            emit(f"  step {item['step']} ({item['step_run']}, {item['status']})")


def register(app: typer.Typer) -> None:
    """Add `conveyor models ...` to the root app."""
    app.add_typer(models_app, name="models")
