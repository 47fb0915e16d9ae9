"""``hinge_embedding_loss``: distances of similar pairs pulled down, dissimilar ones pushed out.

The input x is usually a distance between two embeddings (≥ 0) and the target y says whether
the pair is similar (1) or dissimilar (-1). Torch computes, element-wise over the broadcast
shape of input and target (they broadcast either way, silently),

``loss = [y ≠ 1]·max(0, margin - x) + [y ≠ -1]·x``

which is x for y = 1 and max(0, margin - x) for y = -1; a target that is neither gets *both*
terms, as torch has it. ``margin`` is any real (default 1). ``mean`` divides by the number of
elements of the broadcast shape; a mean over nothing is NaN. The loss is negative where a
target of 1 meets a negative input.

∂/∂x = g·([y ≠ -1] - [y ≠ 1]·[margin - x ≥ 0]) (g = 1/count for ``mean``), summed back over
the axes broadcasting added. At x = margin (the kink) the slope is the installed torch's:
-1 up to torch 2.13 (``clamp_min``'s backward passes the gradient there), 0 from 2.14; it is
asked of torch once (``slope_at_the_hinge``), not read from its version. The target is not
differentiable.
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
from service.losses.broadcasting import (
    BroadcastsWithInput,
    broadcast_mismatch_warning,
    broadcast_shape,
    sum_to_shape,
)
from service.losses.common import (
    floating,
    grad_scale,
    ieee_quiet,
    not_in,
    scale_of,
    target_values_warning,
)
from service.losses.reduction import REDUCTIONS
from service.losses.registry import register


class HingeEmbeddingLossParams(LossParams):
    input: Tensor = Field(description="Distances (usually ≥ 0), any shape.")
    target: BroadcastsWithInput = Field(
        description="1 (similar pair) or -1 (dissimilar), a shape that broadcasts with the input."
    )
    margin: float = Field(default=1.0, description="Distance dissimilar pairs are pushed beyond.")
    reduction: Reduction = "mean"


@functools.cache
def slope_at_the_hinge() -> float:
    """The slope torch's autograd gives a dissimilar pair's loss at x = margin: -1 or 0,
    depending on the torch release (asked of torch itself, once)."""
    x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    y = torch.full((1,), -1.0, dtype=torch.float64)
    loss = torch.nn.functional.hinge_embedding_loss(x, y, margin=0.0, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return float(grad[0])


@register
class HingeEmbeddingLoss(Loss[HingeEmbeddingLossParams]):
    name = "hinge_embedding_loss"
    module = "HingeEmbeddingLoss"
    warning_codes = frozenset({"negative_distance", "shape_mismatch_broadcast", "target_values"})
    inline = True  # linear in the elements, no Python loop over them
    summary = "x for similar pairs (target 1), max(0, margin - x) for dissimilar ones (-1)."
    formula = "loss = [y≠1]·max(0, margin - x) + [y≠-1]·x"
    params_model = HingeEmbeddingLossParams
    tensor_inputs = ("input", "target")
    differentiable = ("input",)

    def prepare(self, params: HingeEmbeddingLossParams, dtype: str) -> Prepared:
        x = floating(params.input, dtype)
        broadcast_shape(("input", x.shape), ("target", params.target.shape))
        return Prepared(
            arrays={"input": x, "target": floating(params.target, dtype)},
            floating=frozenset({"input", "target"}),
            scale=max(scale_of(x), abs(params.margin)),  # losses grow with the margin too
        )

    @ieee_quiet
    def reference(
        self, params: HingeEmbeddingLossParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        x0 = prep.arrays["input"]
        x, y = np.broadcast_arrays(x0, prep.arrays["target"])
        gap = params.margin - x
        dissimilar = y != 1
        similar = y != -1
        margin_term = np.where(dissimilar, np.maximum(gap, 0.0), 0.0)
        distance_term = np.where(similar, x, 0.0)
        losses = margin_term + distance_term
        ref = Reference.reduced(
            losses,
            params.reduction,
            breakdown={"margin_term": margin_term, "distance_term": distance_term},
        )
        if "grad" in include:
            g = grad_scale(params.reduction, losses.size)
            slope = similar.astype(np.float64) - (dissimilar & (gap > 0))
            slope = slope + (dissimilar & (gap == 0)) * slope_at_the_hinge()
            ref.grads["input"] = sum_to_shape(g * slope, x0.shape)
        return ref

    @ieee_quiet
    def warnings(self, params: HingeEmbeddingLossParams, prep: Prepared) -> list[LossWarning]:
        out: list[LossWarning] = []
        t = np.asarray(params.target, dtype=np.float64)
        if not_in(t, (-1.0, 1.0)).any():
            zero_one = " With 0/1 labels, map 0 to -1." if not not_in(t, (0, 1)).any() else ""
            odd = target_values_warning(
                t,
                (-1.0, 1.0),
                self.name,
                f"Torch gives such elements both terms, x + max(0, margin - x).{zero_one}",
            )
            if odd is not None:
                out.append(odd)
        x_shape, y_shape = params.input.shape, params.target.shape
        if x_shape != y_shape:
            out.append(broadcast_mismatch_warning(x_shape, y_shape))
        if np.any((t != -1) & (params.input < 0)):  # broadcast together, as the loss is
            out.append(
                LossWarning(
                    "negative_distance",
                    "some inputs with target 1 are negative: the input is meant to be a distance "
                    "(≥ 0), and there the loss is negative and keeps falling as the input does.",
                )
            )
        return out

    def example(self) -> dict[str, Any]:
        return {"input": [0.3, 1.7, 0.2, 0.9], "target": [1, 1, -1, -1]}

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "example")

        def distances(shape: tuple[int, ...], scale: float = 1.0) -> Any:
            return np.abs(rng.standard_normal(shape) * scale).tolist()

        def labels(shape: tuple[int, ...]) -> Any:
            return rng.choice([-1, 1], size=shape).tolist()

        shapes: list[tuple[int, ...]] = [(), (6,), (3, 4), (2, 3, 2)]
        for reduction in REDUCTIONS:
            base: dict[str, Any] = {"reduction": reduction}
            for shape in shapes:
                yield Sample(
                    base | {"input": distances(shape), "target": labels(shape)},
                    f"rank {len(shape)} {reduction}",
                )
            for margin in (0.0, 0.5, 2.5, -1.0, 1e3):
                yield Sample(
                    base
                    | {"input": distances((4, 3), 2), "target": labels((4, 3))}
                    | {"margin": margin},
                    f"margin {margin:g} {reduction}",
                )
            for scale in (1e-4, 1e3):
                yield Sample(
                    base | {"input": distances((5,), scale), "target": labels((5,))},
                    f"scale {scale:g} {reduction}",
                )
            yield Sample(
                base | {"input": rng.standard_normal((3, 4)).tolist(), "target": labels((3, 4))},
                f"negative inputs {reduction}",
            )
            yield Sample(
                base | {"input": [1.0, 1.0, 0.5, 2.0], "target": [-1, 1, -1, -1]},
                f"input on the hinge (x = margin) {reduction}",
            )
            yield Sample(
                base | {"input": distances((4,)), "target": [0, 1, 2, -3]},
                f"targets neither 1 nor -1 {reduction}",
            )
            yield Sample(
                base | {"input": distances((3, 1)), "target": labels((3,))},
                f"outer broadcast (3, 1) against (3) {reduction}",
            )
            yield Sample(
                base | {"input": distances((3, 4)), "target": -1},
                f"scalar target {reduction}",
            )
            yield Sample(
                base | {"input": 0.4, "target": labels((5,))},
                f"scalar input {reduction}",
            )
            yield Sample(base | {"input": [], "target": []}, f"empty {reduction}")

    def error_samples(self) -> Iterator[ErrorSample]:
        ok: dict[str, Any] = {"input": [0.5, 1.5, 0.2], "target": [1, -1, 1]}
        yield ErrorSample(ok | {"target": [1, -1]}, "target", "does not broadcast")
        yield ErrorSample(ok | {"target": [[1, -1]]}, "target", "does not broadcast (rank 2)")
        yield ErrorSample({"target": [1]}, "input", "missing input")
        yield ErrorSample({"input": [1.0]}, "target", "missing target")
        yield ErrorSample(ok | {"margin": "1"}, "margin", "margin as a string")
        yield ErrorSample(ok | {"margin": [1.0]}, "margin", "margin as a list")
        yield ErrorSample(ok | {"reduction": "batchmean"}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"size_average": True}, "size_average", "deprecated argument")
        yield ErrorSample(ok | {"target": [1, True, -1]}, "target", "boolean")
