"""One run's walk of its plan: the state the orchestrator keeps while a run executes.

`Execution` walks the DAG, computes cache keys, reuses cached results, submits the rest to
an executor through `execute_step`, retries with backoff, enforces timeouts, expands
dynamic `map`s when their input is known, skips what depends on a failure while
independent branches finish, and records every step run, artifact, lineage edge, metric
and log. `run_pipeline` (orchestrator.py) creates the run around it.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import heapq
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from conveyor._internal.hashing import canonical_json
from conveyor._internal.ids import new_id
from conveyor.config import Settings
from conveyor.core.pipeline import (
    ArtifactInput,
    GatherInput,
    InputRef,
    ItemInput,
    ListInput,
    LiteralInput,
    Node,
    Plan,
)
from conveyor.exceptions import (
    ConveyorError,
    StepFailedError,
    StepTimeoutError,
)
from conveyor.execution.cache_keys import KeyBuilder
from conveyor.execution.executors import Executor
from conveyor.execution.worker import (
    ArtifactRef,
    InputValue,
    ItemRef,
    StepPayload,
    StepResult,
    StoredValue,
    execute_step,
    execute_step_remote,
    store_value,
)
from conveyor.materializers.base import default_registry
from conveyor.stores.artifacts import ArtifactStore
from conveyor.stores.metadata import MetadataStore
from conveyor.stores.metadata.events import STEP_FAILED
from conveyor.stores.metadata.store import (
    COMPLETED,
    FAILED,
    RUNNING,
    SKIPPED,
)

EventHandler = Callable[[str, str, Mapping[str, Any]], None]


def json_params(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        try:
            canonical_json(value)
            out[key] = value
        except TypeError:
            out[key] = f"<{type(value).__name__}>"
    return out


@dataclass
class _Attempt:
    node: str
    step_run_id: str
    attempt: int
    submitted: float
    deadline: float | None


class Execution:
    def __init__(
        self,
        plan: Plan,
        *,
        run_id: str,
        settings: Settings,
        metadata: MetadataStore,
        artifacts: ArtifactStore,
        executor: Executor,
        use_cache: bool,
        on_event: EventHandler | None,
        pipeline_module: str | None = None,
    ) -> None:
        self.plan = plan
        self.run_id = run_id
        self.settings = settings
        self.metadata = metadata
        self.artifacts = artifacts
        self.executor = executor
        self.use_cache = use_cache
        self.on_event = on_event
        self.registry = default_registry()
        self.keys = KeyBuilder(settings, pipeline_module)
        self.root = str(settings.root)
        self.nodes: dict[str, Node] = dict(plan.nodes)
        self.downstream = plan.downstream()
        self.waiting: dict[str, set[str]] = {n: node.upstream() for n, node in self.nodes.items()}
        self.children: dict[str, list[str]] = {}
        self.map_remaining: dict[str, int] = {}
        self.produced: dict[tuple[str, str], ArtifactRef] = {}
        self.done: set[str] = set()
        self.failed: dict[str, StepFailedError] = {}
        self.skipped: set[str] = set()
        self.step_run_ids: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.running: dict[cf.Future[StepResult], _Attempt] = {}
        self.retry_heap: list[tuple[float, str]] = []
        self.ready: list[str] = []
        self.remote = not executor.in_process
        self.abandoned = False  # an attempt overran its timeout and may still be running
        # Step-run writes not made yet: cache hits, step starts and completions. They go in
        # one transaction before the next step is handed to the executor or the loop
        # waits, so a chain pays one commit per step, not two; the events they announce
        # ("completed") are emitted once they are written.
        self.pending: list[dict[str, Any]] = []
        self.deferred: list[tuple[str, str, dict[str, Any]]] = []
        # In-process executors hand values downstream in memory (by artifact id), as
        # well as storing them; each is dropped once every consumer has been launched.
        self.values: dict[str, Any] = {}
        self.value_owner: dict[str, str] = {}
        self.launched: set[str] = set()

    # ------------------------------------------------------------------ helpers
    def emit(self, kind: str, node: str, **info: Any) -> None:
        if self.on_event is not None:
            self.on_event(kind, node, info)

    def resolve(self, ref: InputRef, node: str, name: str) -> InputValue:
        if isinstance(ref, ArtifactInput):
            key = (ref.node, ref.output)
            if key not in self.produced:
                raise ConveyorError(
                    f"Step {ref.node!r} produced no output {ref.output!r} for {node!r}."
                )
            return self.produced[key]
        if isinstance(ref, ListInput):
            return tuple(self.produced[(r.node, r.output)] for r in ref.refs)
        if isinstance(ref, GatherInput):
            return tuple(self.produced[(c, ref.output)] for c in self.children.get(ref.node, []))
        if isinstance(ref, ItemInput):
            source = self.resolve(ref.source, node, name)
            assert not isinstance(source, ItemRef)
            return ItemRef(source, ref.index)
        if isinstance(ref, LiteralInput):
            key = ("__literal__", f"{node}.{name}")
            owner = self.nodes[node].parent if node in self.nodes else None
            if key not in self.produced and owner is not None:
                # A child of a dynamic map shares the literal stored for its map node.
                key = ("__literal__", f"{owner}.{name}")
            return self.produced[key]
        raise TypeError(ref)

    @staticmethod
    def _describe(value: InputValue) -> Any:
        if isinstance(value, ArtifactRef):
            return [value.content_hash, value.materializer]
        if isinstance(value, ItemRef):
            return {"item": Execution._describe(value.artifact), "index": value.index}
        return [Execution._describe(v) for v in value]

    def cache_key(self, node: Node, inputs: Mapping[str, InputValue]) -> str:
        step = node.step
        versions = sorted(
            {f"{m}@{self.registry.by_name(m).version}" for m in _materializers(inputs.values())}
        )
        # Declared registry references join the key with the version each points at now.
        declared = step.settings.models
        models = self.metadata.current_versions(declared) if declared else []
        return self.keys.key_for(
            step,
            node.params,
            {k: self._describe(v) for k, v in inputs.items()},
            versions,
            models=models,
        )

    # ------------------------------------------------------------------ scheduling
    def start(self) -> None:
        self._store_literals()
        for name in self.plan.order:
            if not self.waiting[name]:
                self.ready.append(name)

    def _store_literals(self) -> None:
        rows = []
        for node in self.nodes.values():
            for input_name, ref in node.inputs.items():
                if isinstance(ref, LiteralInput):
                    stored = store_value(
                        self.artifacts,
                        self.registry,
                        f"{node.name}.{input_name}",
                        ref.value,
                        "literal",
                    )
                    artifact_id = new_id()
                    rows.append(self._artifact_row(artifact_id, stored, None))
                    self.produced[("__literal__", f"{node.name}.{input_name}")] = ArtifactRef(
                        artifact_id, stored.content_hash, stored.materializer, stored.summary
                    )
        self.metadata.insert_artifacts(rows)

    def _artifact_row(
        self, artifact_id: str, stored: StoredValue, step_run_id: str | None
    ) -> dict[str, Any]:
        return {
            "id": artifact_id,
            "name": stored.name,
            "kind": stored.kind,
            "content_hash": stored.content_hash,
            "uri": stored.uri,
            "type_name": stored.type_name,
            "materializer": stored.materializer,
            "materializer_version": stored.materializer_version,
            "size": stored.size,
            "summary": stored.summary,
            "created_at": time.time(),
            "run_id": self.run_id,
            "step_run_id": step_run_id,
        }

    def launch(self, name: str) -> None:
        node = self.nodes[name]
        if node.is_dynamic_map:
            self.expand(node)
            return
        inputs = {k: self.resolve(ref, name, k) for k, ref in node.inputs.items()}
        key = self.cache_key(node, inputs)
        step_run_id = self.step_run_ids.get(name) or new_id()
        self.step_run_ids[name] = step_run_id
        first_attempt = name not in self.attempts  # a retry has its step run row already
        if (
            first_attempt
            and self.use_cache
            and node.step.settings.cache
            and self._try_cache(node, key, inputs)
        ):
            return
        attempt = self.attempts.get(name, 0) + 1
        self.attempts[name] = attempt
        now = time.time()
        if attempt == 1:
            fields: dict[str, Any] = {
                "name": name,
                "step": node.step.name,
                "status": RUNNING,
                "attempts": 1,
                "started_at": now,
                "cache_key": key,
                "cache_components": self.keys.components(key),
                "params": json_params(node.params),
            }
            self.pending.append(
                {
                    "step_run_id": step_run_id,
                    "run_id": self.run_id,
                    "insert": True,
                    "fields": fields,
                }
            )
        else:
            self.pending.append(
                {"step_run_id": step_run_id, "run_id": self.run_id, "fields": {"attempts": attempt}}
            )
        # Each attempt gets its own copy of a value handed in memory, so a step that mutates
        # its input cannot change what a sibling, a retry or the caller sees (a re-run from
        # the stored bytes would not see it either). The last consumer to launch takes the
        # value itself: it is forgotten here as this step launches, and a retry loads it
        # from the store.
        preloaded: dict[str, Any] = {}
        last = self._last_use(node) if self.values else set()
        for ref in _refs(inputs.values()):
            if ref.id in self.values:
                value = self.values[ref.id]
                copied = value if ref.id in last else _private_copy(value)
                if copied is not _NO_COPY:
                    preloaded[ref.id] = copied
        payload = StepPayload(
            run_id=self.run_id,
            step_run_id=step_run_id,
            node=name,
            function=node.step,
            returns_tuple=node.step.returns_tuple,
            output_names=tuple(o.name for o in node.step.outputs),
            params=dict(node.params),
            inputs=inputs,
            artifact_url=self.settings.artifact_url,
            attempt=attempt,
            db_url=self.settings.db_url,
            cache_key=key,
            preloaded=preloaded,
            keep_values=not self.remote,
        )
        self.launched.add(name)
        self._release(node)
        timeout = node.step.settings.timeout
        # The step run row exists before the step runs: its body may refer to it.
        self.flush()
        self.emit("submitted", name, attempt=attempt)
        future: cf.Future[StepResult]
        try:
            if self._run_here(timeout):
                future = cf.Future()
                future.set_result(execute_step(payload))  # never raises but for Ctrl-C
            else:
                future = self.executor.submit(
                    execute_step_remote if self.remote else execute_step,
                    payload,
                    resources=node.step.settings.resources or None,
                )
        except Exception as exc:  # could not hand the step to the executor at all
            future = cf.Future()
            future.set_exception(exc)
        self.running[future] = _Attempt(
            name, step_run_id, attempt, now, now + timeout if timeout else None
        )

    def _run_here(self, timeout: float | None) -> bool:
        """Whether to run the step being launched in this thread (see `ThreadsExecutor`)."""
        if not getattr(self.executor, "inline_when_idle", False):
            return False
        if self.running or self.ready or self.retry_heap or timeout is not None:
            return False
        asyncio = sys.modules.get("asyncio")  # no loop can run where asyncio is not loaded
        if asyncio is not None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return True
            return False  # a step's own asyncio.run() would fail under a running loop
        return True

    def _try_cache(self, node: Node, key: str, inputs: Mapping[str, InputValue]) -> bool:
        hit = self.metadata.find_cache_hit(key)
        if hit is None:
            return False
        source, outputs = hit
        wanted = [o.name for o in node.step.outputs]
        if any(name not in outputs for name in wanted):
            return False
        if not all(self.artifacts.exists(outputs[n]["content_hash"]) for n in wanted):
            return False
        step_run_id = self.step_run_ids[node.name]
        now = time.time()
        edges = self._input_edges(step_run_id, inputs)
        for name in wanted:
            row = outputs[name]
            self.produced[(node.name, name)] = ArtifactRef(
                row["id"], row["content_hash"], row["materializer"], dict(row["summary"] or {})
            )
            edges.append(self._edge(step_run_id, row["id"], "out", name))
        self.pending.append(
            {
                "step_run_id": step_run_id,
                "run_id": self.run_id,
                "insert": True,
                "fields": {
                    "name": node.name,
                    "step": node.step.name,
                    "status": COMPLETED,
                    "attempts": 0,
                    "started_at": now,
                    "ended_at": now,
                    "duration": 0.0,
                    "cache_key": key,
                    "cache_hit": True,
                    "cache_source": source,
                    "params": json_params(node.params),
                },
                "edges": edges,
            }
        )
        self.deferred.append(("cached", node.name, {"source": source}))
        self.complete(node.name)
        return True

    def _released_by(self, node: Node) -> list[str]:
        """Artifact ids of the in-memory values no consumer needs once `node` has launched."""
        released = []
        for upstream in node.upstream():
            consumers = self.downstream.get(upstream, ())
            if all(c in self.launched or c in self.skipped or c == node.name for c in consumers):
                released += [a for a, o in self.value_owner.items() if o == upstream]
        return released

    def _last_use(self, node: Node) -> set[str]:
        """The values `node` may take without a copy: launching it releases them, so nothing
        here reads them again (a retry of `node` loads them from the store)."""
        return set(self._released_by(node))

    def _release(self, node: Node) -> None:
        """Forget in-memory values whose every consumer has been launched."""
        if not self.values:
            return
        for artifact_id in self._released_by(node):
            self.values.pop(artifact_id, None)
            self.value_owner.pop(artifact_id, None)

    def flush(self) -> None:
        """Write the pending step-run records (one transaction), then emit the events
        that waited for them."""
        if self.pending:
            pending, self.pending = self.pending, []
            self.metadata.record_steps(pending)
        deferred, self.deferred = self.deferred, []
        for kind, node, info in deferred:
            self.emit(kind, node, **info)

    def _edge(
        self, step_run_id: str, artifact_id: str, direction: str, name: str
    ) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "step_run_id": step_run_id,
            "artifact_id": artifact_id,
            "direction": direction,
            "name": name,
        }

    def _input_edges(
        self, step_run_id: str, inputs: Mapping[str, InputValue]
    ) -> list[dict[str, Any]]:
        edges = []
        for name, value in inputs.items():
            if isinstance(value, ArtifactRef):
                edges.append(self._edge(step_run_id, value.id, "in", name))
            elif isinstance(value, ItemRef):
                refs = value.artifact if isinstance(value.artifact, tuple) else (value.artifact,)
                for ref in refs:
                    edges.append(self._edge(step_run_id, ref.id, "in", f"{name}[{value.index}]"))
            else:
                for index, ref in enumerate(value):
                    edges.append(self._edge(step_run_id, ref.id, "in", f"{name}[{index}]"))
        return edges

    def expand(self, node: Node) -> None:
        assert node.map_source is not None and node.map_input is not None
        source = node.map_source
        if isinstance(source, GatherInput):
            count = len(self.children.get(source.node, []))
        else:
            ref = self.produced[(source.node, source.output)]
            length = ref.summary.get("length")
            if length is None:
                error = StepFailedError(
                    node.name,
                    self.run_id,
                    f"cannot map over output {source.node}.{source.output}: its value has no "
                    "length. Map over a list.",
                )
                self.fail(node.name, error, record=True)
                return
            count = int(length)
        names = []
        for index in range(count):
            child = Node(
                name=f"{node.name}[{index}]",
                step=node.step,
                params=dict(node.params),
                inputs={**node.inputs, node.map_input: ItemInput(source, index)},
                parent=node.name,
                index=index,
            )
            self.nodes[child.name] = child
            self.downstream[child.name] = set()
            names.append(child.name)
        self.children[node.name] = names
        self.map_remaining[node.name] = count
        self.emit("expanded", node.name, count=count)
        if count == 0:
            self.complete(node.name)
        else:
            self.ready.extend(names)

    def complete(self, name: str) -> None:
        self.done.add(name)
        node = self.nodes[name]
        if node.parent is not None and node.parent in self.map_remaining:
            self.map_remaining[node.parent] -= 1
            if self.map_remaining[node.parent] == 0:
                self.complete(node.parent)
            return
        for child in sorted(self.downstream.get(name, ())):
            waiting = self.waiting[child]
            waiting.discard(name)
            if not waiting and child not in self.skipped:
                self.ready.append(child)

    def fail(self, name: str, error: StepFailedError, *, record: bool = False) -> None:
        self.flush()  # what finished before this failure is recorded (and announced) first
        self.failed[name] = error
        if record:
            now = time.time()
            self.metadata.record_step(
                step_run_id=self.step_run_ids.get(name) or new_id(),
                run_id=self.run_id,
                insert=True,
                fields={
                    "name": name,
                    "step": self.nodes[name].step.name,
                    "status": FAILED,
                    "started_at": now,
                    "ended_at": now,
                    "error_type": error.error_type or type(error).__name__,
                    "error": str(error),
                },
            )
        self.emit("failed", name, error=str(error))
        self.flush()
        self.metadata.emit_event(
            STEP_FAILED,
            self.plan.pipeline,
            f"Step {name} of run {self.run_id} failed: {str(error)[:300]}",
            links={"run_id": self.run_id, "step_run_id": self.step_run_ids.get(name)},
            data={"step": name, "error_type": error.error_type},
        )
        node = self.nodes[name]
        if node.parent is not None and node.parent in self.map_remaining:
            if node.parent not in self.failed:
                self.failed[node.parent] = error
                self._skip_downstream(node.parent)
            return
        self._skip_downstream(name)

    def _skip_downstream(self, name: str) -> None:
        stack = list(self.downstream.get(name, ()))
        rows = []
        now = time.time()
        while stack:
            child = stack.pop()
            if child in self.skipped or child in self.done or child in self.failed:
                continue
            self.skipped.add(child)
            rows.append(
                {
                    "id": new_id(),
                    "run_id": self.run_id,
                    "name": child,
                    "step": self.nodes[child].step.name,
                    "status": SKIPPED,
                    "attempts": 0,
                    "started_at": now,
                    "ended_at": now,
                    "error": f"Skipped because {name!r} failed.",
                }
            )
            self.emit("skipped", child, because=name)
            stack.extend(self.downstream.get(child, ()))
        self.metadata.start_step_runs(rows)

    def finish(self, future: cf.Future[StepResult], attempt: _Attempt) -> None:
        node = self.nodes[attempt.node]
        try:
            result = future.result()
        except BaseException as exc:  # the executor itself failed (worker died, pickling)
            now = time.time()
            result = StepResult(
                ok=False,
                started_at=attempt.submitted,
                ended_at=now,
                error_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
                error=f"the executor could not run the step: {exc}",
                exception=exc,
            )
        timeout = node.step.settings.timeout
        if result.ok and timeout is not None and result.ended_at - result.started_at > timeout:
            result.ok = False
            result.error_type = "conveyor.exceptions.StepTimeoutError"
            result.error = f"timed out after {timeout:g} s"
        if result.ok:
            self._record_success(node, attempt, result)
            info = {"duration": result.ended_at - result.started_at}
            self.deferred.append(("completed", node.name, info))
            self.complete(node.name)
        else:
            self._record_failure(node, attempt, result)

    def _record_success(self, node: Node, attempt: _Attempt, result: StepResult) -> None:
        step_run_id = attempt.step_run_id
        inputs = {k: self.resolve(ref, node.name, k) for k, ref in node.inputs.items()}
        edges = self._input_edges(step_run_id, inputs)
        artifact_rows = []
        for name, stored in result.outputs.items():
            artifact_id = new_id()
            artifact_rows.append(self._artifact_row(artifact_id, stored, step_run_id))
            edges.append(self._edge(step_run_id, artifact_id, "out", name))
            self.produced[(node.name, name)] = ArtifactRef(
                artifact_id, stored.content_hash, stored.materializer, stored.summary
            )
            if name in result.values and self.downstream.get(node.name):
                self.values[artifact_id] = result.values[name]
                self.value_owner[artifact_id] = node.name
        result.values = {}
        logged_rows, logged_edges = self._logged(step_run_id, result)
        artifact_rows += logged_rows
        edges += logged_edges
        params = json_params({**node.params, **result.params})
        self.pending.append(  # written with the next step's start, or before the loop waits
            {
                "step_run_id": step_run_id,
                "run_id": self.run_id,
                "fields": {
                    "status": COMPLETED,
                    "attempts": attempt.attempt,
                    "ended_at": result.ended_at,
                    "duration": result.ended_at - result.started_at,
                    "params": params,
                    "host": result.host,
                    "error": None,
                },
                "new_artifacts": artifact_rows,
                "edges": edges,
                "metrics": self._metric_rows(step_run_id, result),
                "logs": result.logs or None,
                "tags": result.tags,
            }
        )

    def _logged(
        self, step_run_id: str, result: StepResult
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Artifact rows and "log" lineage edges for what the step logged with log_artifact."""
        rows, edges = [], []
        for stored in result.logged:
            artifact_id = new_id()
            rows.append(self._artifact_row(artifact_id, stored, step_run_id))
            edges.append(self._edge(step_run_id, artifact_id, "log", stored.name))
        return rows, edges

    def _metric_rows(self, step_run_id: str, result: StepResult) -> list[dict[str, Any]]:
        return [
            {
                "run_id": self.run_id,
                "step_run_id": step_run_id,
                "key": key,
                "value": value,
                "step": index,
                "timestamp": stamp,
            }
            for key, value, index, stamp in result.metrics
        ]

    def _record_failure(self, node: Node, attempt: _Attempt, result: StepResult) -> None:
        settings = node.step.settings
        if attempt.attempt <= settings.retries:
            delay = settings.retry_delay * settings.backoff ** (attempt.attempt - 1)
            heapq.heappush(self.retry_heap, (time.time() + delay, node.name))
            self.emit("retry", node.name, attempt=attempt.attempt, delay=delay, error=result.error)
            return
        timed_out = result.error_type.endswith("StepTimeoutError")
        error_cls = StepTimeoutError if timed_out else StepFailedError
        error = error_cls(
            node.name,
            self.run_id,
            f"{result.error_type.rsplit('.', 1)[-1]}: {result.error}",
            error_type=result.error_type,
            traceback_text=result.traceback,
        )
        if result.exception is not None:
            error.__cause__ = result.exception
        # What the failed attempt logged (a validation report, say) is kept for inspection.
        logged_rows, logged_edges = self._logged(attempt.step_run_id, result)
        self.pending.append(  # written by `fail`, with what finished before
            {
                "step_run_id": attempt.step_run_id,
                "run_id": self.run_id,
                "new_artifacts": logged_rows,
                "edges": logged_edges,
                "metrics": self._metric_rows(attempt.step_run_id, result),
                "tags": result.tags,
                "fields": {
                    "status": FAILED,
                    "attempts": attempt.attempt,
                    "ended_at": result.ended_at,
                    "duration": result.ended_at - result.started_at,
                    "error_type": result.error_type,
                    "error": result.error,
                    "traceback": result.traceback,
                    "host": result.host,
                },
                "logs": result.logs or None,
            }
        )
        self.fail(node.name, error)

    def loop(self) -> None:
        while True:
            while self.ready:
                self.launch(self.ready.pop(0))
            now = time.time()
            while self.retry_heap and self.retry_heap[0][0] <= now:
                _, name = heapq.heappop(self.retry_heap)
                self.launch(name)
            if self.ready:
                continue
            self.flush()
            if not self.running:
                if self.retry_heap:
                    time.sleep(max(0.0, self.retry_heap[0][0] - time.time()))
                    continue
                return
            wake = [a.deadline for a in self.running.values() if a.deadline is not None]
            if self.retry_heap:
                wake.append(self.retry_heap[0][0])
            timeout = max(0.0, min(wake) - time.time()) if wake else None
            finished, _ = cf.wait(
                list(self.running), timeout=timeout, return_when=cf.FIRST_COMPLETED
            )
            for future in finished:
                attempt = self.running.pop(future)
                self.finish(future, attempt)
            now = time.time()
            for future, attempt in list(self.running.items()):
                if attempt.deadline is not None and now >= attempt.deadline and not future.done():
                    # The attempt is abandoned: its thread or process may still be running,
                    # but its result will be ignored.
                    del self.running[future]
                    future.cancel()
                    self.abandoned = True
                    timeout_s = self.nodes[attempt.node].step.settings.timeout
                    self._record_failure(
                        self.nodes[attempt.node],
                        attempt,
                        StepResult(
                            ok=False,
                            started_at=attempt.submitted,
                            ended_at=now,
                            error_type="conveyor.exceptions.StepTimeoutError",
                            error=f"timed out after {timeout_s:g} s",
                        ),
                    )

    def outputs(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, ref in self.plan.outputs.items():
            try:
                value = self.resolve(ref, "<outputs>", name)
            except (KeyError, ConveyorError):
                continue
            if isinstance(value, ArtifactRef):
                result[name] = value.id
            elif isinstance(value, tuple):
                result[name] = [v.id for v in value]
        return result


_NO_COPY = object()
_IMMUTABLE = (int, float, complex, bool, str, bytes, type(None))


def _private_copy(value: Any) -> Any:
    """A deep copy of `value` for one consumer, or `_NO_COPY` when it cannot be copied.

    A value that cannot be copied is not handed in memory: the consumer loads it from the
    artifact store, as a remote executor does.
    """
    if isinstance(value, _IMMUTABLE):
        return value
    try:
        return copy.deepcopy(value)
    except Exception:  # any object may refuse to be copied; the stored bytes still load
        return _NO_COPY


def _refs(values: Any) -> list[ArtifactRef]:
    refs: list[ArtifactRef] = []
    for value in values:
        if isinstance(value, ArtifactRef):
            refs.append(value)
        elif isinstance(value, ItemRef):
            source = value.artifact
            refs.extend(source if isinstance(source, tuple) else (source,))
        else:
            refs.extend(_refs(value))
    return refs


def _materializers(values: Any) -> set[str]:
    names: set[str] = set()
    for value in values:
        if isinstance(value, ArtifactRef):
            names.add(value.materializer)
        elif isinstance(value, ItemRef):
            names |= _materializers(
                value.artifact if isinstance(value.artifact, tuple) else (value.artifact,)
            )
        else:
            names |= _materializers(value)
    return names
