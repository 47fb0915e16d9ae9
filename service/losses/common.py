"""Checks and numerics that several loss modules share.

Everything here is NumPy float64 and independent of torch; the checks raise ``InvalidInput``
naming the field, with the reason phrased for the client.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import ValidationInfo

from service.arrays import DEFAULT_LIMITS, ArrayLimits
from service.dtypes import round_to_dtype
from service.errors import InvalidInput
from service.losses.base import LossWarning

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def floating(arr: npt.NDArray[Any], dtype: str) -> F64:
    """A numeric array as float64 holding the values the compute dtype can represent."""
    return round_to_dtype(arr, dtype)


def integral(arr: npt.NDArray[Any], field: str, what: str = "class indices") -> I64:
    """An array of whole numbers as int64; fractional values are refused, as torch would."""
    if arr.dtype.kind == "i":
        return arr.astype(np.int64, copy=False)
    if arr.size and not np.all(np.floor(arr) == arr):
        bad = arr[np.floor(arr) != arr].flat[0]
        raise InvalidInput.at(field, f"{what} must be whole numbers, got {float(bad)!r}")
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
    # max and -min rather than abs().max(): no temporary the size of the input
    peak = max((max(float(a.max()), -float(a.min())) for a in arrays if a.size), default=0.0)
    return max(1.0, peak)


def last_axis(arr: npt.NDArray[Any], axis: int) -> npt.NDArray[Any]:
    """``np.moveaxis(arr, axis, -1)``, skipping the call when ``axis`` is already last."""
    return arr if axis in (-1, arr.ndim - 1) else np.moveaxis(arr, axis, -1)


def pick(values: npt.NDArray[Any], index: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    """``values[..., index]`` element-wise: the entry of the last axis that ``index`` (shaped
    like ``values`` without it) names; ``np.take_along_axis`` at a third of its cost."""
    n = values.shape[-1]
    flat = values.reshape(-1, n)[np.arange(index.size), index.reshape(-1)]
    picked: npt.NDArray[Any] = flat.reshape(index.shape)
    return picked


def logsumexp(x: F64, axis: int) -> F64:
    """log Σ exp(x) along ``axis`` without overflow: m + log Σ exp(x - m), m the maximum."""
    if x.shape[axis] == 0:
        return np.full(np.delete(np.array(x.shape), axis).tolist(), -np.inf)
    # ndarray methods rather than np.max/np.sum/np.squeeze: the same work without the Python
    # wrappers, which cost more than the arithmetic on a small request's few numbers
    m = x.max(axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.exp(x - m).sum(axis=axis, keepdims=True)) + m
    squeezed: F64 = out.squeeze(axis=axis)
    return squeezed


def log_softmax(x: F64, axis: int) -> F64:
    return x - np.expand_dims(logsumexp(x, axis), axis)


def broadcast_shape_checked(
    field: str, shape: tuple[int, ...], other: tuple[int, ...], other_name: str = "input"
) -> tuple[int, ...]:
    """The shape torch's broadcasting gives ``shape`` (of ``field``) and ``other``, or a refusal
    naming ``field``: trailing dimensions must be equal or 1 (NumPy and torch share the rule)."""
    try:
        return tuple(np.broadcast_shapes(shape, other))
    except ValueError:
        raise InvalidInput.at(
            field,
            f"shape {shape_str(shape)} does not broadcast with {other_name}'s "
            f"{shape_str(other)} (trailing dimensions must be equal or 1)",
        ) from None


def sum_to_shape(grad: F64, shape: tuple[int, ...]) -> F64:
    """The gradient of a broadcast operand: ``grad`` (of the broadcast shape) summed over the
    axes broadcasting added or stretched, so that it has the operand's own ``shape``."""
    lead = grad.ndim - len(shape)
    out = grad.sum(axis=tuple(range(lead))) if lead else grad
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and out.shape[i] != 1)
    if stretched:
        out = out.sum(axis=stretched, keepdims=True)
    return np.asarray(out, dtype=np.float64).reshape(shape)


def broadcast_mismatch_warning(
    input_shape: tuple[int, ...], target_shape: tuple[int, ...], result_shape: tuple[int, ...]
) -> LossWarning:
    """The warning for an input and a target whose shapes differ but broadcast.

    Torch computes over the broadcast shape without complaint (or with a UserWarning the
    service does not let escape); when the result is larger than both tensors, every input is
    paired with several targets, as with an input of shape (N, 1) against a target of (N)."""
    size = int(np.prod(result_shape))
    outer = size > max(int(np.prod(input_shape)), int(np.prod(target_shape)))
    message = (
        f"input {shape_str(input_shape)} and target {shape_str(target_shape)} differ in shape; "
        f"torch broadcasts them to {shape_str(result_shape)}."
    )
    if outer:
        message += (
            f" That is {size} elements, more than either tensor holds: each input element is "
            "compared with several targets (an outer difference), which is almost never meant. "
            "Give both the same shape (for example squeeze a trailing dimension of 1)."
        )
    return LossWarning(
        "shape_mismatch_broadcast",
        message,
        {
            "input_shape": list(input_shape),
            "target_shape": list(target_shape),
            "broadcast_shape": list(result_shape),
        },
    )


def element_limit(info: ValidationInfo) -> int:
    """The most elements one tensor may hold, as configured (the validation context's limits)."""
    limits: ArrayLimits = (info.context or {}).get("limits", DEFAULT_LIMITS)
    return limits.max_elements


def check_broadcast_size(a: tuple[int, ...], b: tuple[int, ...], info: ValidationInfo) -> None:
    """Refuse (``ValueError``, for a field validator) shapes whose broadcast holds more elements
    than one tensor may: an input of (100000, 1) against a target of (100000) is a small body
    but a 10^10-element computation. Shapes that do not broadcast are left to ``prepare``."""
    try:
        shape = np.broadcast_shapes(a, b)
    except ValueError:
        return
    size = int(np.prod(shape, dtype=np.float64))
    if size > element_limit(info):
        raise ValueError(
            f"broadcasting {shape_str(b)} with input {shape_str(a)} gives {shape_str(shape)}, "
            f"{size} elements; the limit is {element_limit(info)}"
        )


def ieee_quiet(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``fn`` with NumPy's floating-point warnings off.

    Inputs rounded to a narrow dtype can be ±inf (float16 ends at 65504), and then the reference
    meets inf - inf or 0·inf and yields NaN, exactly as IEEE arithmetic (and torch) does. NumPy's
    RuntimeWarnings about it would only reach the log, or fail a test run that treats warnings
    as errors."""

    @functools.wraps(fn)
    def quiet(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return quiet


def grad_scale(reduction: str, denominator: float) -> np.float64:
    """The factor the reduction puts on each element's gradient: 1/denominator for ``mean``
    (inf over a zero denominator, so the gradient is NaN or inf like the value; NumPy division,
    since Python's would raise), 1 otherwise."""
    if reduction != "mean":
        return np.float64(1.0)
    with np.errstate(divide="ignore"):
        return np.float64(1.0) / np.float64(denominator)
