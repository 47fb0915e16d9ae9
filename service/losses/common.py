"""Checks and numerics that several loss modules share.

Everything here is NumPy float64 and independent of torch; the checks raise ``InvalidInput``
naming the field, with the reason phrased for the client.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import Field, ValidationInfo

from service.arrays import DEFAULT_LIMITS, LARGE_ELEMENTS, ArrayLimits, extremes
from service.dtypes import QUIET, round_to_dtype
from service.errors import InvalidInput
from service.losses.base import F64 as F64  # re-exported, as the losses import it from here
from service.losses.base import I64 as I64
from service.losses.base import LossWarning, Tensor

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


def require_equal_ranks(*operands: tuple[str, npt.NDArray[Any]]) -> None:
    """Refuse the first operand whose number of dimensions differs from the first one's: torch's
    pairwise losses (margin_ranking, triplet_margin) broadcast their operands only then."""
    (first, a), *others = operands
    for field, arr in others:
        if arr.ndim != a.ndim:
            quoted = [f"'{f}'" for f, _ in operands]
            names = ", ".join(quoted[:-1]) + " and " + quoted[-1]
            raise InvalidInput.at(
                field,
                f"rank {arr.ndim} (shape {shape_str(arr.shape)}) differs from the rank of "
                f"'{first}' ({a.ndim}); torch needs {names} to have the same number of dimensions",
            )


# -- class scores and class indices (cross_entropy, nll_loss, multi_margin_loss) ----------------


def class_axis(x: npt.NDArray[Any]) -> int:
    """Where the classes lie in an input of shape (C), (N, C) or (N, C, d1, ..., dK), as torch's
    cross_entropy and nll_loss read it: dimension 0 of a vector, dimension 1 otherwise."""
    return 0 if x.ndim == 1 else 1


def class_count(x: npt.NDArray[Any], what: str) -> int:
    """C, the size of the class dimension of the input; an input without one, or with an empty
    one, is refused. ``what`` names the input's contents ("logits", ...)."""
    if x.ndim == 0:
        raise InvalidInput.at(
            "input", f"{what} need a class dimension: shape (C), (N, C) or (N, C, d1, ...)"
        )
    n_classes = int(x.shape[class_axis(x)])
    if n_classes == 0:
        raise InvalidInput.at("input", f"the class dimension is empty (shape {shape_str(x.shape)})")
    return n_classes


def without_class_axis(x: npt.NDArray[Any]) -> tuple[int, ...]:
    """The shape of one class index per element: the input's shape without its class dimension."""
    axis = class_axis(x)
    return x.shape[:axis] + x.shape[axis + 1 :]


def refuse_class_axis_last(x: npt.NDArray[Any], t: npt.NDArray[Any]) -> None:
    """Refuse, naming 'input', class indices sent with scores whose class axis is *last*: a
    language model's logits (B, T, V) with labels (B, T), which torch refuses with a shape error
    (it wants the classes at dim 1). Only shapes torch refuses: (B, T, T) with (B, T) is a valid
    (N, C, d1) request, and stays one."""
    if x.ndim < 3 or t.shape != x.shape[:-1] or t.shape == without_class_axis(x):
        return
    moved = (x.shape[0], x.shape[-1], *x.shape[1:-1])
    how = "logits.transpose(1, 2)" if x.ndim == 3 else "logits.movedim(-1, 1)"
    raise InvalidInput.at(
        "input",
        f"shape {shape_str(x.shape)} with class indices {shape_str(t.shape)}: the class axis is "
        f"last (a language model's logits (B, T, V) with labels (B, T)), but torch wants the "
        f"classes at dim 1; send {how}, shape {shape_str(moved)}",
    )


def class_indices(t: npt.NDArray[Any], n_classes: int, ignore_index: int | None = None) -> I64:
    """The target's class indices as int64; fractional values, and indices outside [0, C) other
    than ``ignore_index``, are refused naming 'target', as torch refuses them."""
    y = integral(t, "target")
    if not y.size or (y.min() >= 0 and y.max() < n_classes):
        return y  # the usual case, in two reductions; the mask below only to name the culprit
    bad = (y < 0) | (y >= n_classes)
    if ignore_index is not None:
        bad &= y != ignore_index
    if bad.any():
        unless = "" if ignore_index is None else f" and is not ignore_index ({ignore_index})"
        raise InvalidInput.at(
            "target",
            f"class index {int(y[bad].flat[0])} is out of range [0, {n_classes}){unless}",
        )
    return y


ClassWeight = Annotated[Tensor | None, Field(description="Rescaling weight per class, shape (C).")]
"""The optional ``weight`` of the class-index losses, checked by ``class_weights``."""


def class_weights(weight: npt.NDArray[Any], n_classes: int, dtype: str) -> F64:
    """A per-class ``weight``: shape (C), in the compute dtype."""
    require_shape(weight, "weight", (n_classes,), "one weight per class")
    return floating(weight, dtype)


def at_targets(y: I64, ignore_index: int, w: F64 | None) -> tuple[npt.NDArray[np.bool_], I64, F64]:
    """For class-index targets ``y`` and class weights ``w`` (shape (C); ``None`` for all ones):
    which targets are kept (not ``ignore_index``), the indices with the ignored ones replaced by
    class 0 (safe to index with), and each target's weight w_y (0 where ignored)."""
    kept = y != ignore_index
    safe = y if kept.all() else np.where(kept, y, 0)
    w_y: F64 = kept.astype(np.float64) if w is None else np.where(kept, w[safe], 0.0)
    return kept, safe, w_y


def take_class(values: npt.NDArray[Any], index: I64) -> npt.NDArray[Any]:
    """``values[..., index]`` element by element: ``values`` (..., C) at each element's class
    (``np.take_along_axis`` gives the same at about three times the cost on small arrays)."""
    n = values.shape[-1]
    flat = values.reshape(-1, n)[np.arange(index.size), index.reshape(-1)]
    picked: npt.NDArray[Any] = flat.reshape(index.shape)
    return picked


def scale_of(*arrays: npt.NDArray[Any]) -> float:
    """Magnitude of the inputs, which sets the absolute tolerance of the comparison: the
    largest absolute value among them, at least 1."""
    peak = 1.0
    for a in arrays:
        if not a.size:
            continue
        if a.dtype.kind == "f" and a.size < LARGE_ELEMENTS:
            # two ufunc calls on a small float array (an integer's abs could wrap)
            m = float(_largest(np.abs(a), axis=None))
        else:  # max and -min: no temporary the size of a large input, each scanned once
            lo, hi = extremes(a)
            m = max(hi, -lo)
        if m > peak:
            peak = m
    return peak


_largest = np.maximum.reduce


def last_axis(arr: npt.NDArray[Any], axis: int) -> npt.NDArray[Any]:
    """``np.moveaxis(arr, axis, -1)``, skipping the call when ``axis`` is already last."""
    return arr if axis in (-1, arr.ndim - 1) else np.moveaxis(arr, axis, -1)


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


# -- large inputs: references computed in blocks of rows ----------------------------------------

ROW_BLOCK_ELEMENTS = 1 << 17
"""About how many numbers one block of rows holds (1 MiB of float64): a reference's temporaries
are then a few of these, not a few copies of the whole input."""

BLOCKED_ABOVE_ELEMENTS = 1 << 20
"""Inputs with more numbers than this (8 MiB as float64) have their reference run row block by
row block; smaller ones in one piece, where the loop would only cost time."""


def row_blocks(rows: int, row_size: int, budget: int | None = None) -> list[slice]:
    """Consecutive slices covering ``range(rows)``, each of about ``budget`` numbers
    (``ROW_BLOCK_ELEMENTS``) when a row holds ``row_size``, at least one row per block. A row's
    own arithmetic is the same in a block as in the whole array, so per-row results do not
    depend on the blocking."""
    per_block = ROW_BLOCK_ELEMENTS if budget is None else budget
    step = max(1, per_block // max(1, row_size))
    return [slice(start, min(rows, start + step)) for start in range(0, rows, step)]


def log_softmax(x: F64, axis: int) -> F64:
    return x - np.expand_dims(logsumexp(x, axis), axis)


def element_limit(info: ValidationInfo) -> int:
    """The most elements one tensor may hold, as configured (the validation context's limits)."""
    limits: ArrayLimits = (info.context or {}).get("limits", DEFAULT_LIMITS)
    return limits.max_elements


_ALREADY_QUIET = contextlib.nullcontext()


def quietly(**ignored: str) -> contextlib.AbstractContextManager[object]:
    """``np.errstate(**ignored)``; nothing inside the data plane's computation, which runs with
    every NumPy warning off already (``service.dtypes.QUIET``): entering an ``errstate`` costs
    more than the arithmetic it guards on a small request's arrays."""
    return _ALREADY_QUIET if QUIET.get() else np.errstate(**ignored)  # type: ignore[arg-type]


def ieee_quiet(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``fn`` with NumPy's floating-point warnings off.

    Inputs rounded to a narrow dtype can be ±inf (float16 ends at 65504), and then the reference
    meets inf - inf or 0·inf and yields NaN, exactly as IEEE arithmetic (and torch) does. NumPy's
    RuntimeWarnings about it would only reach the log, or fail a test run that treats warnings
    as errors."""

    @functools.wraps(fn)
    def quiet(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        if QUIET.get():  # the data plane's computation: quiet already
            return fn(*args, **kwargs)
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return quiet


def grad_scale(reduction: str, denominator: float) -> np.float64:
    """The factor the reduction puts on each element's gradient: 1/denominator for ``mean``
    (inf over a zero denominator, so the gradient is NaN or inf like the value; NumPy division,
    since Python's would raise), 1 otherwise."""
    if reduction != "mean":
        return np.float64(1.0)
    with quietly(divide="ignore"):
        return np.float64(1.0) / np.float64(denominator)


# -- warnings several losses give ---------------------------------------------------------------


def not_in(values: npt.NDArray[Any], allowed: tuple[float, ...]) -> npt.NDArray[np.bool_]:
    """``~np.isin(values, allowed)`` for a few allowed values, as a comparison with each:
    the same answer (both compare with ``==``) at a fraction of ``np.isin``'s cost on a
    request's few labels."""
    mask: npt.NDArray[np.bool_] = values != allowed[0]
    for value in allowed[1:]:
        mask = mask & (values != value)
    return mask


def target_values_warning(
    t: npt.NDArray[Any], allowed: tuple[float, float], name: str, hint: str
) -> LossWarning | None:
    """``target_values``, when the target holds values other than the two labels the loss
    expects (torch does not check them); ``hint`` says what such values do and what to send."""
    t = np.asarray(t, dtype=np.float64)
    if not not_in(t, allowed).any():
        return None  # the usual case, in a few comparisons
    values = np.unique(t)
    odd = values[~np.isin(values, allowed)]
    if not odd.size:
        return None
    shown = ", ".join(f"{v:g}" for v in odd[:5])
    return LossWarning(
        "target_values",
        f"{name} expects targets in {{{allowed[0]:g}, {allowed[1]:g}}}; the target holds {shown}. "
        + hint,
        {"unexpected_values": odd[:5].tolist()},
    )


def negative_weight_warning(weight: npt.NDArray[Any] | None) -> LossWarning | None:
    """``negative_weight``, when some weights are below 0 (torch does not check them)."""
    if weight is None or not (weight.size and weight.min() < 0):
        return None
    return LossWarning(
        "negative_weight",
        "some weights are negative: those terms lower the loss, which can then be negative.",
    )


def all_targets_ignored_warning(ignore_index: int) -> LossWarning:
    """``all_targets_ignored``: every class index equals ``ignore_index``, so 'mean' is 0/0."""
    return LossWarning(
        "all_targets_ignored",
        f"every target equals ignore_index ({ignore_index}): the losses are all 0 and 'mean' "
        "divides 0 by 0, which is NaN.",
    )
