"""What every exporter needs to know of a pipeline: its tasks, parameters and schedule.

Exported workflows embed no pipeline code: each task runs ``conveyor task run TARGET
--node NODE`` in an environment that has the project, so the file stays small (a few
hundred bytes per step) and parsing it never imports the user's code.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conveyor.config import Settings
from conveyor.core.pipeline import Pipeline
from conveyor.exceptions import ConfigError

START = "conveyor-start"
FINISH = "conveyor-finish"


@dataclass(frozen=True)
class ExportTask:
    """One node of the plan as an orchestrator task.

    Attributes:
        node: The conveyor node name (``train``, ``score[2]``).
        task_id: A name every orchestrator accepts (letters, digits, ``-``).
        upstream: Task ids this one waits for.
        dynamic: A dynamic ``map``: fanned out over the indices its width task prints.
        resources: The step's declared resources (``cpus``, ``memory``, ``gpus``, ...).
    """

    node: str
    task_id: str
    upstream: tuple[str, ...]
    dynamic: bool = False
    resources: Mapping[str, Any] = field(default_factory=dict)

    @property
    def width_id(self) -> str:
        return f"{self.task_id}-width"


@dataclass(frozen=True)
class ExportPlan:
    """A pipeline as a list of tasks, with its parameters and schedule."""

    name: str
    target: str
    tasks: tuple[ExportTask, ...]
    params: Mapping[str, Any]
    param_types: Mapping[str, str]
    schedule: str | None
    project_dir: str


def task_id(node: str) -> str:
    """``score[2]`` -> ``score-2``; ids unique across the plan are checked by the caller."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "-", node).strip("-").lower()
    return cleaned or "step"


_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string", list: "array"}


def _param_type(annotation: Any, default: Any) -> str:
    if annotation in _TYPES:
        return _TYPES[annotation]
    if isinstance(annotation, str) and annotation in ("int", "float", "bool", "str"):
        return {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}[annotation]
    if default is not inspect.Parameter.empty and type(default) in _TYPES:
        return _TYPES[type(default)]
    return "string"


def check_shared_stores(settings: Settings, *, allow_local: bool) -> None:
    """Refuse stores that other machines cannot reach, unless `allow_local`.

    Raises:
        ConfigError: a SQLite database or a local artifact folder without `allow_local`.
    """
    if allow_local:
        return
    problems = []
    if settings.db_url.startswith("sqlite"):
        problems.append("the metadata store is a SQLite file")
    scheme = urlsplit(settings.artifact_url).scheme
    if scheme == "" or len(scheme) == 1:  # a plain path (or a Windows drive letter)
        problems.append("the artifact store is a local folder")
    if problems:
        raise ConfigError(
            f"Cannot export: {' and '.join(problems)}, which the orchestrator's workers on "
            "other machines cannot reach. Use PostgreSQL (CONVEYOR_DB_URL) and object storage "
            "(s3://...) or a folder every worker mounts, written file:///mnt/shared/... "
            "(CONVEYOR_ARTIFACT_URL), or pass --allow-local for a single-machine "
            "orchestrator."
        )


def export_plan(
    pipeline: Pipeline[Any, Any],
    target: str,
    params: Mapping[str, Any],
    *,
    project_dir: Path,
) -> ExportPlan:
    """The tasks of `pipeline` built with `params` (defaults for the rest).

    Raises:
        ConfigError: two nodes map to the same task id.
    """
    from conveyor.triggers.specs import Schedule, triggers_of

    plan = pipeline.build(**dict(params))
    ids = {name: task_id(name) for name in plan.order}
    reserved = {START, FINISH}
    seen: dict[str, str] = {}
    for name, tid in ids.items():
        clash = seen.get(tid) or (tid if tid in reserved else None)
        if clash:
            raise ConfigError(
                f"Nodes {clash!r} and {name!r} both become task {tid!r}; rename one step "
                "invocation (name=...)."
            )
        seen[tid] = name
    tasks = []
    for name in plan.order:
        node = plan.nodes[name]
        upstream = sorted(ids[u] for u in node.upstream()) or [START]
        tasks.append(
            ExportTask(
                node=name,
                task_id=ids[name],
                upstream=tuple(upstream),
                dynamic=node.is_dynamic_map,
                resources=dict(node.step.settings.resources or {}),
            )
        )
    signature = pipeline.signature.parameters
    values: dict[str, Any] = {}
    types: dict[str, str] = {}
    for key, parameter in signature.items():
        default = params.get(key, parameter.default)
        types[key] = _param_type(parameter.annotation, parameter.default)
        values[key] = None if default is inspect.Parameter.empty else default
    schedule = next((t.cron for t in triggers_of(pipeline) if isinstance(t, Schedule)), None)
    return ExportPlan(
        name=plan.pipeline,
        target=target,
        tasks=tuple(tasks),
        params=values,
        param_types=types,
        schedule=schedule,
        project_dir=str(project_dir),
    )
