"""The one reduction every reference ends in.

Semantics, as torch defines them:
- ``none``: the element-wise losses, unchanged.
- ``sum``: their sum; the sum over no elements is 0.
- ``mean``: the sum divided by a *denominator*. By default it is the number of elements, but a
  loss may pass its own (``cross_entropy`` and ``nll_loss`` with class indices divide by the sum
  of the weights of the targets that were not ignored). A mean over nothing (denominator 0) is
  NaN, as in torch: an empty batch or an all-ignored batch has no mean.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

Reduction = Literal["none", "mean", "sum"]
REDUCTIONS: tuple[Reduction, ...] = get_args(Reduction)
"""Every value of ``reduction`` that torch's losses share (the samples go through them all)."""
F64 = npt.NDArray[np.float64]


def reduce(losses: F64, reduction: str, denominator: float | None = None) -> F64:
    """Reduce element-wise ``losses`` (float64) as torch's ``reduction`` argument says."""
    if reduction == "none":
        return losses
    # the ufunc's own reduce: what ``np.sum`` calls, without its Python wrapper's cost
    total = np.add.reduce(losses, axis=None, dtype=np.float64)
    if reduction == "sum":
        return np.asarray(total)
    if reduction == "mean":
        count = float(losses.size) if denominator is None else float(denominator)
        if count == 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.asarray(np.float64(total) / np.float64(count))
        return np.asarray(np.float64(total) / np.float64(count))
    raise ValueError(f"unknown reduction {reduction!r}")


def mean_denominator(losses: F64, denominator: float | None = None) -> float:
    """What ``mean`` divides by, reported in responses so that users can check the division."""
    return float(losses.size) if denominator is None else float(denominator)
