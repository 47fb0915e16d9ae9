"""Margin ranking loss: ``torch.nn.functional.margin_ranking_loss``.

Each element says which of two scores should rank higher: target y = 1 means x1 should exceed
x2, y = -1 the reverse. The loss is the hinge

    loss = max(0, -y·(x1 - x2) + margin)

over the broadcast of ``input1``, ``input2`` and ``target`` (torch requires the three to have the
same number of dimensions, then broadcasts them as element-wise ops do). ``margin`` is any real
number (default 0). Torch does not check that y is ±1: any value scales the difference, and
y = 0 gives max(0, margin) whatever the scores, which the service warns about.

``mean`` divides the sum by the number of elements of the broadcast result (NaN when empty).
The gradient, with a = [-y·(x1 - x2) + margin > 0], is ∂/∂x1 = -a·y, ∂/∂x2 = a·y,
∂/∂y = -a·(x1 - x2), each summed back to its operand's shape where broadcasting stretched it. At
the kink (-y·(x1 - x2) + margin = 0) a is the installed torch's choice: 1 up to torch 2.13 (its
clamp passed the gradient there), 0 from 2.14; asked of torch once (``kink_passes_gradient``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from pydantic import Field

from service.losses.base import (
    ErrorSample,
    Loss,
    LossParams,
    LossWarning,
    Prepared,
    Reduction,
    Reference,
    Sample,
    Tensor,
)
from service.losses.broadcasting import broadcast_shape, stretched, sum_to_shape
from service.losses.common import floating, grad_scale, not_in, require_equal_ranks, scale_of
from service.losses.reduction import REDUCTIONS
from service.losses.registry import register


class MarginRankingParams(LossParams):
    input1: Tensor = Field(description="First scores, any shape.")
    input2: Tensor = Field(description="Second scores, same number of dimensions as input1.")
    target: Tensor = Field(
        description="1 where input1 should rank higher, -1 where input2 should; same number "
        "of dimensions as the inputs, broadcast with them."
    )
    margin: float = Field(default=0.0, allow_inf_nan=False)
    reduction: Reduction = "mean"


@functools.cache
def kink_passes_gradient() -> bool:
    """Whether torch's autograd passes the gradient where -y·(x1 - x2) + margin = 0 (it did up
    to torch 2.13, not from 2.14): asked of torch itself, once."""
    x1 = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    zero = torch.zeros(1, dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    loss = torch.nn.functional.margin_ranking_loss(x1, zero, one, margin=0.0)
    (grad,) = torch.autograd.grad(loss, x1)
    return bool(grad[0] != 0)


@register
class MarginRankingLoss(Loss[MarginRankingParams]):
    name = "margin_ranking_loss"
    module = "MarginRankingLoss"
    warning_codes = frozenset({"target_values"})
    inline = True  # linear in the elements, no Python loop over them
    summary = "Hinge loss on the ranking of two scores: max(0, -y·(x1 - x2) + margin)."
    formula = "loss = max(0, -y·(x1 - x2) + margin)"
    params_model = MarginRankingParams
    tensor_inputs = ("input1", "input2", "target")
    differentiable = ("input1", "input2", "target")
    nonnegative = True

    def prepare(self, params: MarginRankingParams, dtype: str) -> Prepared:
        x1, x2, y = params.input1, params.input2, params.target
        require_equal_ranks(("input1", x1), ("input2", x2), ("target", y))
        broadcast_shape(
            ("input1", x1.shape),
            ("input2", x2.shape),
            ("target", y.shape),
            max_elements=params.limits.max_elements,
        )
        arrays = {"input1": floating(x1, dtype), "input2": floating(x2, dtype)}
        arrays["target"] = floating(y, dtype)
        scale = scale_of(arrays["input1"], arrays["input2"], np.asarray(params.margin))
        return Prepared(
            arrays=arrays,
            floating=frozenset(arrays),
            scale=scale * scale_of(arrays["target"]),
        )

    def reference(
        self, params: MarginRankingParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        x1, x2, y = (prep.arrays[k] for k in ("input1", "input2", "target"))
        diff = x1 - x2
        unclamped = -y * diff + params.margin
        losses = np.maximum(unclamped, 0.0)
        shape = losses.shape
        ref = Reference.reduced(
            losses,
            params.reduction,
            breakdown={
                "difference": stretched(diff, shape),
                "margin_term": unclamped,
                "active": unclamped >= 0,
            },
        )
        if "grad" in include:
            g = grad_scale(params.reduction, losses.size)
            active = np.where((unclamped > 0) | ((unclamped == 0) & kink_passes_gradient()), g, 0.0)
            ref.grads = {
                "input1": sum_to_shape(-active * y, x1.shape),
                "input2": sum_to_shape(active * y, x2.shape),
                "target": sum_to_shape(-active * diff, y.shape),
            }
        return ref

    def warnings(self, params: MarginRankingParams, prep: Prepared) -> list[LossWarning]:
        y = prep.arrays["target"]
        odd = not_in(y, (1.0, -1.0))
        if not odd.any():
            return []
        if not not_in(y, (0.0, 1.0)).any():
            message = (
                "target holds 0/1 labels, but margin_ranking_loss expects 1 and -1: where y = 0 "
                f"the loss is max(0, margin) = {max(0.0, params.margin)} whatever the scores. "
                "Send 2·y - 1."
            )
        else:
            message = (
                "target holds values other than 1 and -1; torch does not check, and such a value "
                "scales the difference -y·(x1 - x2) instead of choosing its sign."
            )
        return [LossWarning("target_values", message, {"count": int(odd.sum())})]

    def example(self) -> dict[str, Any]:
        return {
            "input1": [0.8, 0.2, 0.5],
            "input2": [0.3, 0.6, 0.5],
            "target": [1, -1, 1],
            "margin": 0.1,
        }

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "example")
        shapes = {
            "vector": ((6,), (6,), (6,)),
            "scalar": ((), (), ()),
            "rank 3": ((2, 3, 4), (2, 3, 4), (2, 3, 4)),
            "broadcast input2": ((4, 3), (1, 3), (4, 3)),
            "broadcast outer": ((4, 1), (1, 5), (1, 1)),
            "broadcast target row": ((3, 4), (3, 4), (1, 4)),
            "empty": ((0,), (0,), (0,)),
        }
        for scale in (1e-3, 1.0, 1e3):
            for what, (s1, s2, st) in shapes.items():
                for reduction in REDUCTIONS:
                    margin = float(rng.choice([0.0, 0.5, -0.3, 2.0])) * scale
                    yield Sample(
                        {
                            "input1": (rng.standard_normal(s1) * scale).tolist(),
                            "input2": (rng.standard_normal(s2) * scale).tolist(),
                            "target": _signs(rng, st).tolist(),
                            "margin": margin,
                            "reduction": reduction,
                        },
                        f"{what} x{scale} margin {margin:g}",
                    )
        x = rng.standard_normal(5).round(2)
        for reduction in REDUCTIONS:
            yield Sample(
                {"input1": x.tolist(), "input2": x.tolist(), "target": _signs(rng, 5).tolist()}
                | {"reduction": reduction},
                "ties at the kink (margin 0, x1 = x2)",
            )
        yield Sample(
            {
                "input1": [0.5, -1.0, 2.0, 0.1],
                "input2": [0.2, 0.3, 2.5, 0.1],
                "target": [1, 0, 0, 1],
                "margin": 0.25,
                "reduction": "none",
            },
            "0/1 labels (warned)",
        )
        yield Sample(
            {
                "input1": rng.standard_normal(4).tolist(),
                "input2": rng.standard_normal(4).tolist(),
                "target": rng.uniform(-2, 2, 4).tolist(),
                "margin": 0.5,
            },
            "real-valued target (warned)",
        )
        yield Sample(
            {"input1": [1, 2, 3], "input2": [3, 2, 1], "target": [-1, 1, 1], "margin": 1},
            "integer inputs",
        )

    def error_samples(self) -> Iterator[ErrorSample]:
        ok = {"input1": [0.1, 0.5], "input2": [0.3, 0.2], "target": [1, -1]}
        yield ErrorSample(ok | {"input2": [[0.3, 0.2]]}, "input2", "rank differs from input1")
        yield ErrorSample(ok | {"target": 1}, "target", "0-dim target for 1-D inputs")
        yield ErrorSample(ok | {"input2": [0.1, 0.2, 0.3]}, "input2", "does not broadcast")
        yield ErrorSample(ok | {"target": [1, -1, 1]}, "target", "target does not broadcast")
        yield ErrorSample(ok | {"margin": "0.1"}, "margin", "margin as a string")
        yield ErrorSample(ok | {"reduction": "batchmean"}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"size_average": False}, "size_average", "deprecated argument")
        yield ErrorSample({"input1": [0.1], "input2": [0.2]}, "target", "missing target")
        yield ErrorSample(
            {"input1": [[0.0]] * 8000, "input2": [[0.0] * 8000], "target": [[1.0]]},
            "input2",
            "broadcasts to 64 million elements",
        )
        yield ErrorSample(ok | {"target": [1, None]}, "target", "null in target")


def _signs(rng: np.random.Generator, shape: int | tuple[int, ...]) -> Any:
    """Random targets of ±1."""
    return rng.choice([-1.0, 1.0], size=shape)
