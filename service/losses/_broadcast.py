"""Broadcasting as torch's element-wise losses apply it, for the modules of this package.

Torch's element-wise losses treat their extra tensors in two different ways, and the service
must mirror which one applies, because the wrong one either refuses a valid request or computes
a loss of the wrong shape:

- *broadcast together* (``kl_div``, ``poisson_nll_loss``, ``gaussian_nll_loss``'s target): the
  result has the broadcast shape of the operands, which may be larger than the input's;
- *broadcast into* (``weight`` and ``pos_weight`` of the binary cross-entropies): the tensor
  is stretched to the input's shape, which never grows (torch multiplies in place), so a
  weight with more dimensions is refused.

Gradients of a broadcast operand are the gradients of its stretched copy summed back to its
own shape (``unbroadcast``), which is what autograd returns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from service.errors import InvalidInput
from service.losses.common import F64, shape_str


def broadcast_together(
    field: str, arr: npt.NDArray[Any], shape: tuple[int, ...], other: str
) -> tuple[int, ...]:
    """The broadcast shape of ``arr`` and ``shape``, or a refusal naming ``field``."""
    try:
        return tuple(np.broadcast_shapes(arr.shape, shape))
    except ValueError:
        raise InvalidInput.at(
            field,
            f"shape {shape_str(arr.shape)} does not broadcast with {other} {shape_str(shape)}",
        ) from None


def require_broadcasts_into(
    arr: npt.NDArray[Any], field: str, shape: tuple[int, ...], why: str
) -> None:
    """Refuse unless ``arr`` stretches to exactly ``shape`` (trailing dimensions equal or 1)."""
    try:
        out = tuple(np.broadcast_shapes(arr.shape, shape))
    except ValueError:
        out = None
    if out != shape:
        raise InvalidInput.at(
            field,
            f"shape {shape_str(arr.shape)} does not broadcast to the input's shape "
            f"{shape_str(shape)} ({why})",
        )


def unbroadcast(grad: F64, shape: tuple[int, ...]) -> F64:
    """``grad`` of a broadcast result summed back to an operand of ``shape``."""
    lead = grad.ndim - len(shape)
    out = grad.sum(axis=tuple(range(lead))) if lead > 0 else grad
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and out.shape[i] != 1)
    if stretched:
        out = out.sum(axis=stretched, keepdims=True)
    result: F64 = np.asarray(out, dtype=np.float64).reshape(shape)
    return result


def broadcast_note(field: str, arr_shape: tuple[int, ...], input_shape: tuple[int, ...]) -> str:
    """The sentence a broadcasting warning starts with."""
    out = tuple(np.broadcast_shapes(arr_shape, input_shape))
    return (
        f"'{field}' has shape {shape_str(arr_shape)} and 'input' {shape_str(input_shape)}: torch "
        f"broadcasts them silently to {shape_str(out)}"
    )
