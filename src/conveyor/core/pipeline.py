"""`@pipeline`: a function calling steps, compiled into an immutable, validated `Plan`."""

from __future__ import annotations

import contextvars
import graphlib
import inspect
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar

from conveyor.core.step import DEFAULT_OUTPUT, Step
from conveyor.core.types import annotation_name, inspect_empty, is_compatible, list_element
from conveyor.exceptions import (
    CycleError,
    PipelineDefinitionError,
    TypeMismatchError,
    UnknownParameterError,
)

P = ParamSpec("P")
R = TypeVar("R")


# ---------------------------------------------------------------------------- handles
@dataclass(frozen=True)
class StepOutput:
    """Handle to one output of one step invocation, returned while a pipeline is built."""

    node: str
    output: str
    annotation: Any = inspect_empty

    def __iter__(self) -> Iterator[Any]:
        raise PipelineDefinitionError(
            f"Output {self.node}.{self.output} is a single value and cannot be unpacked "
            "while the pipeline is built. Annotate the step's return as a tuple of "
            "Annotated[T, 'name'] to give it several outputs."
        )

    def __bool__(self) -> bool:
        raise PipelineDefinitionError(
            f"Output {self.node}.{self.output} has no value while the pipeline is built, so "
            "it cannot drive an `if`. Move the condition into a step."
        )


@dataclass(frozen=True)
class MappedOutput:
    """Handle to one output of every invocation of a mapped step, in item order.

    `items` is set when the fan-out width was known at build time (a literal list);
    otherwise `node` names the dynamic map node whose children are created at run time.
    """

    node: str
    output: str
    annotation: Any = inspect_empty
    items: tuple[StepOutput, ...] | None = None

    def __iter__(self) -> Iterator[StepOutput]:
        if self.items is None:
            raise PipelineDefinitionError(
                f"The fan-out width of {self.node!r} is only known at run time, so its "
                "outputs cannot be iterated while the pipeline is built. Pass the whole "
                "mapped output to a step taking list[T], or map over it again."
            )
        return iter(self.items)

    def __len__(self) -> int:
        return len(tuple(iter(self)))


# ---------------------------------------------------------------------------- input refs
@dataclass(frozen=True)
class ArtifactInput:
    node: str
    output: str


@dataclass(frozen=True)
class ListInput:
    refs: tuple[ArtifactInput, ...]


@dataclass(frozen=True)
class GatherInput:
    """All children of a dynamic map node, in index order."""

    node: str
    output: str


@dataclass(frozen=True)
class ItemInput:
    """Element `index` of a list-valued upstream output (children of dynamic maps)."""

    source: ArtifactInput | GatherInput
    index: int


@dataclass(frozen=True)
class LiteralInput:
    """A pipeline literal that is not JSON: stored as an artifact when the run starts."""

    value: Any


InputRef = ArtifactInput | ListInput | GatherInput | ItemInput | LiteralInput


@dataclass
class Node:
    """One step invocation in a plan."""

    name: str
    step: Step[Any, Any]
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, InputRef] = field(default_factory=dict)
    after: tuple[str, ...] = ()
    map_input: str | None = None
    map_source: ArtifactInput | GatherInput | None = None
    parent: str | None = None
    index: int | None = None

    @property
    def is_dynamic_map(self) -> bool:
        return self.map_source is not None

    def upstream(self) -> set[str]:
        nodes: set[str] = set(self.after)
        refs: list[Any] = [*self.inputs.values()]
        if self.map_source is not None:
            refs.append(self.map_source)
        while refs:
            ref = refs.pop()
            if isinstance(ref, (ArtifactInput, GatherInput)):
                nodes.add(ref.node)
            elif isinstance(ref, ListInput):
                refs.extend(ref.refs)
            elif isinstance(ref, ItemInput):
                refs.append(ref.source)
        return nodes


@dataclass(frozen=True)
class Plan:
    """A compiled, validated DAG for one set of pipeline parameters."""

    pipeline: str
    params: Mapping[str, Any]
    nodes: Mapping[str, Node]
    order: tuple[str, ...]
    outputs: Mapping[str, InputRef]

    def downstream(self) -> dict[str, set[str]]:
        children: dict[str, set[str]] = {name: set() for name in self.nodes}
        for node in self.nodes.values():
            for parent in node.upstream():
                children[parent].add(node.name)
        return children


# ---------------------------------------------------------------------------- builder
def _is_json_literal(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        return False
    return True


class _Builder:
    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.nodes: dict[str, Node] = {}
        self._uses: dict[str, int] = {}
        self._annotations: dict[tuple[str, str], Any] = {}

    def _fresh_name(self, base: str) -> str:
        count = self._uses.get(base, 0) + 1
        self._uses[base] = count
        name = base if count == 1 else f"{base}_{count}"
        while name in self.nodes:
            count += 1
            self._uses[base] = count
            name = f"{base}_{count}"
        return name

    def _check(self, produced: Any, source: str, step: Step[Any, Any], input_name: str) -> None:
        expected = step.input(input_name).annotation
        if not is_compatible(produced, expected):
            raise TypeMismatchError(
                f"Output {source} ({annotation_name(produced)}) cannot feed input "
                f"{input_name!r} of step {step.name!r} ({annotation_name(expected)}). Change "
                "one of the annotations or convert the value in a step between them."
            )

    def _ref(self, step: Step[Any, Any], input_name: str, value: Any) -> InputRef | None:
        """The input reference for `value`, or None when it is a JSON parameter."""
        if isinstance(value, (StepOutput, MappedOutput)) and value.annotation is None:
            raise PipelineDefinitionError(
                f"Step {value.node!r} returns None, so it has no output to feed input "
                f"{input_name!r} of step {step.name!r}. Annotate its return type, or order "
                f"the steps with after={value.node!r}."
            )
        if isinstance(value, StepOutput):
            self._check(value.annotation, f"{value.node}.{value.output}", step, input_name)
            return ArtifactInput(value.node, value.output)
        if isinstance(value, MappedOutput):
            expected = step.input(input_name).annotation
            element = list_element(expected)
            if not is_compatible(list, expected) or (
                expected is not inspect_empty and not is_compatible(value.annotation, element)
            ):
                raise TypeMismatchError(
                    f"Mapped output {value.node}.{value.output} "
                    f"({annotation_name(value.annotation)}) cannot feed input {input_name!r} "
                    f"of step {step.name!r} ({annotation_name(expected)}): a mapped output "
                    "arrives as list[T]."
                )
            if value.items is not None:
                return ListInput(tuple(ArtifactInput(i.node, i.output) for i in value.items))
            return GatherInput(value.node, value.output)
        if (
            isinstance(value, (list, tuple))
            and value
            and all(isinstance(v, StepOutput) for v in value)
        ):
            element = list_element(step.input(input_name).annotation)
            for item in value:
                if not is_compatible(item.annotation, element):
                    raise TypeMismatchError(
                        f"Output {item.node}.{item.output} ({annotation_name(item.annotation)})"
                        f" cannot be an element of input {input_name!r} of step {step.name!r} "
                        f"({annotation_name(step.input(input_name).annotation)})."
                    )
            return ListInput(tuple(ArtifactInput(v.node, v.output) for v in value))
        if any(isinstance(v, (StepOutput, MappedOutput)) for v in _flatten(value)):
            raise PipelineDefinitionError(
                f"Input {input_name!r} of step {step.name!r} mixes step outputs with other "
                "values in a container. Pass a list made only of step outputs, or build the "
                "container inside a step."
            )
        if _is_json_literal(value):
            return None
        return LiteralInput(value)

    def _handles(self, node: str, step: Step[Any, Any]) -> Any:
        if not step.outputs:
            return StepOutput(node, DEFAULT_OUTPUT, None)
        handles = tuple(StepOutput(node, o.name, o.annotation) for o in step.outputs)
        return handles if step.returns_tuple else handles[0]

    def _resolve_after(self, after: Any) -> tuple[str, ...]:
        if after is None:
            return ()
        items = after if isinstance(after, (list, tuple)) else [after]
        names = []
        for item in items:
            if isinstance(item, (StepOutput, MappedOutput)):
                names.append(item.node)
            elif isinstance(item, str):
                names.append(item)
            else:
                raise PipelineDefinitionError(
                    f"`after=` takes step outputs or invocation names. Got {item!r} instead."
                )
        return tuple(names)

    def _make_node(
        self, step: Step[Any, Any], bound: Mapping[str, Any], name: str, **extra: Any
    ) -> Node:
        node = Node(name=name, step=step, **extra)
        for input_name, value in bound.items():
            ref = self._ref(step, input_name, value)
            if ref is None:
                node.params[input_name] = value
            else:
                node.inputs[input_name] = ref
        self.nodes[name] = node
        return node

    def add_call(
        self, step: Step[Any, Any], args: Sequence[Any], kwargs: Mapping[str, Any], after: Any
    ) -> Any:
        bound = step.bind(args, kwargs)
        name = self._fresh_name(step.name)
        self._make_node(step, bound, name, after=self._resolve_after(after))
        return self._handles(name, step)

    def add_map(
        self, step: Step[Any, Any], mapped: str, items: Any, kwargs: Mapping[str, Any]
    ) -> Any:
        step.bind([], {**kwargs, mapped: None})  # validates names and required inputs
        base = self._fresh_name(step.name)
        if isinstance(items, StepOutput) or (
            isinstance(items, MappedOutput) and items.items is None
        ):
            if isinstance(items, StepOutput):
                element = list_element(items.annotation)
                source: ArtifactInput | GatherInput = ArtifactInput(items.node, items.output)
            else:
                element = items.annotation
                source = GatherInput(items.node, items.output)
            self._check(element, f"items of {items.node}.{items.output}", step, mapped)
            self._make_node(step, kwargs, base, map_input=mapped, map_source=source)
            outputs = step.outputs or ()
            mapped_handles = tuple(MappedOutput(base, o.name, o.annotation) for o in outputs)
            if not mapped_handles:
                return MappedOutput(base, DEFAULT_OUTPUT, None)
            return mapped_handles if step.returns_tuple else mapped_handles[0]
        try:
            values = list(items)
        except TypeError as exc:
            raise PipelineDefinitionError(
                f"{step.name}.map() needs a list, a step output or a mapped output. Got "
                f"{type(items).__name__} instead."
            ) from exc
        children = []
        for index, item in enumerate(values):
            child = f"{base}[{index}]"
            self._make_node(step, {**kwargs, mapped: item}, child, parent=base, index=index)
            children.append(self._handles(child, step))
        outputs = step.outputs or ()
        if step.returns_tuple:
            return tuple(
                MappedOutput(base, o.name, o.annotation, tuple(c[i] for c in children))
                for i, o in enumerate(outputs)
            )
        annotation = outputs[0].annotation if outputs else None
        output = outputs[0].name if outputs else DEFAULT_OUTPUT
        return MappedOutput(base, output, annotation, tuple(children))


def _flatten(value: Any) -> Iterator[Any]:
    if isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _flatten(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _flatten(item)
    else:
        yield value


_BUILDER: contextvars.ContextVar[_Builder | None] = contextvars.ContextVar(
    "conveyor_pipeline_builder", default=None
)


def current_builder() -> _Builder | None:
    return _BUILDER.get()


def _output_refs(builder: _Builder, returned: Any) -> dict[str, InputRef]:
    def ref(value: Any, name: str) -> InputRef:
        if isinstance(value, StepOutput):
            return ArtifactInput(value.node, value.output)
        if isinstance(value, MappedOutput):
            if value.items is not None:
                return ListInput(tuple(ArtifactInput(i.node, i.output) for i in value.items))
            return GatherInput(value.node, value.output)
        raise PipelineDefinitionError(
            f"Pipeline {builder.pipeline!r} returned {type(value).__name__} as output {name!r}; "
            "a pipeline may return step outputs only (one, a tuple, or a dict of them)."
        )

    if returned is None:
        return {}
    if isinstance(returned, dict):
        return {str(k): ref(v, str(k)) for k, v in returned.items()}
    if isinstance(returned, tuple) and not isinstance(returned, (StepOutput, MappedOutput)):
        names = [getattr(v, "output", f"output_{i}") for i, v in enumerate(returned)]
        if len(set(names)) != len(names):
            names = [f"output_{i}" for i in range(len(returned))]
        return {n: ref(v, n) for n, v in zip(names, returned, strict=True)}
    return {DEFAULT_OUTPUT: ref(returned, DEFAULT_OUTPUT)}


# ---------------------------------------------------------------------------- pipeline
class Pipeline(Generic[P, R]):
    """A function whose step calls form a DAG; `run(**params)` executes it."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        options: Mapping[str, Any] | None = None,
        schedule: str | None = None,
        triggers: Sequence[Any] = (),
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.options = dict(options or {})
        self.schedule = schedule
        self.triggers = tuple(triggers)
        self.signature = inspect.signature(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def parameters(self) -> dict[str, Any]:
        """Parameter names with their defaults (inspect.Parameter.empty when required)."""
        return {name: p.default for name, p in self.signature.parameters.items()}

    def bind_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        known = list(self.signature.parameters)
        for key in params:
            if key not in known:
                raise UnknownParameterError(key, f"pipeline {self.name!r}", known)
        try:
            bound = self.signature.bind(**params)
        except TypeError as exc:
            raise PipelineDefinitionError(f"Pipeline {self.name!r}: {exc}.") from exc
        bound.apply_defaults()
        return dict(bound.arguments)

    def build(self, **params: Any) -> Plan:
        """Compile the DAG for these parameters, validating names, types and ordering.

        Raises:
            UnknownParameterError: a parameter the pipeline does not take.
            TypeMismatchError: an output wired to an input of an unrelated type.
            CycleError: `after=` constraints that close a loop.
        """
        values = self.bind_params(params)
        builder = _Builder(self.name)
        token = _BUILDER.set(builder)
        try:
            returned = self.fn(**values)  # type: ignore[call-arg]
        finally:
            _BUILDER.reset(token)
        outputs = _output_refs(builder, returned)
        names = set(builder.nodes)
        graph: dict[str, set[str]] = {}
        for node in builder.nodes.values():
            upstream = node.upstream()
            unknown = upstream - names
            if unknown:
                missing = sorted(unknown)[0]
                from conveyor.exceptions import did_you_mean

                raise PipelineDefinitionError(
                    f"Step {node.name!r} must run after {missing!r}, which is not a step "
                    f"invocation of pipeline {self.name!r}." + did_you_mean(missing, sorted(names))
                )
            graph[node.name] = upstream
        try:
            order = tuple(graphlib.TopologicalSorter(graph).static_order())
        except graphlib.CycleError as exc:
            loop = list(exc.args[1])
            raise CycleError(loop) from None
        return Plan(self.name, values, dict(builder.nodes), order, outputs)

    def configure(self, **options: Any) -> Pipeline[P, R]:
        """A copy whose runs use these options (executor, cache, settings, ...)."""
        return Pipeline(
            self.fn,
            name=self.name,
            options={**self.options, **options},
            schedule=self.schedule,
            triggers=self.triggers,
        )

    def run(self, **params: Any) -> Any:
        """Build and execute the pipeline; returns the finished `Run`.

        Raises:
            RunFailedError: a step failed (the error names it; `.run` has the details).
        """
        from conveyor.execution.orchestrator import run_pipeline

        return run_pipeline(self, params, **self.options)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        bound = self.signature.bind(*args, **kwargs)
        return self.run(**bound.arguments)

    def __repr__(self) -> str:
        return f"<Pipeline {self.name}>"


def pipeline(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    schedule: str | None = None,
    triggers: Sequence[Any] = (),
) -> Any:
    """Turn a function that calls steps into a pipeline.

    Its parameters become the run's recorded parameters; what it returns (a step output,
    a tuple or a dict of them) becomes the run's outputs.
    """

    def decorate(function: Callable[P, R]) -> Pipeline[P, R]:
        return Pipeline(function, name=name, schedule=schedule, triggers=triggers)

    return decorate(fn) if fn is not None else decorate


__all__ = [
    "ArtifactInput",
    "GatherInput",
    "InputRef",
    "ItemInput",
    "ListInput",
    "LiteralInput",
    "MappedOutput",
    "Node",
    "Pipeline",
    "Plan",
    "StepOutput",
    "pipeline",
]
