"""Cosine embedding loss: ``torch.nn.functional.cosine_embedding_loss``.

Pairs of embeddings x1, x2 (rows of shape (N, D) with a target of shape (N), or one pair of
shape (D) with a 0-dim target) should point the same way where y = 1 and apart where y = -1.
With ε = 1e-12 as a float32 constant (9.99999996e-13; torch's ``EPSILON``, added to each
squared norm so that a zero vector gives cos = 0 instead of 0/0):

    cos = Σ_d x1·x2 / sqrt((Σ_d x1² + ε)·(Σ_d x2² + ε))
    loss = 1 - cos              where y = 1
           max(0, cos - margin) where y = -1
           0                    for any other y (torch does not check; the service warns)

x1 and x2 broadcast together, and the target broadcasts with the resulting cos. Torch even
broadcasts the feature dimension: x1 of shape (N, 1) against x2 of shape (N, D) stretches x1 in
the dot product but not in its own norm, so "cos" can leave [-1, 1] and the loss for y = 1 can be
negative (which is why the loss is not declared non-negative; the service warns).

``margin`` is any real number; [-1, 1] is its meaningful range (0 to 0.5 is what torch's
documentation suggests). ``mean`` divides the sum by the number of elements of the result (NaN
when empty).

Gradient: with k = ∂loss/∂cos (-1 for y = 1; 1 for y = -1 where cos - margin >= 0, torch's clamp
passing the gradient at the kink; 0 otherwise),
∂cos/∂x1 = x2 / sqrt((|x1|² + ε)(|x2|² + ε)) - cos·x1 / (|x1|² + ε), symmetrically for x2,
each summed back to its operand's shape where broadcasting stretched it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from pydantic import Field

from service.errors import InvalidInput
from service.losses.base import (
    F64,
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
from service.losses.broadcasting import broadcast_shape, broadcast_shapes, stretched, sum_to_shape
from service.losses.common import floating, grad_scale, not_in, require_rank, scale_of, shape_str
from service.losses.reduction import REDUCTIONS
from service.losses.registry import register

#: What torch adds to each squared norm: ``EPSILON`` of ATen's Loss.cpp, a float32 1e-12 (it
#: shows in the gradient of a zero vector, which is of order 1/sqrt(ε)).
NORM_EPS = float(np.float32(1e-12))


class CosineEmbeddingParams(LossParams):
    input1: Tensor = Field(description="First embeddings, shape (N, D), or (D) for one pair.")
    input2: Tensor = Field(description="Second embeddings, broadcast with input1.")
    target: Tensor = Field(
        description="1 for pairs that should be similar, -1 for pairs that should not; shape "
        "(N) with 2-D inputs, () with 1-D inputs."
    )
    margin: float = Field(
        default=0.0,
        allow_inf_nan=False,
        description="Cosine above which dissimilar pairs are penalised; meaningful in [-1, 1].",
    )
    reduction: Reduction = "mean"


@register
class CosineEmbeddingLoss(Loss[CosineEmbeddingParams]):
    name = "cosine_embedding_loss"
    module = "CosineEmbeddingLoss"
    warning_codes = frozenset(
        {
            "feature_dim_broadcast",
            "margin_outside_cosine_range",
            "target_values",
            "zero_vector",
        }
    )
    inline = True  # linear in the elements, no Python loop over them
    summary = "Pulls pairs with y = 1 to cosine 1, pushes pairs with y = -1 below the margin."
    formula = "loss = 1 - cos(x1, x2) if y = 1; max(0, cos(x1, x2) - margin) if y = -1"
    params_model = CosineEmbeddingParams
    tensor_inputs = ("input1", "input2", "target")
    differentiable = ("input1", "input2")

    def prepare(self, params: CosineEmbeddingParams, dtype: str) -> Prepared:
        x1, x2, y = params.input1, params.input2, params.target
        require_rank(
            y,
            "target",
            "a 1-D target for 2-D inputs or a 0-dim target for 1-D inputs (multi-target is not "
            "supported)",
            y.ndim in (0, 1),
        )
        rank = y.ndim + 1
        for field, arr in (("input1", x1), ("input2", x2)):
            if arr.ndim != rank:
                raise InvalidInput.at(
                    field,
                    f"rank {arr.ndim} (shape {shape_str(arr.shape)}); a {y.ndim}-dim target "
                    f"expects {rank}-D inputs",
                )
        limit = params.limits.max_elements
        pair = broadcast_shape(("input1", x1.shape), ("input2", x2.shape), max_elements=limit)
        broadcast_shape(("cos(input1, input2)", pair[:-1]), ("target", y.shape), max_elements=limit)
        arrays = {k: floating(getattr(params, k), dtype) for k in self.tensor_inputs}
        return Prepared(
            arrays=arrays,
            floating=frozenset(arrays),
            scale=scale_of(np.asarray(params.margin)),
        )

    def reference(
        self, params: CosineEmbeddingParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        x1, x2, y = (prep.arrays[k] for k in ("input1", "input2", "target"))
        dot = (x1 * x2).sum(axis=-1)
        sq1 = (x1 * x1).sum(axis=-1) + NORM_EPS
        sq2 = (x2 * x2).sum(axis=-1) + NORM_EPS
        denom = np.sqrt(sq1 * sq2)
        cos = dot / denom
        positive = y == 1
        negative = y == -1
        losses: F64 = np.where(positive, 1 - cos, 0.0) + np.where(
            negative, np.maximum(cos - params.margin, 0.0), 0.0
        )
        counted = positive | (negative & (cos - params.margin >= 0))
        ref = Reference.reduced(
            losses,
            params.reduction,
            breakdown={
                "cosine": stretched(cos, losses.shape),
                "contributes": stretched(counted, losses.shape),
            },
        )
        if "grad" in include:
            g = grad_scale(params.reduction, losses.size)
            k = g * (np.where(negative & (cos - params.margin >= 0), 1.0, 0.0) - positive)
            k = sum_to_shape(np.broadcast_to(k, losses.shape), cos.shape)
            d_dot = k / denom
            d_sq1 = sum_to_shape(-k * cos / (2 * sq1), sq1.shape)
            d_sq2 = sum_to_shape(-k * cos / (2 * sq2), sq2.shape)
            pair = broadcast_shapes(x1.shape, x2.shape)
            ref.grads = {
                "input1": sum_to_shape(np.broadcast_to(d_dot[..., None] * x2, pair), x1.shape)
                + 2 * x1 * d_sq1[..., None],
                "input2": sum_to_shape(np.broadcast_to(d_dot[..., None] * x1, pair), x2.shape)
                + 2 * x2 * d_sq2[..., None],
            }
        return ref

    def warnings(self, params: CosineEmbeddingParams, prep: Prepared) -> list[LossWarning]:
        out: list[LossWarning] = []
        y = prep.arrays["target"]
        odd = not_in(y, (1.0, -1.0))
        if odd.any():
            zero_one = not not_in(y, (0.0, 1.0)).any()
            out.append(
                LossWarning(
                    "target_values",
                    "target holds values other than 1 and -1; torch gives such pairs a loss of 0 "
                    "without a word"
                    + (
                        ". It looks like 0/1 labels: dissimilar pairs need -1 (send 2·y - 1)."
                        if zero_one
                        else "."
                    ),
                    {"count": int(odd.sum())},
                )
            )
        if not -1.0 <= params.margin <= 1.0:
            out.append(
                LossWarning(
                    "margin_outside_cosine_range",
                    f"margin {params.margin} lies outside [-1, 1], the range of a cosine: "
                    + (
                        "pairs with y = -1 can never exceed it and never contribute."
                        if params.margin > 1
                        else "every pair with y = -1 contributes, however dissimilar."
                    ),
                )
            )
        x1, x2 = params.input1, params.input2
        if x1.shape[-1] != x2.shape[-1]:
            out.append(
                LossWarning(
                    "feature_dim_broadcast",
                    f"the last dimensions differ ({x1.shape[-1]} and {x2.shape[-1]}), so torch "
                    "broadcasts one vector's single feature against the other's: the dot product "
                    "sees the stretched vector but its norm does not, the result is not a cosine "
                    "and can lie outside [-1, 1] (the loss for y = 1 can be negative).",
                )
            )
        zero = [
            k
            for k in ("input1", "input2")
            if prep.arrays[k].size and bool((np.abs(prep.arrays[k]).sum(axis=-1) == 0).any())
        ]
        if zero:
            out.append(
                LossWarning(
                    "zero_vector",
                    f"{' and '.join(repr(k) for k in zero)} holds all-zero vectors, whose cosine "
                    f"is undefined; torch adds {NORM_EPS} to each squared norm, so it reads as 0.",
                )
            )
        return out

    def example(self) -> dict[str, Any]:
        return {
            "input1": [[1.0, 0.5, -0.2], [0.3, 0.8, 0.1]],
            "input2": [[0.9, 0.4, 0.0], [-0.5, 0.2, 0.7]],
            "target": [1, -1],
            "margin": 0.2,
        }

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "example")
        shapes = {
            "batched": ((5, 4), (5, 4), (5,)),
            "unbatched": ((4,), (4,), ()),
            "broadcast input2 row": ((5, 3), (1, 3), (5,)),
            "broadcast target": ((5, 3), (5, 3), (1,)),
            "broadcast pair": ((1, 3), (1, 3), (4,)),
            "broadcast feature dim": ((4, 1), (4, 3), (4,)),
            "empty features": ((3, 0), (3, 0), (3,)),
        }
        for scale in (1e-3, 1.0, 1e3):
            for what, (s1, s2, st) in shapes.items():
                for reduction in REDUCTIONS:
                    margin = float(rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0]))
                    x1 = rng.standard_normal(s1) * scale
                    x2 = rng.standard_normal(s2) * scale
                    if what == "batched":
                        x2[0] = x1[0] * 0.7  # a pair at cosine 1 exactly
                    yield Sample(
                        {
                            "input1": x1.tolist(),
                            "input2": x2.tolist(),
                            "target": rng.choice([-1, 1], size=st).tolist(),
                            "margin": margin,
                            "reduction": reduction,
                        },
                        f"{what} x{scale} margin {margin:g}",
                    )
        x1 = rng.standard_normal((6, 3))
        yield Sample(
            {
                "input1": x1.tolist(),
                "input2": (x1 * 2 - 0.1).tolist(),
                "target": [-1, -1, -1, 1, 1, 1],
                "margin": 0.3,
                "reduction": "none",
            },
            "nearly parallel dissimilar pairs",
        )
        yield Sample(
            {
                "input1": [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]],
                "input2": [[1.0, -1.0, 0.5], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
                "target": [1, -1, 1],
                "margin": 0.5,
                "reduction": "none",
            },
            "zero vectors (warned)",
        )
        yield Sample(
            {
                "input1": rng.standard_normal((4, 3)).tolist(),
                "input2": rng.standard_normal((4, 3)).tolist(),
                "target": [1, 0, 0, 1],
            },
            "0/1 labels (warned)",
        )
        yield Sample(
            {
                "input1": rng.standard_normal((4, 3)).tolist(),
                "input2": rng.standard_normal((4, 3)).tolist(),
                "target": [-1, -1, 1, -1],
                "margin": -1.5,
                "reduction": "sum",
            },
            "margin below -1 (warned)",
        )

    def error_samples(self) -> Iterator[ErrorSample]:
        ok = {"input1": [[0.1, 0.5]], "input2": [[0.3, 0.2]], "target": [1]}
        yield ErrorSample(ok | {"target": [[1]]}, "target", "2-D target")
        yield ErrorSample(ok | {"target": 1}, "input1", "0-dim target with 2-D inputs")
        yield ErrorSample(ok | {"input2": [0.3, 0.2]}, "input2", "1-D input2 with 1-D target")
        yield ErrorSample(
            ok | {"input2": [[0.3, 0.2, 0.1]]}, "input2", "feature sizes do not broadcast"
        )
        yield ErrorSample(
            ok | {"input1": [[0.1, 0.5]] * 3, "input2": [[0.3, 0.2]] * 3, "target": [1, -1]},
            "target",
            "target length does not broadcast",
        )
        yield ErrorSample(ok | {"margin": [0.5]}, "margin", "margin as a list")
        yield ErrorSample(ok | {"reduction": None}, "reduction", "null reduction")
        yield ErrorSample(ok | {"reduce": True}, "reduce", "deprecated argument")
        yield ErrorSample({"input2": [[0.3]], "target": [1]}, "input1", "missing input1")
