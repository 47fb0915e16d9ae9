"""Floating dtypes the service computes in, and how the reference sees the same numbers.

The reference runs in float64 on the values *as torch receives them*: a logit sent as 0.1 and
computed in float16 is the float16 nearest to 0.1. Rounding here is done in NumPy (bfloat16 by
bit manipulation, since NumPy has no bfloat16), so the reference never asks torch for anything.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt
import torch

DTypeName = Literal["float32", "float64", "float16", "bfloat16"]
DTYPE_NAMES: Final[tuple[str, ...]] = get_args(DTypeName)

TORCH_DTYPES: Final[dict[str, torch.dtype]] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}

LOW_PRECISION: Final[frozenset[str]] = frozenset({"float16", "bfloat16"})

F64 = npt.NDArray[np.float64]


#: Source dtypes every value of which the compute dtype holds exactly: rounding them is a no-op,
#: so a float32 tensor computed in float32 is widened once, not narrowed and widened again.
_EXACT: Final[dict[str, tuple[np.dtype[Any], ...]]] = {
    "float64": (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)),
    "float32": (np.dtype(np.float16), np.dtype(np.float32)),
    "float16": (np.dtype(np.float16),),
    "bfloat16": (),
}


QUIET: ContextVar[bool] = ContextVar("ieee_quiet", default=False)
"""True while a computation runs with every NumPy floating-point warning off (the data plane
sets it, under ``np.errstate(all="ignore")``, for each computation): the helpers that would
otherwise silence one warning themselves (``round_to_dtype``, ``ieee_quiet``, the comparison)
skip their own ``errstate``, which costs more than the arithmetic on a small request's
arrays. The values are the same either way: ``errstate`` decides only what is reported."""


def round_to_dtype(values: npt.NDArray[Any], dtype: str) -> F64:
    """``values`` rounded to the nearest number representable in ``dtype``, held in float64."""
    src = np.asarray(values)
    if src.dtype in _EXACT.get(dtype, ()):
        return src.astype(np.float64, copy=False)
    x = src.astype(np.float64, copy=False)
    if dtype == "float64":
        return x
    if dtype == "float32":
        if QUIET.get():
            return x.astype(np.float32).astype(np.float64)
        with np.errstate(over="ignore"):  # beyond float32's range becomes ±inf, as in torch
            return x.astype(np.float32).astype(np.float64)
    if dtype == "float16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":
        return _round_bfloat16(x)
    raise ValueError(f"unknown dtype {dtype!r}")


def _round_bfloat16(x: F64) -> F64:
    """Round-to-nearest-even onto bfloat16 (the top 16 bits of a float32), as torch does."""
    with np.errstate(over="ignore"):
        f32 = np.ascontiguousarray(x, dtype=np.float32)
    bits = f32.view(np.uint32).astype(np.uint64)
    nan = np.isnan(f32)
    rounding = np.uint64(0x7FFF) + ((bits >> np.uint64(16)) & np.uint64(1))
    rounded = ((bits + rounding) >> np.uint64(16)) << np.uint64(16)
    out = rounded.astype(np.uint32).view(np.float32).astype(np.float64)
    out[nan] = np.nan
    return out.reshape(x.shape)
