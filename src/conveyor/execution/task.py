"""One node of a run at a time, so that any orchestrator (Airflow, Argo, KFP) can drive it.

An orchestrated run is the same run as a local one, recorded by several processes:

1. `start_run` (the first task) creates the run row, tagged with the orchestrator's run
   key (``conveyor.orchestrator_run``), and records its parameters;
2. `run_task` (one task per node) rebuilds the plan from the recorded parameters,
   restores the outputs of the nodes that already ran from the store, and executes exactly
   one node through the same code path as a local run: the same cache key, the same step
   run, artifacts, lineage edges, metrics and logs. An orchestrator retry is the next
   attempt of the same step run;
3. `map_width` tells the orchestrator how many children a dynamic ``map`` has (Airflow
   ``.expand()``, Argo ``withParam``, KFP ``ParallelFor``); each child is a `run_task` with
   its index;
4. `finish_run` (the last task, whatever happened upstream) records the run's final
   status and outputs.

Orchestrated runs have no owning process (``pid`` is NULL), so a task's exit never marks
them interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor._internal.ids import new_id
from conveyor.core.pipeline import GatherInput, ItemInput, Node, Pipeline
from conveyor.exceptions import ConfigError, ConveyorError, NotFoundError
from conveyor.execution.executors import make_executor
from conveyor.execution.orchestrator import Execution, code_version, json_params
from conveyor.execution.worker import ArtifactRef
from conveyor.stores.artifacts import open_artifact_store
from conveyor.stores.metadata.statuses import COMPLETED, FAILED, RUNNING, SKIPPED
from conveyor.stores.metadata.store import MetadataStore, open_metadata_store

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.core.pipeline import Plan

RUN_KEY_TAG = "conveyor.orchestrator_run"
ORCHESTRATOR_TAG = "conveyor.orchestrator"


@dataclass(frozen=True)
class TaskOutcome:
    """What `run_task` did: ``completed``, ``cached``, ``already`` (done before) or ``failed``."""

    run_id: str
    node: str
    status: str
    error: str | None = None


def find_run(metadata: MetadataStore, run_key: str) -> str | None:
    """The id of the run an orchestrator run key started, or None."""
    return metadata.find_run_by_tag(RUN_KEY_TAG, run_key)


def _run_for(metadata: MetadataStore, run_key: str) -> dict[str, Any]:
    run_id = find_run(metadata, run_key)
    if run_id is None:
        raise NotFoundError(
            f"No run was started for orchestrator run {run_key!r}. The first task of the "
            "workflow (`conveyor task start`) creates it; run the workflow from its start."
        )
    return metadata.get_run(run_id)


def start_run(
    pipeline: Pipeline[Any, Any],
    params: Mapping[str, Any],
    settings: Settings,
    *,
    run_key: str,
    orchestrator: str,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Create the run of `run_key` (idempotent: a retried first task finds it); its id."""
    metadata = open_metadata_store(settings.db_url)
    existing = find_run(metadata, run_key)
    if existing is not None:
        return existing
    plan = pipeline.build(**dict(params))
    sha, dirty = code_version(settings.root)
    run_id = new_id()
    now = time.time()
    metadata.create_run(
        {
            "id": run_id,
            "pipeline": plan.pipeline,
            "status": RUNNING,
            "created_at": now,
            "started_at": now,
            "params": json_params(plan.params),
            "code_sha": sha,
            "code_dirty": dirty,
            "executor": f"{orchestrator} (conveyor task)",
            "host": None,
            "pid": None,
            "proc_start": None,
            "trigger": {"kind": orchestrator, "run": run_key},
        },
        tags={**dict(tags or {}), RUN_KEY_TAG: run_key, ORCHESTRATOR_TAG: orchestrator},
    )
    return run_id


class _TaskExecution(Execution):
    """An `Execution` that runs one node, its upstream outputs read back from the store."""

    def __init__(self, plan: Plan, *, target: Node, **kwargs: Any) -> None:
        super().__init__(plan, **kwargs)
        self.target = target
        self.nodes[target.name] = target
        # Nothing becomes ready after the target: the orchestrator schedules the rest.
        self.downstream = {}

    def _store_literals(self) -> None:
        saved = self.nodes
        owner = self.target.parent
        self.nodes = {n: node for n, node in saved.items() if n in (self.target.name, owner)}
        try:
            super()._store_literals()
        finally:
            self.nodes = saved

    def restore(self, rows: list[dict[str, Any]]) -> None:
        """Outputs of the step runs of this run that completed, as if produced here."""
        done = {r["name"]: r for r in rows if r["status"] == COMPLETED}
        # One query for every output of the run, not one per lineage edge.
        for step, outputs in self.metadata.step_outputs(self.run_id).items():
            for output, artifact in outputs.items():
                self.produced[(step, output)] = ArtifactRef(
                    artifact["id"],
                    artifact["content_hash"],
                    artifact["materializer"],
                    dict(artifact.get("summary") or {}),
                )
        for node in self.plan.nodes.values():
            if node.is_dynamic_map:
                children = sorted(
                    (n for n in done if n.startswith(node.name + "[") and n.endswith("]")),
                    key=lambda n: int(n[len(node.name) + 1 : -1]),
                )
                self.children[node.name] = children

    def start(self) -> None:
        self._store_literals()
        self.ready.append(self.target.name)


def _restored(
    plan: Plan,
    target: Node,
    run_id: str,
    settings: Settings,
    metadata: MetadataStore,
    rows: list[dict[str, Any]],
) -> _TaskExecution:
    """A read-only view of the run: what its completed step runs produced."""
    execution = _TaskExecution(
        plan,
        target=target,
        run_id=run_id,
        settings=settings,
        metadata=metadata,
        artifacts=open_artifact_store(settings.artifact_url),
        executor=make_executor("inline", 1),
        use_cache=False,
        on_event=None,
    )
    execution.restore(rows)
    return execution


def _plan(pipeline: Pipeline[Any, Any], run: Mapping[str, Any]) -> Plan:
    params = dict(run.get("params") or {})
    placeholders = [k for k, v in params.items() if isinstance(v, str) and v.startswith("<")]
    if placeholders:
        raise ConfigError(
            f"Run {run['id']} has parameters that are not JSON ({', '.join(placeholders)}); "
            "an orchestrated run takes JSON parameters only."
        )
    return pipeline.build(**params)


def _node(plan: Plan, name: str, index: int | None, produced: Any) -> Node:
    if name not in plan.nodes:
        raise ConfigError(
            f"Pipeline {plan.pipeline!r} has no node {name!r} for these parameters (nodes: "
            f"{', '.join(plan.order)}). Re-export the workflow after changing the pipeline."
        )
    node = plan.nodes[name]
    if not node.is_dynamic_map:
        if index is not None:
            raise ConfigError(f"Node {name!r} is not a dynamic map; it takes no --index.")
        return node
    if index is None:
        raise ConfigError(f"Node {name!r} is a dynamic map: run each child with --index I.")
    assert node.map_source is not None and node.map_input is not None
    return Node(
        name=f"{name}[{index}]",
        step=node.step,
        params=dict(node.params),
        inputs={**node.inputs, node.map_input: ItemInput(node.map_source, index)},
        parent=name,
        index=index,
    )


def run_task(
    pipeline: Pipeline[Any, Any],
    settings: Settings,
    *,
    run_key: str,
    node: str,
    index: int | None = None,
    cache: bool | None = None,
) -> TaskOutcome:
    """Execute one node (or one child of a dynamic map) of the run of `run_key`.

    Raises:
        NotFoundError: no run was started for `run_key`.
        ConfigError: the node does not exist for the run's parameters.
    """
    metadata = open_metadata_store(settings.db_url)
    artifacts = open_artifact_store(settings.artifact_url)
    run = _run_for(metadata, run_key)
    plan = _plan(pipeline, run)
    target = _node(plan, node, index, None)
    rows = metadata.step_runs(run["id"])
    previous = next((r for r in rows if r["name"] == target.name), None)
    if previous is not None and previous["status"] == COMPLETED:
        return TaskOutcome(run["id"], target.name, "already")
    executor = make_executor("inline", 1)
    execution = _TaskExecution(
        plan,
        target=target,
        run_id=run["id"],
        settings=settings,
        metadata=metadata,
        artifacts=artifacts,
        executor=executor,
        use_cache=settings.cache if cache is None else cache,
        on_event=None,
    )
    execution.restore(rows)
    completed = {r["name"] for r in rows if r["status"] == COMPLETED}
    missing = sorted(
        up for up in target.upstream() if up not in completed and not (execution.children.get(up))
    )
    if missing:
        raise ConveyorError(
            f"Node {target.name!r} of run {run['id']} needs {', '.join(missing)} to complete "
            "first. Order the workflow's tasks as the exported file does."
        )
    if previous is not None:
        # An orchestrator retry: the next attempt of the same step run.
        execution.step_run_ids[target.name] = previous["id"]
        execution.attempts[target.name] = int(previous["attempts"] or 0)
    try:
        execution.start()
        execution.loop()
    except BaseException:
        try:
            execution.flush()  # what finished is recorded, as `run_pipeline` does
        except Exception:
            pass
        raise
    finally:
        executor.shutdown(wait=True)
    if execution.failed:
        error = next(iter(execution.failed.values()))
        return TaskOutcome(run["id"], target.name, FAILED, str(error))
    record = metadata.find_step_run(run["id"], target.name)
    return TaskOutcome(run["id"], target.name, "cached" if record["cache_hit"] else COMPLETED)


def map_width(pipeline: Pipeline[Any, Any], settings: Settings, *, run_key: str, node: str) -> int:
    """How many children the dynamic map `node` has in the run of `run_key`.

    Raises:
        ConfigError: `node` is not a dynamic map, or its source has no length.
    """
    metadata = open_metadata_store(settings.db_url)
    run = _run_for(metadata, run_key)
    plan = _plan(pipeline, run)
    if node not in plan.nodes or not plan.nodes[node].is_dynamic_map:
        raise ConfigError(f"Node {node!r} of pipeline {plan.pipeline!r} is not a dynamic map.")
    source = plan.nodes[node].map_source
    assert source is not None
    rows = metadata.step_runs(run["id"])
    probe = _restored(plan, plan.nodes[node], run["id"], settings, metadata, rows)
    if isinstance(source, GatherInput):
        return len(probe.children.get(source.node, []))
    ref = probe.produced.get((source.node, source.output))
    if ref is None:
        raise ConveyorError(f"Node {source.node!r} has not completed in run {run['id']}.")
    length = ref.summary.get("length")
    if length is None:
        raise ConfigError(f"Cannot map over {source.node}.{source.output}: it has no length.")
    return int(length)


def finish_run(pipeline: Pipeline[Any, Any], settings: Settings, *, run_key: str) -> str:
    """Record the final status and outputs of the run of `run_key`; the status."""
    metadata = open_metadata_store(settings.db_url)
    run = _run_for(metadata, run_key)
    if run["status"] != RUNNING:
        return str(run["status"])
    plan = _plan(pipeline, run)
    rows = metadata.step_runs(run["id"])
    failed = [r for r in rows if r["status"] == FAILED]
    done = {r["name"] for r in rows if r["status"] == COMPLETED}
    expected = [n for n in plan.order if not plan.nodes[n].is_dynamic_map]
    missing = [n for n in expected if n not in done]
    execution = _restored(plan, plan.nodes[plan.order[-1]], run["id"], settings, metadata, rows)
    status = FAILED if failed or missing else COMPLETED
    error = None
    if failed:
        error = f"Step {failed[0]['name']} failed: {failed[0].get('error')}"
    elif missing:
        error = f"Steps never ran: {', '.join(missing)}."
    metadata.close_open_steps(run["id"], SKIPPED if status == FAILED else COMPLETED)
    metadata.update_run(
        run["id"], status=status, ended_at=time.time(), outputs=execution.outputs(), error=error
    )
    return status
