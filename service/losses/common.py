"""Checks and numerics that several loss modules share.

Everything here is NumPy float64 and independent of torch; the checks raise ``InvalidInput``
naming the field, with the reason phrased for the client.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from service.arrays import DEFAULT_LIMITS
from service.dtypes import round_to_dtype
from service.errors import InvalidInput

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def floating(arr: npt.NDArray[Any], dtype: str) -> F64:
    """A numeric array as float64 holding the values the compute dtype can represent."""
    return round_to_dtype(arr.astype(np.float64, copy=False), dtype)


def integral(arr: npt.NDArray[Any], field: str, what: str = "class indices") -> I64:
    """An array of whole numbers as int64; fractional values are refused, as torch would."""
    if arr.dtype.kind == "i":
        return arr.astype(np.int64, copy=False)
    if arr.size and not np.all(np.floor(arr) == arr):
        bad = arr[np.floor(arr) != arr].flat[0]
        raise InvalidInput.at(field, f"{what} must be whole numbers, got {bad!r}")
    if arr.size and np.abs(arr).max() >= 2.0**63:
        raise InvalidInput.at(field, f"{what} out of the 64-bit integer range")
    return arr.astype(np.int64)


def shape_str(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def require_shape(arr: npt.NDArray[Any], field: str, shape: tuple[int, ...], why: str) -> None:
    if arr.shape != shape:
        raise InvalidInput.at(
            field, f"shape {shape_str(arr.shape)} does not match {shape_str(shape)} ({why})"
        )


def require_rank(arr: npt.NDArray[Any], field: str, ranks: str, ok: bool) -> None:
    if not ok:
        raise InvalidInput.at(
            field, f"rank {arr.ndim} (shape {shape_str(arr.shape)}); expected {ranks}"
        )


def broadcast_named(
    *operands: tuple[str, tuple[int, ...]], max_elements: int = DEFAULT_LIMITS.max_elements
) -> tuple[int, ...]:
    """The broadcast shape of named operands taken in order, as torch's element-wise ops do.

    Broadcasting one operand after another gives the same result as broadcasting them all at
    once, so the first operand that fails against those before it is the one to name. Small
    operands can broadcast to a huge result ((N, 1) against (1, M)), so a result larger than
    ``max_elements`` (the per-tensor limit) is refused too, before torch tries to allocate it."""
    shape: tuple[int, ...] = ()
    seen: list[str] = []
    for field, operand in operands:
        try:
            shape = tuple(np.broadcast_shapes(shape, operand))
        except ValueError:
            others = ", ".join(f"'{s}'" for s in seen)
            raise InvalidInput.at(
                field,
                f"shape {shape_str(operand)} does not broadcast with {others} "
                f"(broadcast so far: {shape_str(shape)})",
            ) from None
        size = math.prod(shape)
        if size > max_elements:
            raise InvalidInput.at(
                field,
                f"broadcasting it gives shape {shape_str(shape)}, {size} elements, more than "
                f"the limit of {max_elements}",
            )
        seen.append(field)
    return shape


def sum_grad_to_shape(grad: F64, shape: tuple[int, ...]) -> F64:
    """The gradient of a broadcast operand: ``grad`` (of the broadcast result) summed over the
    dimensions broadcasting added or stretched, which is what autograd returns."""
    lead = grad.ndim - len(shape)
    out = grad.sum(axis=tuple(range(lead))) if lead > 0 else grad
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and out.shape[i] != 1)
    if stretched:
        out = out.sum(axis=stretched, keepdims=True)
    result: F64 = np.asarray(out, dtype=np.float64).reshape(shape)
    return result


def scale_of(*arrays: npt.NDArray[Any]) -> float:
    """Magnitude of the inputs, which sets the absolute tolerance of the comparison."""
    peak = max((float(np.abs(a).max()) for a in arrays if a.size), default=0.0)
    return max(1.0, peak)


def logsumexp(x: F64, axis: int) -> F64:
    """log Σ exp(x) along ``axis`` without overflow: m + log Σ exp(x - m), m the maximum."""
    if x.shape[axis] == 0:
        return np.full(np.delete(np.array(x.shape), axis).tolist(), -np.inf)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    squeezed: F64 = np.squeeze(out, axis=axis)
    return squeezed


def log_softmax(x: F64, axis: int) -> F64:
    return x - np.expand_dims(logsumexp(x, axis), axis)
