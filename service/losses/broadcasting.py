"""Broadcasting as torch's losses apply it: the checks, the size cap, gradients and warnings.

Torch's rule, which NumPy shares: line the shapes up at their last dimension (a missing leading
dimension counts as 1); each pair of sizes must be equal, or one of them 1, which is stretched
to the other; the result takes the larger size of each pair. (3, 1) and (4) give (3, 4); (3)
and (4) do not broadcast.

Losses meet it in two ways, and the service must mirror which one applies, because the wrong one
either refuses a valid request or computes a loss of the wrong shape:

- *together* (``broadcast_shape``): the operands broadcast with each other and the losses take
  the result's shape, which can be larger than every operand (an (N, 1) input against an (N)
  target gives N·N losses): the element-wise losses (``mse_loss``, ``kl_div``, ...) and the
  pairwise ones (``margin_ranking_loss``, ``triplet_margin_loss``, ...);
- *into* (``require_broadcasts_into``): the tensor is stretched to the input's shape and may not
  enlarge it (torch multiplies in place, or refuses a larger result): ``weight`` and
  ``pos_weight`` of the binary cross-entropies, the targets of the soft-margin losses.

A small body can ask for a huge broadcast ((100000, 1) against (100000) is 10^10 elements), so
the size of the result is capped: ``BroadcastsWithInput`` caps it while the request is validated,
against the configured element limit; ``broadcast_shape`` caps it when given ``max_elements``.

The gradient of a broadcast operand is the gradient of its stretched copy summed back to its own
shape (``sum_to_shape``), which is what autograd returns. Shapes that differ but broadcast are
legal and often a mistake; ``broadcast_mismatch_warning`` and ``shapes_broadcast_warning`` say
so (under two codes, as the losses have always reported them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
from pydantic import AfterValidator, Field, ValidationInfo

from service.arrays import ArrayLimitError
from service.errors import InvalidInput, LimitExceeded
from service.losses.base import F64, LossWarning, Tensor
from service.losses.common import element_limit, shape_str

Shape = tuple[int, ...]

_RULE = "trailing dimensions must be equal or 1"


def _names(fields: Sequence[str]) -> str:
    quoted = [f"'{f}'" for f in fields]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _too_large(operand: Shape, against: str, result: Shape, limit: int) -> str | None:
    """Why an operand whose broadcast ``against`` the others gives ``result`` is refused, or
    None when the result holds at most ``limit`` elements."""
    size = math.prod(result)
    if size <= limit:
        return None
    if not against:
        return f"shape {shape_str(operand)} holds {size} elements, more than the limit of {limit}"
    return (
        f"shape {shape_str(operand)} broadcast{against} gives {shape_str(result)}, {size} "
        f"elements, more than the limit of {limit}"
    )


def broadcast_shape(*operands: tuple[str, Shape], max_elements: int | None = None) -> Shape:
    """The shape torch's broadcasting gives the named operands, or a refusal naming the first
    that fails.

    Broadcasting one operand after another gives the same result as broadcasting them all at
    once, so the operand to name is the first that does not broadcast with those before it:
    list the input first. With ``max_elements``, a result larger than that is refused too,
    naming the operand that made it so, before torch tries to allocate it."""
    shape: Shape = ()
    seen: list[str] = []
    for field, operand in operands:
        against = f" with {_names(seen)} of shape {shape_str(shape)}" if seen else ""
        try:
            shape = tuple(np.broadcast_shapes(shape, operand))
        except ValueError:
            raise InvalidInput.at(
                field, f"shape {shape_str(operand)} does not broadcast{against}: {_RULE}"
            ) from None
        if max_elements is not None:
            reason = _too_large(operand, against, shape, max_elements)
            if reason is not None:
                raise LimitExceeded.at(field, reason)
        seen.append(field)
    return shape


def require_broadcasts_into(field: str, shape: Shape, into: Shape, why: str) -> None:
    """Refuse, naming ``field``, unless a tensor of ``shape`` stretches to exactly ``into`` (the
    input's shape): it must broadcast with it and must not enlarge it. ``why`` says what torch
    does with the tensor that rules out a larger result."""
    try:
        out = tuple(np.broadcast_shapes(shape, into))
    except ValueError:
        raise InvalidInput.at(
            field,
            f"shape {shape_str(shape)} does not broadcast to the input's shape "
            f"{shape_str(into)}: {_RULE}",
        ) from None
    if out != into:
        raise InvalidInput.at(
            field,
            f"shape {shape_str(shape)} would broadcast the input's shape {shape_str(into)} to "
            f"{shape_str(out)}; it may only stretch to the input's shape ({why})",
        )


WeightIntoInput = Annotated[
    Tensor | None,
    Field(
        description="Rescaling weight, broadcastable to the input's shape (without enlarging it)."
    ),
]
"""An optional weight that torch stretches to the input's shape, checked by
``require_broadcasts_into``."""


def _fits_with_input(value: npt.NDArray[Any], info: ValidationInfo) -> npt.NDArray[Any]:
    x = info.data.get("input")
    if x is None:
        return value  # the input was refused already
    try:
        shape = tuple(np.broadcast_shapes(x.shape, value.shape))
    except ValueError:
        return value  # prepare refuses it, naming the field
    against = f" with 'input' of shape {shape_str(x.shape)}"
    reason = _too_large(value.shape, against, shape, element_limit(info))
    if reason is not None:
        raise ArrayLimitError(reason)  # a limit (limit-exceeded), not a wrong value
    return value


BroadcastsWithInput = Annotated[Tensor, AfterValidator(_fits_with_input)]
"""A tensor field, declared after ``input``, that broadcasts together with it: refused while the
request is validated, against the configured element limit, when the broadcast result would hold
more elements than one tensor may. Shapes that do not broadcast are left to ``prepare``."""


def sum_to_shape(grad: F64, shape: Shape) -> F64:
    """The gradient of an operand of ``shape`` from ``grad``, the gradient of its broadcast copy:
    summed over the leading dimensions broadcasting added and over those it stretched from 1,
    which is what autograd returns."""
    lead = grad.ndim - len(shape)
    out = grad.sum(axis=tuple(range(lead))) if lead > 0 else grad
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and out.shape[i] != 1)
    if stretched:
        out = out.sum(axis=stretched, keepdims=True)
    result: F64 = np.asarray(out, dtype=np.float64).reshape(shape)
    return result


def broadcast_mismatch_warning(input_shape: Shape, target_shape: Shape) -> LossWarning:
    """The warning (``shape_mismatch_broadcast``) for an input and a target whose shapes differ
    but broadcast.

    Torch computes over the broadcast shape without complaint (or with a UserWarning the service
    does not let escape); when the result is larger than both tensors, every input is paired
    with several targets, as with an input of shape (N, 1) against a target of (N)."""
    result_shape = tuple(np.broadcast_shapes(input_shape, target_shape))
    size = math.prod(result_shape)
    outer = size > max(math.prod(input_shape), math.prod(target_shape))
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


def shapes_broadcast_warning(target_shape: Shape, input_shape: Shape, advice: str) -> LossWarning:
    """The warning (``shape_mismatch_broadcast``, the code ``broadcast_mismatch_warning`` gives)
    for a target whose shape differs from the input's but broadcasts with it: the shapes and
    their broadcast, then the loss's own ``advice`` (which starts with its punctuation)."""
    out = tuple(np.broadcast_shapes(target_shape, input_shape))
    return LossWarning(
        "shape_mismatch_broadcast",
        f"'target' has shape {shape_str(target_shape)} and 'input' {shape_str(input_shape)}: "
        f"torch broadcasts them silently to {shape_str(out)}{advice}",
        {
            "input_shape": list(input_shape),
            "target_shape": list(target_shape),
            "broadcast_shape": list(out),
        },
    )
