"""``cross_entropy`` for small requests, in plain Python floats: the same response, bit for bit.

Most calls post one small batch of logits. Through the general path (Pydantic validation, the
loss's checks, about twenty NumPy reductions on a few numbers, warnings, the comparison) the
article's 3x3 body costs some 200 us of Python around 3 us of ``F.cross_entropy``. This module
answers the common shapes of that request directly from the parsed JSON: it accepts only a body
it can vouch for (2-D logits of at most ``MAX_ROWS`` rows and ``MAX_ELEMENTS`` numbers, class
indices in range or class probabilities, float32 or float64, no extras) and returns ``None`` for
anything else, which the data plane then computes the general way; every refusal, with its
message, therefore still comes from the general path. Torch computes the value from the same
tensors as there; the reference repeats ``CrossEntropy.reference`` operation for operation in
NumPy's order (``service.losses.smallmath``), so every number in the answer is the same double.
A test compares the two paths' bytes over many random bodies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from service.arrays import ArrayLimits
from service.comparison import compare_floats, compare_scalar
from service.losses.base import Loss, LossWarning
from service.losses.cross_entropy import (
    SUM_TOLERANCE,
    looks_like_probabilities_warning,
    target_not_a_distribution_warning,
    weight_with_probabilities_warning,
)
from service.losses.smallmath import np_exp, np_log, np_sum
from service.stages import StageClock

MAX_ROWS = 64  # breakdown vectors stay within jsonenc's plain-list size
MAX_ELEMENTS = 256  # beyond, NumPy's per-call overhead is no longer the cost
KEYS = frozenset(
    {
        "input",
        "target",
        "weight",
        "ignore_index",
        "reduction",
        "label_smoothing",
        "dtype",
        "reference",
        "include",
    }
)
_REDUCTIONS = frozenset({"none", "mean", "sum"})
_NP_DTYPES = {"float32": np.float32, "float64": np.float64}
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_EXACT_INT = 2**53
_INDEX_RANGE = 2**31


Guard = Callable[[Loss[Any], str, Callable[[], np.ndarray[Any, Any]]], np.ndarray[Any, Any]]


def _unguarded(loss: Loss[Any], dtype: str, fn: Callable[[], np.ndarray[Any, Any]]) -> Any:
    return fn()


def _numbers(values: Any, n: int) -> list[float] | None:
    """``values`` as floats when it is a list of ``n`` finite JSON numbers (no booleans)."""
    if type(values) is not list or len(values) != n:
        return None
    out: list[float] = []
    for v in values:
        kind = type(v)
        if kind is float:
            if not math.isfinite(v):
                return None
            out.append(v)
        elif kind is int and -_EXACT_INT < v < _EXACT_INT:
            out.append(float(v))
        else:
            return None
    return out


def _matrix(values: Any, n: int | None, c: int | None) -> tuple[list[list[float]], int] | None:
    """Rows of floats (rectangular, ``n`` rows of ``c`` when given) and their width."""
    if type(values) is not list or not values or (n is not None and len(values) != n):
        return None
    first = values[0]
    width = len(first) if type(first) is list else 0
    if not width or (c is not None and width != c):
        return None
    rows = []
    for row in values:
        floats = _numbers(row, width)
        if floats is None:
            return None
        rows.append(floats)
    return rows, width


def _rounded(rows: list[list[float]], np_dtype: Any) -> tuple[np.ndarray[Any, Any], list[float]]:
    """The rows as a tensor-ready array of the compute dtype, and its values as floats: the
    numbers the general path's ``round_to_dtype`` holds (one correctly rounded cast)."""
    values = [v for row in rows for v in row]
    arr = np.array(values, dtype=np_dtype).reshape(len(rows), len(rows[0]))
    flat: list[float] = arr.ravel().tolist()
    return arr, flat


#: The array kinds a tensor of the Open Inference Protocol may arrive as, by field: floating
#: logits and weights, integer class indices. (Probability targets as arrays are left to the
#: general path: its warning check sums them in their own precision, not in float64.)
_ARRAY_KINDS = {"input": ("f", 2), "target": ("i", 1), "weight": ("f", 1)}
_ITEMSIZES = {"f": (4, 8), "i": (1, 2, 4, 8)}  # float32 and float64; integers


def _as_lists(body: dict[str, Any]) -> dict[str, Any] | None:
    """A body whose tensors are arrays (``/v2`` decodes its tensors into arrays) with those
    tensors as the lists of numbers they hold (``tolist`` gives each float32 or float64 value
    exactly), or None for arrays this path does not take."""
    out = dict(body)
    for key, (kind, ndim) in _ARRAY_KINDS.items():
        value = body.get(key)
        if value is None:
            continue
        if (
            type(value) is not np.ndarray
            or value.dtype.kind != kind
            or value.dtype.itemsize not in _ITEMSIZES[kind]
            or value.ndim != ndim
        ):
            return None
        if value.size > MAX_ELEMENTS:
            return None
        out[key] = value.tolist()
    return out


def _fits(rows: list[list[float]], dtype: str) -> bool:
    """Whether every value stays finite in ``dtype`` (else the general path warns of it)."""
    if dtype == "float64":
        return True
    return all(min(row) >= -_FLOAT32_MAX and max(row) <= _FLOAT32_MAX for row in rows)


def compute(
    loss: Loss[Any],
    body: Any,
    *,
    default_dtype: str,
    default_reference: bool,
    device: str,
    limits: ArrayLimits,
    guard: Guard = _unguarded,
    clock: StageClock | None = None,
) -> dict[str, Any] | None:
    """The response of ``POST /v1/losses/cross_entropy`` for ``body``, or ``None`` when the
    body is not one this path handles. ``guard`` runs the torch call (the data plane's
    ``guarded_torch``, which sorts torch's failures into device and input errors); ``clock``
    times the stages (``service.stages``)."""
    if type(body) is not dict or not KEYS.issuperset(body):
        return None
    if type(body.get("input")) is np.ndarray:
        body = _as_lists(body)
        if body is None:
            return None
    dtype = body.get("dtype")
    if dtype is None:
        dtype = default_dtype
    reference = body.get("reference")
    include = body.get("include", [])
    reduction = body.get("reduction", "mean")
    eps = body.get("label_smoothing", 0.0)
    ignore_index = body.get("ignore_index", -100)
    if (
        type(dtype) is not str
        or dtype not in _NP_DTYPES
        or (reference is not None and type(reference) is not bool)
        or include != []
        or type(include) is not list
        or type(reduction) is not str
        or reduction not in _REDUCTIONS
        or type(eps) is not float
        or not 0.0 <= eps <= 1.0
        or type(ignore_index) is not int
        or not -_INDEX_RANGE <= ignore_index < _INDEX_RANGE
    ):
        return None
    parsed = _matrix(body.get("input"), None, None)
    if parsed is None:
        return None
    x_rows, c = parsed
    n = len(x_rows)
    if (
        n > MAX_ROWS
        or n * c > MAX_ELEMENTS
        or limits.max_rank < 2
        or max(n, c) > limits.max_dim
        or n * c > limits.max_elements
        or not _fits(x_rows, dtype)
    ):
        return None
    target = body.get("target")
    if type(target) is not list or len(target) != n:
        return None
    weight = body.get("weight")
    w_raw: list[float] | None = None
    if weight is not None:
        w_raw = _numbers(weight, c)
        if w_raw is None or not _fits([w_raw], dtype):
            return None
    np_dtype = _NP_DTYPES[dtype]
    indices = type(target[0]) is not list
    if indices:
        y = target
        for v in y:
            if type(v) is not int or not (0 <= v < c or v == ignore_index):
                return None
        t_rows: list[list[float]] = []
        if all(v == ignore_index for v in y):
            return None  # the general path says so (and 'mean' is 0/0)
    else:
        parsed_t = _matrix(target, n, c)
        if parsed_t is None or not _fits(parsed_t[0], dtype):
            return None
        t_rows = parsed_t[0]
        y = []

    # -- torch, on the tensors the general path builds ----------------------------------
    x_arr, xr = _rounded(x_rows, np_dtype)
    tensors: dict[str, torch.Tensor] = {"input": torch.from_numpy(x_arr)}
    tr: list[float] = []
    if indices:
        tensors["target"] = torch.from_numpy(np.array(y, dtype=np.int64))
    else:
        t_arr, tr = _rounded(t_rows, np_dtype)
        tensors["target"] = torch.from_numpy(t_arr)
    wr: list[float] = []
    if w_raw is not None:
        w_arr, wr = _rounded([w_raw], np_dtype)
        tensors["weight"] = torch.from_numpy(w_arr.reshape(c))
    # weight's rounded values, and each target's weight w_y (0 where ignored)
    kept = [v != ignore_index for v in y]
    if indices:
        w_y = [(wr[v] if wr else 1.0) if k else 0.0 for v, k in zip(y, kept, strict=True)]
        if not np_sum(w_y):
            return None  # a mean over no weight: the general path's NaN

    if clock is not None:
        clock.lap("validate")

    def run_torch() -> np.ndarray[Any, Any]:
        with torch.inference_mode():
            out = torch.nn.functional.cross_entropy(
                tensors["input"],
                tensors["target"],
                weight=tensors.get("weight"),
                ignore_index=ignore_index,
                reduction=reduction,
                label_smoothing=eps,
            )
            result: np.ndarray[Any, Any] = out.detach().cpu().numpy()
            return result

    value = guard(loss, dtype, run_torch)
    if clock is not None:
        clock.lap("torch")

    response: dict[str, Any] = {
        "name": loss.name,
        "value": value,
        "reduction": reduction,
        "dtype": dtype,
        "device": device,
        "shape": list(value.shape),
        "target_form": "class_indices" if indices else "class_probabilities",
        "classes": c,
        "denominator": None,
        "reference": None,
        "breakdown": None,
    }
    if default_reference if reference is None else reference:
        _reference(loss, response, value, dtype, reduction, eps, c, xr, tr, wr, y, kept)
    if clock is not None:
        clock.lap("reference")
    response["warnings"] = [
        {"code": w.code, "message": w.message, **w.data}
        for w in _warnings(x_rows, t_rows, w_raw, y, kept, indices, c)
    ]
    if clock is not None:
        clock.lap("warnings")
    return response


def _reference(
    loss: Loss[Any],
    response: dict[str, Any],
    value: np.ndarray[Any, Any],
    dtype: str,
    reduction: str,
    eps: float,
    c: int,
    xr: list[float],
    tr: list[float],
    wr: list[float],
    y: list[int],
    kept: list[bool],
) -> None:
    """``CrossEntropy.reference``, the comparison and the breakdown, into ``response``."""
    n = len(xr) // c
    rows = [xr[i * c : (i + 1) * c] for i in range(n)]
    # logsumexp: m + log Σ exp(x - m), m each row's maximum
    m = [max(row) for row in rows]
    exps = np_exp([v - m[i] for i, row in enumerate(rows) for v in row])
    sums = [np_sum(exps[i * c : (i + 1) * c]) for i in range(n)]
    lse = [s + mi for s, mi in zip(np_log(sums), m, strict=True)]
    breakdown: dict[str, Any] = {"logsumexp": lse}
    if y:
        safe = [v if k else 0 for v, k in zip(y, kept, strict=True)]
        w_y = [(wr[v] if wr else 1.0) if k else 0.0 for v, k in zip(y, kept, strict=True)]
        x_y = [rows[i][safe[i]] for i in range(n)]
        nll = [w_y[i] * (lse[i] - x_y[i]) for i in range(n)]
        denominator = np_sum(w_y)
        breakdown |= {
            "target_logit": [x_y[i] if kept[i] else 0.0 for i in range(n)],
            "weight": w_y,
            "ignored": [not k for k in kept],
        }
    else:
        t_rows = [tr[i * c : (i + 1) * c] for i in range(n)]
        # w * t first, as NumPy evaluates ``w * t * logp``; a missing weight is a scalar 1.0
        wt = [[wr[j] * t[j] for j in range(c)] if wr else t for t in t_rows]
        nll = [-np_sum([wt[i][j] * (rows[i][j] - lse[i]) for j in range(c)]) for i in range(n)]
        denominator = float(n)
        breakdown["target_term"] = [
            np_sum([wt[i][j] * rows[i][j] for j in range(c)]) for i in range(n)
        ]
    if eps > 0:
        if wr:
            smooth = [-np_sum([(rows[i][j] - lse[i]) * wr[j] for j in range(c)]) for i in range(n)]
        else:
            smooth = [-np_sum([rows[i][j] - lse[i] for j in range(c)]) for i in range(n)]
        if y:
            smooth = [s if k else 0.0 for s, k in zip(smooth, kept, strict=True)]
        share = eps / c
        losses = [(1 - eps) * a + share * b for a, b in zip(nll, smooth, strict=True)]
        breakdown["smoothing_term"] = [share * b for b in smooth]
    else:
        losses = nll
    ref_value: float | list[float]
    if reduction == "none":
        ref_value = losses
    else:
        total = np_sum(losses)
        ref_value = total if reduction == "sum" else total / denominator
    tol = loss.tolerance(dtype)
    # the magnitude of the rounded inputs: max and -min, at least 1
    scale = max(1.0, max(max(xr), -min(xr)))
    if reduction == "none":
        cmp = compare_floats(value.tolist(), losses, tol, scale)
    else:
        assert isinstance(ref_value, float)
        cmp = compare_scalar(float(value), ref_value, tol, scale)
    response["denominator"] = denominator if reduction == "mean" else None
    response["reference"] = {
        "value": ref_value,
        "max_abs_diff": cmp.max_abs_diff,
        "max_rel_diff": cmp.max_rel_diff,
        "agrees": cmp.agrees,
        "tolerance": {"rtol": tol.rtol, "atol": tol.atol * scale},
    }
    response["breakdown"] = {"loss": losses, **breakdown}


def _sums_to_one(rows: list[list[float]]) -> bool:
    return all(abs(np_sum(row) - 1.0) <= SUM_TOLERANCE for row in rows)


def _warnings(
    x_rows: list[list[float]],
    t_rows: list[list[float]],
    w_raw: list[float] | None,
    y: list[int],
    kept: list[bool],
    indices: bool,
    c: int,
) -> list[LossWarning]:
    """``CrossEntropy.warnings`` on the numbers as sent (not rounded)."""
    out: list[LossWarning] = []
    flat = [v for row in x_rows for v in row]
    if min(flat) >= 0 and max(flat) <= 1 and _sums_to_one(x_rows):
        out.append(looks_like_probabilities_warning(_probability_reading(x_rows, t_rows, y, kept)))
    if not indices:
        if w_raw is not None:
            out.append(weight_with_probabilities_warning())
        if min(v for row in t_rows for v in row) < 0 or not _sums_to_one(t_rows):
            out.append(target_not_a_distribution_warning())
    return out


def _probability_reading(
    x_rows: list[list[float]], t_rows: list[list[float]], y: list[int], kept: list[bool]
) -> float:
    """The mean of -log p[target], the input read as p (``cross_entropy._probability_reading``)."""
    if y:
        p = [x_rows[i][v] for i, (v, k) in enumerate(zip(y, kept, strict=True)) if k]
        return -np_sum(np_log(p)) / len(p)
    c = len(x_rows[0])
    logs = np_log([v for row in x_rows for v in row])
    terms = [
        np_sum([0.0 if t[j] == 0 else t[j] * logs[i * c + j] for j in range(c)])
        for i, t in enumerate(t_rows)
    ]
    return -(np_sum(terms) / len(terms))
