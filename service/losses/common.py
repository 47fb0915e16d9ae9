"""Checks and numerics that several loss modules share.

Everything here is NumPy float64 and independent of torch; the checks raise ``InvalidInput``
naming the field, with the reason phrased for the client.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from service.dtypes import round_to_dtype
from service.errors import InvalidInput

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def floating(arr: npt.NDArray[Any], dtype: str) -> F64:
    """A numeric array as float64 holding the values the compute dtype can represent."""
    return round_to_dtype(arr, dtype)


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


def scale_of(*arrays: npt.NDArray[Any]) -> float:
    """Magnitude of the inputs, which sets the absolute tolerance of the comparison."""
    # max and -min rather than abs().max(): no temporary the size of the input
    peak = max((max(float(a.max()), -float(a.min())) for a in arrays if a.size), default=0.0)
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
