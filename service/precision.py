"""What each floating dtype costs a loss: ``include: ["precision"]``.

For float64, float32, float16 and bfloat16 in turn, torch computes the loss on the configured
device with the inputs rounded to that dtype, and its value is compared with the float64
reference on the inputs exactly as sent. The error splits in two, each a relative error:

- ``input_rounding``: the reference on the rounded inputs against the reference on the inputs
  as sent; what the dtype costs before any arithmetic happens;
- ``arithmetic``: torch in that dtype against the reference on the same rounded inputs; what
  torch's arithmetic in the dtype adds.

``relative_error`` is torch against the reference on the inputs as sent. For a tensor value
(reduction 'none') each is the largest element's. A dtype torch has no kernel for on the device
(or whose rounding makes the inputs invalid) gets ``error`` instead, in words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from service.errors import InvalidInput
from service.losses.base import Loss, LossParams, Prepared

PRECISION = "precision"
DTYPES: tuple[str, ...] = ("float64", "float32", "float16", "bfloat16")

#: Runs torch for ``(loss, params, prepared, dtype)`` and returns its value; the data plane's.
TorchRunner = Callable[[Loss[Any], LossParams, Prepared, str], npt.NDArray[Any]]


def relative_error(got: npt.NDArray[Any], want: npt.NDArray[Any]) -> float:
    """max |got - want| / |want| over the elements; 0 where they are equal (NaN with NaN, the
    same infinity), infinite where no relative error can be stated (want 0 and got not, one
    side NaN or infinite), 0 for no elements."""
    a = np.asarray(got, dtype=np.float64)
    b = np.asarray(want, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if not a.size:
        return 0.0
    with np.errstate(all="ignore"):
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        rel = np.abs(a - b) / np.abs(b)
    rel = np.where(same, 0.0, np.where(np.isnan(rel), np.inf, rel))
    return float(rel.max())


def precision_table(
    loss: Loss[Any], params: LossParams, run_torch: TorchRunner
) -> dict[str, dict[str, Any]]:
    """``{dtype: {"value", "relative_error", "input_rounding", "arithmetic"} | {"error"}}``."""
    exact_prep = loss.prepare(params, "float64")
    with np.errstate(all="ignore"):
        exact = loss.reference(params, exact_prep, frozenset()).value
    table: dict[str, dict[str, Any]] = {}
    for dtype in DTYPES:
        try:
            prep = exact_prep if dtype == "float64" else loss.prepare(params, dtype)
            value = run_torch(loss, params, prep, dtype)
        except InvalidInput as exc:  # no kernel, or torch refusing the rounded inputs
            table[dtype] = {"error": exc.errors[0].message if exc.errors else exc.detail}
            continue
        with np.errstate(all="ignore"):
            rounded = loss.reference(params, prep, frozenset()).value
        table[dtype] = {
            "value": value,
            "relative_error": relative_error(value, exact),
            "input_rounding": relative_error(rounded, exact),
            "arithmetic": relative_error(value, rounded),
        }
    return table
