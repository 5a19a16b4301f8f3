"""The pipeline DSL: steps, outputs, wiring, validation at build time."""

from __future__ import annotations

from typing import Annotated

import pytest

from conveyor import pipeline, step
from conveyor.core.pipeline import ArtifactInput, GatherInput, ListInput
from conveyor.exceptions import (
    CycleError,
    PipelineDefinitionError,
    TypeMismatchError,
    UnknownParameterError,
)


@step
def make(n: int) -> int:
    return n


@step
def add(a: int, b: int = 1) -> int:
    return a + b


@step
def shout(text: str) -> str:
    return text.upper()


@step
def pair(x: int) -> tuple[Annotated[int, "low"], Annotated[int, "high"]]:
    return x - 1, x + 1


@step
def numbers(n: int) -> list[int]:
    return list(range(n))


@step
def total(xs: list[int]) -> int:
    return sum(xs)


@step
def nothing(x: int) -> None:
    return None


def test_step_called_outside_a_pipeline_just_runs() -> None:
    assert add(2, b=3) == 5
    assert pair(5) == (4, 6)
    assert add.map([1, 2, 3]) == [2, 3, 4]


def test_step_records_inputs_outputs_and_settings() -> None:
    @step(retries=2, timeout=5, cache=False, resources={"cpus": 2}, cache_version="v2")
    def configured(x: int, y: float = 0.5) -> Annotated[float, "score"]:
        return x * y

    assert [i.name for i in configured.inputs] == ["x", "y"]
    assert configured.input("y").default == 0.5
    assert [o.name for o in configured.outputs] == ["score"]
    assert configured.settings.retries == 2
    assert configured.settings.resources == {"cpus": 2}
    assert [o.name for o in pair.outputs] == ["low", "high"]
    assert pair.returns_tuple
    assert nothing.outputs == ()


def test_invalid_step_settings_are_rejected_with_the_rule() -> None:
    with pytest.raises(
        PipelineDefinitionError, match="'retries' parameter of step must be an int >= 0"
    ):
        step(retries=-1)(lambda x: x)


def test_literals_become_params_and_handles_become_inputs() -> None:
    @pipeline
    def p(n: int = 3):
        a = make(n)
        return add(a, b=10)

    plan = p.build(n=4)
    assert plan.params == {"n": 4}
    assert plan.nodes["make"].params == {"n": 4}
    assert plan.nodes["add"].params == {"b": 10}
    assert plan.nodes["add"].inputs == {"a": ArtifactInput("make", "output")}
    assert plan.order.index("make") < plan.order.index("add")
    assert plan.outputs == {"output": ArtifactInput("add", "output")}


def test_same_step_twice_gets_distinct_invocation_names() -> None:
    @pipeline
    def p():
        a = make(1)
        b = make(2)
        return add(a, add(b))

    plan = p.build()
    assert set(plan.nodes) == {"make", "make_2", "add", "add_2"}
    # The inner call is made first, so it is "add"; the outer one is "add_2".
    assert plan.nodes["add_2"].inputs["b"] == ArtifactInput("add", "output")


def test_multiple_named_outputs_unpack_into_handles() -> None:
    @pipeline
    def p():
        low, high = pair(5)
        return {"sum": add(low, high), "low": low}

    plan = p.build()
    assert plan.nodes["add"].inputs == {
        "a": ArtifactInput("pair", "low"),
        "b": ArtifactInput("pair", "high"),
    }
    assert set(plan.outputs) == {"sum", "low"}


def test_unknown_pipeline_parameter_suggests_the_closest_name() -> None:
    @pipeline
    def p(test_size: float = 0.2):
        return make(1)

    with pytest.raises(UnknownParameterError, match=r"'test_sise'.*Did you mean 'test_size'"):
        p.build(test_sise=0.3)


def test_unknown_step_argument_suggests_the_closest_name() -> None:
    @pipeline
    def p():
        return add(make(1), bb=2)

    with pytest.raises(UnknownParameterError, match=r"'bb' for step 'add'.*Did you mean 'b'"):
        p.build()


def test_type_mismatch_names_the_output_and_the_input() -> None:
    @pipeline
    def p():
        return shout(make(1))

    with pytest.raises(TypeMismatchError) as info:
        p.build()
    message = str(info.value)
    assert "make.output (int)" in message
    assert "'text' of step 'shout' (str)" in message


def test_int_output_may_feed_a_float_input() -> None:
    @step
    def half(x: float) -> float:
        return x / 2

    @pipeline
    def p():
        return half(make(1))

    assert "half" in p.build().nodes


def test_cycle_through_after_names_the_loop() -> None:
    @pipeline
    def p():
        a = make(1, after="add_2")
        b = add(a)
        return add(b, after=["make"])

    with pytest.raises(CycleError) as info:
        p.build()
    loop = info.value.loop
    assert {"make", "add", "add_2"} <= set(loop)
    assert " -> " in str(info.value)


def test_after_naming_an_unknown_step_is_an_error() -> None:
    @pipeline
    def p():
        return make(1, after="mkae")

    with pytest.raises(PipelineDefinitionError, match="Did you mean 'make'"):
        p.build()


def test_map_over_a_literal_list_expands_at_build_time() -> None:
    @pipeline
    def p():
        return total(add.map([1, 2, 3], b=5))

    plan = p.build()
    assert [plan.nodes[f"add[{i}]"].params for i in range(3)] == [
        {"a": 1, "b": 5},
        {"a": 2, "b": 5},
        {"a": 3, "b": 5},
    ]
    assert plan.nodes["total"].inputs["xs"] == ListInput(
        tuple(ArtifactInput(f"add[{i}]", "output") for i in range(3))
    )


def test_map_over_a_step_output_is_expanded_at_run_time() -> None:
    @pipeline
    def p():
        return total(add.map(numbers(4)))

    plan = p.build()
    assert plan.nodes["add"].is_dynamic_map
    assert plan.nodes["total"].inputs["xs"] == GatherInput("add", "output")


def test_mapped_output_needs_a_list_input() -> None:
    @pipeline
    def p():
        return shout(add.map([1, 2]))

    with pytest.raises(TypeMismatchError, match="arrives as list"):
        p.build()


def test_a_handle_cannot_drive_python_control_flow() -> None:
    @pipeline
    def p():
        if make(1):
            return make(2)
        return None

    with pytest.raises(PipelineDefinitionError, match="cannot drive an `if`"):
        p.build()


def test_pipeline_may_only_return_step_outputs() -> None:
    @pipeline
    def p():
        make(1)
        return 42

    with pytest.raises(PipelineDefinitionError, match="may return step outputs only"):
        p.build()


def test_wiring_a_step_that_returns_none_is_an_error() -> None:
    @pipeline
    def p():
        return add(nothing(1))

    with pytest.raises(PipelineDefinitionError, match="returns None"):
        p.build()
