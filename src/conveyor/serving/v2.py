"""Open Inference Protocol (KServe v2) bodies: tensors in, tensors out.

An infer request either names one tensor per signature column (shape ``[n]`` or
``[n, 1]``), or sends one ``[n, k]`` tensor whose k columns follow the signature order
(what numeric clients such as KServe's own examples do).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.serving.validation import RequestError, Validator

if TYPE_CHECKING:
    import numpy as np

    from conveyor.serving.servable import Servable

DATATYPES = {
    "int": "INT64",
    "float": "FP64",
    "bool": "BOOL",
    "str": "BYTES",
    "category": "BYTES",
    "datetime": "BYTES",
}


def _flat(data: Any, where: str) -> list[Any]:
    if type(data) is not list:
        raise RequestError(
            422, f"{where}.data must be an array.", problem="wrong_type", field=f"{where}.data"
        )
    if data and type(data[0]) is list:
        out: list[Any] = []
        for row in data:
            if type(row) is not list:
                raise RequestError(
                    422,
                    f"{where}.data mixes nested arrays and scalars.",
                    problem="bad_shape",
                    field=f"{where}.data",
                )
            out.extend(row)
        return out
    return data


def _shape(tensor: dict[str, Any], where: str) -> list[int]:
    shape = tensor.get("shape")
    if type(shape) is not list or not shape or not all(type(d) is int and d >= 0 for d in shape):
        raise RequestError(
            422,
            f"{where}.shape must be an array of non-negative integers, e.g. [3] or [3, 30].",
            problem="bad_shape",
            field=f"{where}.shape",
        )
    return shape


def columns_from_infer(doc: Any, validator: Validator) -> tuple[dict[str, list[Any]], int]:
    """Validated columns from an infer request body.

    Raises:
        RequestError: 422 naming the tensor (``inputs.<name>``) and the problem.
    """
    if type(doc) is not dict:
        raise RequestError(
            422, "The body must be a JSON object with 'inputs'.", problem="wrong_type"
        )
    inputs = doc.get("inputs")
    if type(inputs) is not list or not inputs or not all(type(t) is dict for t in inputs):
        raise RequestError(
            422,
            "'inputs' must be a non-empty array of tensors ({name, shape, datatype, data}).",
            problem="bad_shape",
            field="inputs",
        )
    names = validator.names
    if len(inputs) == 1 and inputs[0].get("name") not in names and len(names) > 1:
        tensor = inputs[0]
        where = f"inputs.{tensor.get('name')}"
        shape = _shape(tensor, where)
        data = _flat(tensor.get("data"), where)
        if len(shape) != 2 or shape[1] != len(names) or shape[0] * shape[1] != len(data):
            raise RequestError(
                422,
                f"{where} must be one tensor per column named after the signature, or a "
                f"single [n, {len(names)}] tensor with the columns in signature order "
                f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}). Got shape "
                f"{shape} with {len(data)} values.",
                problem="bad_shape",
                field=f"{where}.shape",
            )
        k = len(names)
        columns = {name: data[j::k] for j, name in enumerate(names)}
        return validator.columns(columns, where="inputs")
    columns = {}
    for tensor in inputs:
        name = tensor.get("name")
        if type(name) is not str:
            raise RequestError(
                422, "Every input tensor needs a 'name'.", problem="missing", field="inputs"
            )
        where = f"inputs.{name}"
        shape = _shape(tensor, where)
        data = _flat(tensor.get("data"), where)
        size = 1
        for d in shape:
            size *= d
        if size != len(data) or (len(shape) == 2 and shape[1] != 1) or len(shape) > 2:
            raise RequestError(
                422,
                f"{where} must have shape [n] or [n, 1] with n values. Got shape {shape} "
                f"with {len(data)} values.",
                problem="bad_shape",
                field=f"{where}.shape",
            )
        columns[name] = data
    return validator.columns(columns, where="inputs")


def _datatype(values: np.ndarray) -> str:
    kind = values.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind == "i":
        return f"INT{values.dtype.itemsize * 8}"
    if kind == "u":
        return f"UINT{values.dtype.itemsize * 8}"
    if kind == "f":
        return f"FP{values.dtype.itemsize * 8}"
    return "BYTES"


def wire(values: np.ndarray) -> Any:
    """A numpy array as orjson serializes it fastest (native array or list)."""
    if values.dtype.kind in "biuf" and values.flags.c_contiguous:
        return values
    return values.tolist()


def infer_response(
    servable_name: str,
    version: str,
    request_id: str,
    preds: np.ndarray,
    proba: np.ndarray | None,
    *,
    wanted: Any,
    classes: list[Any] | None = None,
) -> dict[str, Any]:
    """The infer response body; ``predict_proba`` names its columns' classes in
    ``parameters.classes`` (column j is the probability of ``classes[j]``)."""
    n = len(preds)
    outputs: list[dict[str, Any]] = [
        {"name": "predict", "datatype": _datatype(preds), "shape": [n], "data": wire(preds)}
    ]
    if proba is not None:
        tensor: dict[str, Any] = {
            "name": "predict_proba",
            "datatype": _datatype(proba),
            "shape": list(proba.shape),
            "data": wire(proba.reshape(-1)),
        }
        if classes is not None and len(classes) == (proba.shape[1] if proba.ndim == 2 else 1):
            tensor["parameters"] = {"classes": list(classes)}
        outputs.append(tensor)
    if type(wanted) is list and wanted:
        names = {o.get("name") for o in wanted if type(o) is dict}
        outputs = [o for o in outputs if o["name"] in names]
    return {
        "model_name": servable_name,
        "model_version": version,
        "id": request_id,
        "outputs": outputs,
    }


def model_metadata(servable: Servable) -> dict[str, Any]:
    outputs: list[dict[str, Any]] = [{"name": "predict", "datatype": "BYTES", "shape": [-1]}]
    if servable.classes is not None:
        outputs.append(
            {
                "name": "predict_proba",
                "datatype": "FP64",
                "shape": [-1, len(servable.classes)],
                "parameters": {"classes": list(servable.classes)},
            }
        )
    return {
        "name": servable.name,
        "versions": [servable.version],
        "platform": servable.flavor,
        "inputs": [
            {"name": r.name, "datatype": DATATYPES[r.dtype], "shape": [-1]} for r in servable.rules
        ],
        "outputs": outputs,
    }
