"""Type annotations of steps: output naming and wiring compatibility."""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Union, get_args, get_origin

NoneType = type(None)


def annotation_name(annotation: Any) -> str:
    if annotation is inspect_empty or annotation is Any:
        return "Any"
    if isinstance(annotation, type):
        return annotation.__qualname__
    return str(annotation).replace("typing.", "")


class _Empty:
    pass


inspect_empty: Any = _Empty


def strip_annotated(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def is_compatible(produced: Any, expected: Any) -> bool:
    """Whether a value annotated `produced` may feed an input annotated `expected`.

    Unknown or unannotated sides are accepted: the check only rejects what is certainly
    wrong (two concrete classes that are unrelated, or containers of unrelated kinds).
    """
    produced = strip_annotated(produced)
    expected = strip_annotated(expected)
    if produced in (inspect_empty, Any) or expected in (inspect_empty, Any):
        return True
    if isinstance(produced, (str, typing.ForwardRef)) or isinstance(
        expected, (str, typing.ForwardRef)
    ):
        return True
    if isinstance(expected, typing.TypeVar) or isinstance(produced, typing.TypeVar):
        return True
    e_origin = get_origin(expected)
    if e_origin in (Union, types.UnionType):
        return any(is_compatible(produced, member) for member in get_args(expected))
    p_origin = get_origin(produced)
    if p_origin in (Union, types.UnionType):
        return all(is_compatible(member, expected) for member in get_args(produced))
    p_class = p_origin or produced
    e_class = e_origin or expected
    if not (isinstance(p_class, type) and isinstance(e_class, type)):
        return True
    if e_class is float and p_class is int:
        return True
    if e_class is complex and p_class in (int, float):
        return True
    try:
        if not issubclass(p_class, e_class):
            return False
    except TypeError:
        return True
    p_args, e_args = get_args(produced), get_args(expected)
    if p_args and e_args and len(p_args) == len(e_args) and e_class is not tuple:
        return all(is_compatible(p, e) for p, e in zip(p_args, e_args, strict=True))
    return True


def list_element(annotation: Any) -> Any:
    """The element type of list[T] / Sequence[T] annotations, or Any."""
    annotation = strip_annotated(annotation)
    args = get_args(annotation)
    if get_origin(annotation) in (list, tuple, typing.Sequence, typing.Iterable) and args:
        return args[0]
    import collections.abc as cabc

    if get_origin(annotation) in (cabc.Sequence, cabc.Iterable) and args:
        return args[0]
    return Any
