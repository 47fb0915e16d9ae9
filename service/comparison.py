"""How torch's answer is compared with the reference's: element-wise, under a tolerance.

One rule for every path: NaN and infinities agree only with themselves; otherwise
``|got - want| <= atol * scale + rtol * |want|``. ``compare`` takes arrays (the general path);
``compare_floats`` the same numbers as Python floats (the small-request paths), computing the
same differences in the same order, so the two give identical figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from service.dtypes import QUIET
from service.losses.base import Tolerance

INF = float("inf")


@dataclass(frozen=True)
class Comparison:
    max_abs_diff: float
    max_rel_diff: float
    agrees: bool


def compare(
    got: npt.NDArray[Any], want: npt.NDArray[np.float64], tol: Tolerance, scale: float
) -> Comparison:
    """Element-wise agreement; NaN and infinities agree only with themselves."""
    a = np.asarray(got, dtype=np.float64)
    b = np.asarray(want, dtype=np.float64)
    if a.shape != b.shape:
        return Comparison(INF, INF, False)
    if a.ndim == 0:
        return compare_scalar(float(a), float(b), tol, scale)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    finite = np.isfinite(a) & np.isfinite(b)
    if not np.all(same | finite):
        return Comparison(INF, INF, False)
    if QUIET.get():  # the data plane's computation: quiet already
        return _differences(a, b, same, finite, tol, scale)
    with np.errstate(divide="ignore", invalid="ignore"):  # inf - inf, x / 0
        return _differences(a, b, same, finite, tol, scale)


def _differences(
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    same: npt.NDArray[np.bool_],
    finite: npt.NDArray[np.bool_],
    tol: Tolerance,
    scale: float,
) -> Comparison:
    diff = np.where(same, 0.0, np.abs(a - b))  # inf - inf where both are the same infinity
    if diff.size == 0:
        return Comparison(0.0, 0.0, True)
    rel = np.where(diff == 0, 0.0, diff / np.abs(b))
    ok = bool(np.all(diff <= tol.atol * scale + tol.rtol * np.abs(np.where(finite, b, 0.0))))
    return Comparison(float(diff.max()), float(rel.max()), ok)


def compare_scalar(a: float, b: float, tol: Tolerance, scale: float) -> Comparison:
    """``compare`` for one number (every reduced loss), in plain floats: same rules, no arrays."""
    same = a == b or (math.isnan(a) and math.isnan(b))
    finite = math.isfinite(a) and math.isfinite(b)
    if not (same or finite):
        return Comparison(INF, INF, False)
    diff = 0.0 if same else abs(a - b)
    rel = 0.0 if diff == 0 else (diff / abs(b) if b else INF)
    ok = diff <= tol.atol * scale + tol.rtol * abs(b if finite else 0.0)
    return Comparison(diff, rel, ok)


def compare_floats(
    got: Sequence[float], want: Sequence[float], tol: Tolerance, scale: float
) -> Comparison:
    """``compare`` of two equally long, non-empty vectors given as Python floats."""
    diffs: list[float] = []
    rels: list[float] = []
    ok = True
    bound = tol.atol * scale
    for a, b in zip(got, want, strict=True):
        same = a == b or (a != a and b != b)
        finite = math.isfinite(a) and math.isfinite(b)
        if not (same or finite):
            return Comparison(INF, INF, False)
        diff = 0.0 if same else abs(a - b)
        diffs.append(diff)
        rels.append(0.0 if diff == 0 else (diff / abs(b) if b else INF))
        ok = ok and diff <= bound + tol.rtol * abs(b if finite else 0.0)
    return Comparison(max(diffs), max(rels), ok)


def comparison_dict(c: Comparison) -> dict[str, Any]:
    return {"max_abs_diff": c.max_abs_diff, "max_rel_diff": c.max_rel_diff, "agrees": c.agrees}
