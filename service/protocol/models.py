"""Every loss is a protocol model: its metadata, and the mapping of tensors to keyword arguments.

Inputs are named like the torch arguments (``input``, ``target``, ``weight``, ``log_probs``,
``input1``, ...); the loss's other keyword arguments (``reduction``, ``ignore_index``, ...) and
the service's ``dtype`` and ``reference`` travel as request ``parameters``. Parameters that
clients add on their own (``sequence_id``, ``priority``, ``binary_data_output``, ...) are ignored,
as the protocol asks; other unknown parameters are ignored too but named back in the response
so that a misspelt option does not pass unnoticed.

The compute dtype follows the datatype of the first floating input (FP16 computes in float16,
BF16 in bfloat16, FP32 in float32, FP64 in float64) unless a ``dtype`` parameter says otherwise:
a client that sends half precision asks for half precision.

Outputs:

- ``loss``: torch's value for the requested reduction, in the compute datatype;
- ``per_sample``: the element-wise losses (the reference's, FP64), before reduction;
- ``reference``: the NumPy float64 reference value, shaped like ``loss``;
- ``grad_<input>``: torch's gradient of ``loss`` (of its sum for ``none``) with respect to a
  differentiable input, computed only when requested by name;
- the loss's extras (``softmax``, ...), FP64 from the reference, only when requested by name.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from service.arrays import to_array
from service.dataplane import GRAD
from service.errors import FieldError, InvalidInput
from service.losses.base import Loss
from service.protocol.datatypes import COMPUTE_DTYPES, DATATYPE_OF, FLOATING, datatype_of
from service.protocol.request import CLIENT_PARAMETERS, InferenceRequest

PLATFORM: Final = "pytorch_loss"
VERSION: Final = "1"
"""Losses are not versioned; the one version, "1", is accepted in paths and listed."""

LOSS, PER_SAMPLE, REFERENCE = "loss", "per_sample", "reference"
GRAD_PREFIX: Final = "grad_"


@dataclass(frozen=True)
class OutputSpec:
    """One output a model can return, and where the data plane's response holds it."""

    name: str
    datatype: str | None
    """Fixed datatype; None when it is the compute datatype."""
    on_request_only: bool


@functools.cache
def output_specs(loss: Loss[Any]) -> tuple[OutputSpec, ...]:
    """Every output the loss's model can return (computed once per loss)."""
    specs = [
        OutputSpec(LOSS, None, False),
        OutputSpec(PER_SAMPLE, "FP64", False),
        OutputSpec(REFERENCE, "FP64", False),
    ]
    specs += [OutputSpec(GRAD_PREFIX + n, None, True) for n in loss.differentiable]
    specs += [OutputSpec(e, "FP64", True) for e in loss.extras]
    return tuple(specs)


@functools.cache
def _output_specs_by_name(loss: Loss[Any]) -> dict[str, OutputSpec]:
    return {s.name: s for s in output_specs(loss)}


@functools.cache
def _default_outputs(loss: Loss[Any]) -> tuple[OutputSpec, ...]:
    return tuple(s for s in output_specs(loss) if not s.on_request_only)


def loss_options(loss: Loss[Any]) -> list[str]:
    """The keyword arguments that travel as request parameters (``include`` is implied by the
    requested outputs instead: protocol parameters cannot hold lists)."""
    return list(_loss_options(loss))


@functools.cache
def _loss_options(loss: Loss[Any]) -> tuple[str, ...]:
    return tuple(
        k for k in loss.params_model.model_fields if k not in loss.tensor_inputs and k != "include"
    )


@functools.cache
def _option_set(loss: Loss[Any]) -> frozenset[str]:
    return frozenset(_loss_options(loss))


def model_metadata(loss: Loss[Any], default_dtype: str) -> dict[str, Any]:
    """``GET /v2/models/<name>``: inputs and outputs with datatypes, ``-1`` for variable sizes.

    The protocol has no way to say "any rank"; each input's shape is that of the loss's example
    (every dimension -1), and an input the example leaves out is shown as ``[-1]``."""
    default = DATATYPE_OF[default_dtype]
    example = loss.example()
    inputs = []
    for name in loss.tensor_inputs:
        if name in example:
            arr = to_array(example[name])
            dt = default if arr.dtype.kind == "f" else "INT64"
            shape = [-1] * arr.ndim
        else:
            dt, shape = default, [-1]
        inputs.append({"name": name, "datatype": dt, "shape": shape})
    outputs = [
        {"name": s.name, "datatype": s.datatype or default, "shape": [-1]}
        for s in output_specs(loss)
    ]
    return {
        "name": loss.name,
        "versions": [VERSION],
        "platform": PLATFORM,
        "inputs": inputs,
        "outputs": outputs,
    }


@dataclass(frozen=True)
class LossCall:
    """An inference request as the data plane's body, and what the response should hold."""

    body: dict[str, Any]
    outputs: list[OutputSpec]
    explicit: bool
    """Whether the client listed the outputs (then each must be delivered)."""
    ignored_parameters: list[str]


def to_loss_call(loss: Loss[Any], request: InferenceRequest) -> LossCall:
    """Map tensors to keyword arguments, parameters to options, and outputs to ``include``."""
    names = ", ".join(loss.tensor_inputs)
    body: dict[str, Any] = {}
    for i, tensor in enumerate(request.inputs):
        if tensor.name not in loss.tensor_inputs:
            raise InvalidInput.at(
                f"inputs[{i}].name", f"{loss.name} has no input {tensor.name!r}; inputs: {names}"
            )
        body[tensor.name] = _as_numbers(tensor.array)
    options = _option_set(loss)
    ignored: list[str] = []
    for key, value in request.parameters.items():
        if key in loss.tensor_inputs:
            raise InvalidInput.at(
                f"parameters.{key}", f"{key!r} is an input tensor of {loss.name}, not a parameter"
            )
        if key in options:
            body[key] = value
        elif key not in CLIENT_PARAMETERS:
            ignored.append(key)
    if "dtype" not in body:
        first = next(
            (
                t
                for name in loss.tensor_inputs
                for t in request.inputs
                if t.name == name and t.datatype in FLOATING
            ),
            None,
        )
        if first is not None:
            body["dtype"] = COMPUTE_DTYPES[first.datatype]
    specs = _output_specs_by_name(loss)
    if request.outputs is None:
        chosen = list(_default_outputs(loss))
    else:
        errors = [
            FieldError(f"outputs[{i}].name", f"{loss.name} has no output {o.name!r}")
            for i, o in enumerate(request.outputs)
            if o.name not in specs
        ]
        if errors:
            errors[0] = FieldError(
                errors[0].field, errors[0].message + f"; outputs: {', '.join(specs)}"
            )
            raise InvalidInput.many(errors)
        chosen = [specs[o.name] for o in request.outputs]
    include = [s.name.removeprefix(GRAD_PREFIX) for s in chosen if s.on_request_only]
    if any(s.name.startswith(GRAD_PREFIX) for s in chosen):
        include = [GRAD, *(e for e in include if e in loss.extras)]
    if include:
        body["include"] = include
    return LossCall(
        body=body, outputs=chosen, explicit=request.outputs is not None, ignored_parameters=ignored
    )


def _as_numbers(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """BOOL tensors are 0/1 numbers to a loss (the datatype says so; no JSON ambiguity)."""
    return arr.view(np.uint8) if arr.dtype == np.bool_ else arr


def output_arrays(
    loss: Loss[Any], call: LossCall, result: dict[str, Any]
) -> list[tuple[str, str, npt.NDArray[Any]]]:
    """``(name, datatype, array)`` of each chosen output, from the data plane's response."""
    compute_dt = DATATYPE_OF[result["dtype"]]
    ref = result.get("reference")
    breakdown = result.get("breakdown")
    extras = result.get("extras") or {}
    out: list[tuple[str, str, npt.NDArray[Any]]] = []
    for spec in call.outputs:
        if spec.name == LOSS:
            arr = np.asarray(result["value"])
        elif spec.name in (PER_SAMPLE, REFERENCE):
            if ref is None or breakdown is None:
                if not call.explicit:
                    continue  # all outputs by default: those the request turned off are left out
                raise InvalidInput.at(
                    "outputs",
                    f"output {spec.name!r} needs the reference, which reference=false turned off",
                )
            arr = np.asarray(breakdown["loss"] if spec.name == PER_SAMPLE else ref["value"])
        elif spec.name.startswith(GRAD_PREFIX):
            wrt = spec.name.removeprefix(GRAD_PREFIX)
            grads = extras.get(GRAD, {})
            if wrt not in grads:
                raise InvalidInput.at(
                    "outputs",
                    f"no gradient with respect to {wrt!r}: it was not sent, or it is not "
                    "floating point (class indices have no gradient)",
                )
            arr = np.asarray(grads[wrt])
        else:
            arr = np.asarray(extras[spec.name])
        dt = spec.datatype or compute_dt
        if spec.datatype is None and arr.dtype.kind != "f":
            dt = datatype_of(arr)
        out.append((spec.name, dt, arr))
    return out


def response_parameters(result: dict[str, Any], ignored: list[str]) -> dict[str, Any]:
    """What the data plane found besides tensors, as protocol parameters (scalars only)."""
    params: dict[str, Any] = {}
    for key in ("dtype", "reduction", "device", "target_form", "denominator"):
        value = result.get(key)
        if value is not None:
            params[key] = value
    for key, value in result.items():
        if key not in params and isinstance(value, (str, int, float, bool)) and key != "name":
            params[key] = value
    ref = result.get("reference")
    if ref is not None:
        params["agrees"] = bool(ref["agrees"])
        params["max_abs_diff"] = ref["max_abs_diff"]
        params["max_rel_diff"] = ref["max_rel_diff"]
    warnings = result.get("warnings") or []
    if warnings:
        params["warnings"] = "; ".join(f"{w['code']}: {w['message']}" for w in warnings)
    if ignored:
        params["ignored_parameters"] = ",".join(ignored)
    return params
