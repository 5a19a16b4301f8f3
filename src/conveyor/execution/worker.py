"""`execute_step`: what an executor runs for one step attempt, wherever it runs.

The worker loads inputs from the artifact store, runs the user's function inside a
`StepContext` with log capture, writes outputs to the artifact store and returns a
`StepResult`. It never writes run metadata: the orchestrator is the single writer.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from conveyor.core.context import StepContext, enter_context, exit_context
from conveyor.exceptions import ConveyorError, MaterializerError
from conveyor.execution import reuse
from conveyor.execution.logs import capture
from conveyor.materializers.base import MaterializerRegistry, default_registry
from conveyor.stores.artifacts import ArtifactStore, open_artifact_store

_HOST = socket.gethostname()


@dataclass(frozen=True)
class ArtifactRef:
    """Where a stored value is and how to load it."""

    id: str
    content_hash: str
    materializer: str
    summary: dict[str, Any]


@dataclass(frozen=True)
class ItemRef:
    """Element `index` of a list-valued artifact (inputs of dynamically mapped steps)."""

    artifact: ArtifactRef | tuple[ArtifactRef, ...]
    index: int


InputValue = ArtifactRef | tuple[ArtifactRef, ...] | ItemRef


@dataclass
class StoredValue:
    """A value the worker wrote: everything the orchestrator needs for the artifact row."""

    name: str
    kind: str
    content_hash: str
    uri: str
    type_name: str
    materializer: str
    materializer_version: str
    size: int
    summary: dict[str, Any]


@dataclass
class StepPayload:
    run_id: str
    step_run_id: str
    node: str
    function: Any
    returns_tuple: bool
    output_names: tuple[str, ...]
    params: dict[str, Any]
    inputs: dict[str, InputValue]
    artifact_url: str
    attempt: int = 1
    db_url: str | None = None
    cache_key: str | None = None
    # In-process executors: input values still in memory, by artifact id (not loaded
    # again from the store), and whether to hand the outputs back the same way.
    preloaded: dict[str, Any] = field(default_factory=dict)
    keep_values: bool = False


@dataclass
class StepResult:
    ok: bool
    started_at: float
    ended_at: float
    outputs: dict[str, StoredValue] = field(default_factory=dict)
    logged: list[StoredValue] = field(default_factory=list)
    logs: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    metrics: list[tuple[str, float, int | None, float]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    error_type: str = ""
    error: str = ""
    traceback: str = ""
    exception: BaseException | None = None
    # The output values themselves, when the payload asked for them (in-process only).
    values: dict[str, Any] = field(default_factory=dict)
    host: str = _HOST
    pid: int = 0


def store_value(
    store: ArtifactStore, registry: MaterializerRegistry, name: str, value: Any, kind: str
) -> StoredValue:
    """Materialize `value` and put it in the store (deduplicated by content).

    A value identical to one this process stored before, with a materializer that opts
    in, is not serialized again while its blob is in the store (`reuse`).
    """
    cls = type(value)
    type_name = f"{cls.__module__}.{cls.__qualname__}"
    key = reuse.fingerprint(registry.for_value(value), value)
    if key is not None:
        hit = reuse.recall(key)
        if hit is not None and store.exists(hit[0]):
            content_hash, size, summary = hit
            return StoredValue(
                name=name,
                kind=kind,
                content_hash=content_hash,
                uri=store.uri(content_hash),
                type_name=type_name,
                materializer=key[0],
                materializer_version=key[1],
                size=size,
                summary=summary,
            )
    materializer, data, summary = registry.dump(value)
    content_hash, uri = store.put(data)
    if key is not None and (materializer.name, materializer.version) == key[:2]:
        reuse.remember(key, content_hash, len(data), summary)
    return StoredValue(
        name=name,
        kind=kind,
        content_hash=content_hash,
        uri=uri,
        type_name=type_name,
        materializer=materializer.name,
        materializer_version=materializer.version,
        size=len(data),
        summary=summary,
    )


def load_ref(store: ArtifactStore, registry: MaterializerRegistry, ref: ArtifactRef) -> Any:
    data = store.get(ref.content_hash)
    return registry.by_name(ref.materializer).load(data, ref.summary)


def _load_input(
    store: ArtifactStore,
    registry: MaterializerRegistry,
    value: InputValue,
    memo: dict[str, Any],
) -> Any:
    def one(ref: ArtifactRef) -> Any:
        if ref.id not in memo:
            memo[ref.id] = load_ref(store, registry, ref)
        return memo[ref.id]

    if isinstance(value, ArtifactRef):
        return one(value)
    if isinstance(value, ItemRef):
        source = value.artifact
        items = [one(r) for r in source] if isinstance(source, tuple) else one(source)
        return items[value.index]
    return [one(r) for r in value]


def _split_outputs(payload: StepPayload, returned: Any) -> dict[str, Any]:
    names = payload.output_names
    if not names:
        return {}
    if payload.returns_tuple:
        if not isinstance(returned, (tuple, list)) or len(returned) != len(names):
            got = (
                f"a {type(returned).__name__} of {len(returned)}"
                if isinstance(returned, (tuple, list))
                else type(returned).__name__
            )
            raise ConveyorError(
                f"Step {payload.node!r} declares {len(names)} outputs ({', '.join(names)}) "
                f"but returned {got}. Return a tuple with one value per output."
            )
        return dict(zip(names, returned, strict=True))
    return {names[0]: returned}


def execute_step(payload: StepPayload) -> StepResult:
    """Run one attempt of one step. Never raises for user errors: they are in the result."""
    started = time.time()
    store = open_artifact_store(payload.artifact_url)
    registry = default_registry()

    def save_logged(name: str, value: Any) -> dict[str, Any]:
        stored = store_value(store, registry, name, value, "logged")
        logged.append(stored)
        return {"name": name, "content_hash": stored.content_hash, "uri": stored.uri}

    logged: list[StoredValue] = []
    context = StepContext(
        run_id=payload.run_id,
        step_run_id=payload.step_run_id,
        step_name=payload.node,
        attempt=payload.attempt,
        save_artifact=save_logged,
        db_url=payload.db_url,
        artifact_url=payload.artifact_url,
        resources=dict(getattr(getattr(payload.function, "settings", None), "resources", {})),
        cache_key=payload.cache_key,
    )
    result = StepResult(ok=False, started_at=started, ended_at=started, pid=os.getpid())
    with capture() as buffer:
        token = enter_context(context)
        try:
            memo: dict[str, Any] = dict(payload.preloaded)
            kwargs = dict(payload.params)
            for name, value in payload.inputs.items():
                kwargs[name] = _load_input(store, registry, value, memo)
            function = payload.function
            body = getattr(function, "fn", function)
            returned = body(**kwargs)
            for name, value in _split_outputs(payload, returned).items():
                try:
                    result.outputs[name] = store_value(store, registry, name, value, "output")
                    if payload.keep_values:
                        result.values[name] = value
                except MaterializerError as exc:
                    raise MaterializerError(
                        f"Output {name!r} of step {payload.node!r} could not be stored: {exc}"
                    ) from exc
            result.ok = True
        except BaseException as exc:  # user code may raise anything, even SystemExit
            if isinstance(exc, KeyboardInterrupt):
                raise
            result.error_type = f"{type(exc).__module__}.{type(exc).__qualname__}"
            result.error = str(exc) or type(exc).__name__
            result.traceback = traceback.format_exc()
            result.exception = exc
        finally:
            exit_context(token)
    result.logs = buffer.getvalue()
    result.params = context.params
    result.metrics = [(m.key, m.value, m.step, m.timestamp) for m in context.metrics]
    result.tags = context.tags
    result.logged = logged
    result.ended_at = time.time()
    return result


def execute_step_remote(payload: StepPayload) -> StepResult:
    """`execute_step` for executors outside this process: drops the exception object
    when it cannot travel back (the traceback text always does)."""
    import pickle

    result = execute_step(payload)
    if result.exception is not None:
        try:
            pickle.dumps(result.exception)
        except Exception:
            result.exception = None
    return result
