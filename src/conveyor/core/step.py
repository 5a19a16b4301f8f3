"""`@step`: a typed function that becomes a cached, recorded pipeline stage."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Generic, ParamSpec, TypeVar, get_args, get_origin, overload

from conveyor.core.types import NoneType, inspect_empty
from conveyor.exceptions import PipelineDefinitionError, UnknownParameterError

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_OUTPUT = "output"


@dataclass(frozen=True)
class StepSettings:
    """How a step executes.

    Attributes:
        cache: Reuse a previous result when the cache key matches.
        retries: Extra attempts after a failure.
        retry_delay: Seconds before the first retry.
        backoff: Multiplier applied to the delay after each retry.
        timeout: Seconds an attempt may take before it fails.
        resources: Requested resources, e.g. ``{"cpus": 2, "memory": "8GiB"}``.
        cache_version: Bump to invalidate cached results by hand.
        models: Registry references (``churn@production``) whose current version joins
            the cache key: when the alias moves, the step runs again (a gate against the
            champion must not reuse a decision made against the previous one).
        env: Environment variables whose values join the cache key (only a hash of each
            value is kept).
        files: Files or folders (relative to the project root) whose content joins the key.
        packages: Distributions whose installed versions join the key, e.g.
            ``["scikit-learn"]``.
    """

    cache: bool = True
    retries: int = 0
    retry_delay: float = 1.0
    backoff: float = 2.0
    timeout: float | None = None
    resources: Mapping[str, Any] = field(default_factory=dict)
    cache_version: str | None = None
    models: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for label, example in (
            ("env", "API_URL"),
            ("files", "data/raw.csv"),
            ("packages", "scikit-learn"),
        ):
            value = getattr(self, label)
            if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
                raise PipelineDefinitionError(
                    f"The {label!r} parameter of step must be a list of non-empty strings "
                    f"such as [{example!r}]. Got {value!r} instead."
                )
            object.__setattr__(self, label, tuple(value))
        if isinstance(self.models, str) or not all(isinstance(m, str) and m for m in self.models):
            raise PipelineDefinitionError(
                "The 'models' parameter of step must be a list of registry references such "
                f"as ['churn@production']. Got {self.models!r} instead."
            )
        if not isinstance(self.retries, int) or self.retries < 0:
            raise PipelineDefinitionError(
                f"The 'retries' parameter of step must be an int >= 0. Got {self.retries!r} "
                "instead."
            )
        if self.timeout is not None and self.timeout <= 0:
            raise PipelineDefinitionError(
                f"The 'timeout' parameter of step must be a number > 0 or None. Got "
                f"{self.timeout!r} instead."
            )
        if self.retry_delay < 0 or self.backoff < 1:
            raise PipelineDefinitionError(
                "The 'retry_delay' parameter of step must be >= 0 and 'backoff' >= 1. Got "
                f"{self.retry_delay!r} and {self.backoff!r} instead."
            )


@dataclass(frozen=True)
class InputSpec:
    name: str
    annotation: Any
    default: Any = inspect_empty
    kind: inspect._ParameterKind = inspect.Parameter.POSITIONAL_OR_KEYWORD

    @property
    def required(self) -> bool:
        return self.default is inspect_empty


@dataclass(frozen=True)
class OutputSpec:
    name: str
    annotation: Any


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:
        # Annotations naming types that only exist under TYPE_CHECKING: keep raw strings,
        # which the wiring check treats as unknown.
        return dict(getattr(fn, "__annotations__", {}))


def _outputs_from(annotation: Any) -> tuple[tuple[OutputSpec, ...], bool]:
    """Output specs from a return annotation, and whether the value is a tuple to split."""
    if annotation in (inspect_empty, None, NoneType):
        return (), False
    if get_origin(annotation) is Annotated:
        base, *meta = get_args(annotation)
        names = [m for m in meta if isinstance(m, str)]
        if names:
            return (OutputSpec(names[0], base),), False
    if get_origin(annotation) is tuple:
        members = get_args(annotation)
        named = [
            get_origin(m) is Annotated and any(isinstance(x, str) for x in get_args(m)[1:])
            for m in members
        ]
        if members and all(named) and Ellipsis not in members:
            specs = []
            for member in members:
                base, *meta = get_args(member)
                specs.append(OutputSpec(next(x for x in meta if isinstance(x, str)), base))
            names_seen = [s.name for s in specs]
            if len(set(names_seen)) != len(names_seen):
                raise PipelineDefinitionError(
                    f"Output names must be unique. Got {names_seen} instead."
                )
            return tuple(specs), True
    return (OutputSpec(DEFAULT_OUTPUT, annotation),), False


class Step(Generic[P, R]):
    """A typed function that conveyor runs as a recorded, cached pipeline stage.

    Called outside a pipeline it simply runs the function. Called while a ``@pipeline``
    function is being built, it returns handles to its future outputs instead.
    """

    def __init__(
        self, fn: Callable[P, R], *, name: str | None = None, settings: StepSettings | None = None
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.settings = settings or StepSettings()
        signature = inspect.signature(fn)
        hints = _type_hints(fn)
        inputs = []
        for parameter in signature.parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise PipelineDefinitionError(
                    f"Step {self.name!r} declares *{parameter.name}/**{parameter.name}: steps "
                    "need named parameters so inputs can be recorded. Name each input."
                )
            inputs.append(
                InputSpec(
                    parameter.name,
                    hints.get(parameter.name, inspect_empty),
                    inspect_empty if parameter.default is parameter.empty else parameter.default,
                    parameter.kind,
                )
            )
        self.inputs: tuple[InputSpec, ...] = tuple(inputs)
        self.outputs: tuple[OutputSpec, ...]
        self.outputs, self._multi = _outputs_from(hints.get("return", inspect_empty))
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    @property
    def returns_tuple(self) -> bool:
        """Whether the function returns a tuple that is split into named outputs."""
        return self._multi

    def input(self, name: str) -> InputSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise UnknownParameterError(name, f"step {self.name!r}", [i.name for i in self.inputs])

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Map call arguments to input names, with did-you-mean errors for unknown names."""
        known = [i.name for i in self.inputs]
        for key in kwargs:
            if key not in known:
                raise UnknownParameterError(key, f"step {self.name!r}", known)
        if len(args) > len(self.inputs):
            raise PipelineDefinitionError(
                f"Step {self.name!r} takes {len(self.inputs)} inputs. Got {len(args)} "
                "positional arguments instead."
            )
        bound = dict(zip(known, args, strict=False))
        for key, value in kwargs.items():
            if key in bound:
                raise PipelineDefinitionError(
                    f"Step {self.name!r} got two values for input {key!r}."
                )
            bound[key] = value
        missing = [spec.name for spec in self.inputs if spec.required and spec.name not in bound]
        if missing:
            raise PipelineDefinitionError(
                f"Step {self.name!r} is missing required inputs: {', '.join(missing)}. Pass "
                "them when calling the step in the pipeline."
            )
        return bound

    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...
    @overload
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from conveyor.core.pipeline import current_builder

        builder = current_builder()
        if builder is None:
            return self.fn(*args, **kwargs)
        after = kwargs.pop("after", None)
        return builder.add_call(self, args, kwargs, after=after)

    def map(self, items: Any, /, **kwargs: Any) -> Any:
        """Fan out: one invocation per item of `items`, fed to the first input not in kwargs.

        Inside a pipeline, `items` may be a literal list, a handle to an upstream output that
        is a list (expanded when it is known), or the result of another `map`. Returns
        handles that a downstream step taking ``list[T]`` receives in item order. Outside a
        pipeline it returns ``[fn(item, **kwargs) for item in items]``.
        """
        from conveyor.core.pipeline import current_builder

        mapped = next((i.name for i in self.inputs if i.name not in kwargs), None)
        if mapped is None:
            raise PipelineDefinitionError(
                f"Step {self.name!r}.map() needs an input left to map over; all inputs were "
                "given as keyword arguments."
            )
        builder = current_builder()
        if builder is None:
            function: Callable[..., Any] = self.fn
            return [function(**{mapped: item}, **kwargs) for item in items]
        return builder.add_map(self, mapped, items, kwargs)

    def with_options(self, *, name: str | None = None, **settings: Any) -> Step[P, R]:
        """A copy with another name and/or changed settings (cache, retries, timeout...)."""
        return Step(self.fn, name=name or self.name, settings=replace(self.settings, **settings))

    def __repr__(self) -> str:
        return f"<Step {self.name}>"


@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...
@overload
def step(
    *,
    name: str | None = None,
    cache: bool = True,
    retries: int = 0,
    retry_delay: float = 1.0,
    backoff: float = 2.0,
    timeout: float | None = None,
    resources: Mapping[str, Any] | None = None,
    cache_version: str | None = None,
    models: Sequence[str] = (),
    env: Sequence[str] = (),
    files: Sequence[str] = (),
    packages: Sequence[str] = (),
) -> Callable[[Callable[P, R]], Step[P, R]]: ...


def step(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    cache: bool = True,
    retries: int = 0,
    retry_delay: float = 1.0,
    backoff: float = 2.0,
    timeout: float | None = None,
    resources: Mapping[str, Any] | None = None,
    cache_version: str | None = None,
    models: Sequence[str] = (),
    env: Sequence[str] = (),
    files: Sequence[str] = (),
    packages: Sequence[str] = (),
) -> Step[P, R] | Callable[[Callable[P, R]], Step[P, R]]:
    """Turn a typed function into a pipeline step.

    Inputs come from the signature; outputs from the return annotation: one output named
    ``output``, ``Annotated[T, "name"]`` for a named one, or a tuple of such for several.

    Example:
        >>> @step(retries=2)
        ... def double(x: int) -> int:
        ...     return 2 * x

    ``env``, ``files`` and ``packages`` declare inputs the code fingerprint cannot see:
    environment variables (their values, hashed), files or folders (their content) and
    distributions (their installed versions). Each joins the cache key.
    """
    settings = StepSettings(
        cache=cache,
        retries=retries,
        retry_delay=retry_delay,
        backoff=backoff,
        timeout=timeout,
        resources=dict(resources or {}),
        cache_version=cache_version,
        models=tuple(models) if not isinstance(models, str) else models,  # type: ignore[arg-type]
        env=env,  # type: ignore[arg-type]  # validated (and made a tuple) by StepSettings
        files=files,  # type: ignore[arg-type]
        packages=packages,  # type: ignore[arg-type]
    )

    def decorate(function: Callable[P, R]) -> Step[P, R]:
        return Step(function, name=name, settings=settings)

    return decorate(fn) if fn is not None else decorate


__all__ = ["DEFAULT_OUTPUT", "InputSpec", "OutputSpec", "Step", "StepSettings", "step"]
