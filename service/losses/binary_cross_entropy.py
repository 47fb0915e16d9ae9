"""Binary cross-entropy of probabilities: ``torch.nn.functional.binary_cross_entropy``.

The input holds probabilities x ∈ [0, 1] (a sigmoid's output), the target t ∈ [0, 1] has the
input's shape (torch refuses any other shape, and any value outside [0, 1], for both). Each
element's loss is

    ℓ = -w · (t · max(log x, -100) + (1 - t) · max(log(1 - x), -100))

Torch clamps each log at -100 so that x = 0 or 1 gives a finite loss (at most 100·w) instead of
infinity; the warnings say when the clamp changed the result. ``weight`` w broadcasts *into*
the input's shape (it cannot enlarge it). ``mean`` divides by the number of elements, not by the
weights; a mean over nothing is NaN. Gradients follow torch's backward, which ignores the clamp:
∂ℓ/∂x = w·(x - t) / max(x·(1 - x), ε) with ε = 1e-12 in float32 (so ±1e12 at x ∈ {0, 1}), and
∂ℓ/∂t = w·(log(1 - x) - log x), unclamped (±∞ at x ∈ {0, 1}).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from pydantic import Field

from service.errors import InvalidInput
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
from service.losses.broadcasting import WeightIntoInput, require_broadcasts_into
from service.losses.common import floating, grad_scale, quietly, require_shape, scale_of
from service.losses.reduction import REDUCTIONS
from service.losses.registry import register

#: Torch's floor for log x and log(1 - x): exp(-100) ≈ 3.7e-44 is below float32's normal range.
LOG_FLOOR = -100.0
#: The denominator floor of torch's backward, a float32 constant (1e-12 rounded: 9.9999999600e-13).
GRAD_EPS = float(np.float32(1e-12))
#: Inputs this close to 0 or 1 are saturated: float32 cannot get closer to 1 than 6e-8.
SATURATION = 1e-6


class BinaryCrossEntropyParams(LossParams):
    input: Tensor = Field(description="Probabilities in [0, 1], any shape.")
    target: Tensor = Field(description="Targets in [0, 1], the input's shape.")
    weight: WeightIntoInput = None
    reduction: Reduction = "mean"


@register
class BinaryCrossEntropy(Loss[BinaryCrossEntropyParams]):
    name = "binary_cross_entropy"
    module = "BCELoss"
    warning_codes = frozenset({"input_saturated", "log_clamped"})
    inline = True  # linear in the elements, no Python loop over them
    summary = "Binary cross-entropy between probabilities and targets in [0, 1]."
    formula = "loss = -w·(t·max(log x, -100) + (1-t)·max(log(1-x), -100))"
    params_model = BinaryCrossEntropyParams
    tensor_inputs = ("input", "target", "weight")
    differentiable = ("input", "target")
    nonnegative = True

    def prepare(self, params: BinaryCrossEntropyParams, dtype: str) -> Prepared:
        x = floating(params.input, dtype)
        require_shape(params.target, "target", x.shape, "binary_cross_entropy needs equal shapes")
        t = floating(params.target, dtype)
        if x.size and (x.min() < 0 or x.max() > 1):
            bad = x[(x < 0) | (x > 1)].flat[0]
            raise InvalidInput.at(
                "input",
                f"probabilities must lie in [0, 1], got {float(bad)!r} (torch refuses it). "
                "For logits, use binary_cross_entropy_with_logits.",
            )
        if t.size and (t.min() < 0 or t.max() > 1):
            bad = t[(t < 0) | (t > 1)].flat[0]
            raise InvalidInput.at("target", f"targets must lie in [0, 1], got {float(bad)!r}")
        arrays: dict[str, Any] = {"input": x, "target": t}
        if params.weight is not None:
            require_broadcasts_into("weight", params.weight.shape, x.shape, "torch expands it")
            arrays["weight"] = floating(params.weight, dtype)
        return Prepared(arrays=arrays, floating=frozenset(arrays), scale=scale_of(x, t))

    def reference(
        self, params: BinaryCrossEntropyParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        x, t = prep.arrays["input"], prep.arrays["target"]
        w = np.broadcast_to(prep.arrays.get("weight", np.float64(1.0)), x.shape)
        with quietly(divide="ignore"):
            log_x, log_1mx = np.log(x), np.log1p(-x)
        lx, l1x = np.maximum(log_x, LOG_FLOOR), np.maximum(log_1mx, LOG_FLOOR)
        losses = -w * (t * lx + (1 - t) * l1x)
        clamped = ((log_x < LOG_FLOOR) & (t != 0)) | ((log_1mx < LOG_FLOOR) & (t != 1))
        breakdown: dict[str, Any] = {"log_input": lx, "log_one_minus_input": l1x}
        breakdown["clamped"] = clamped
        if "weight" in prep.arrays:
            breakdown["weight"] = np.array(w)
        ref = Reference.reduced(losses, params.reduction, breakdown=breakdown)
        if "grad" in include:
            g = grad_scale(params.reduction, losses.size)
            ref.grads["input"] = g * w * (x - t) / np.maximum(x * (1 - x), GRAD_EPS)
            with quietly(invalid="ignore"):
                ref.grads["target"] = g * w * (log_1mx - log_x)
        return ref

    def warnings(self, params: BinaryCrossEntropyParams, prep: Prepared) -> list[LossWarning]:
        out: list[LossWarning] = []
        x, t = prep.arrays["input"], prep.arrays["target"]
        with quietly(divide="ignore"):
            log_x, log_1mx = np.log(x), np.log1p(-x)
        clamped = ((log_x < LOG_FLOOR) & (t != 0)) | ((log_1mx < LOG_FLOOR) & (t != 1))
        if clamped.any():
            n = int(np.count_nonzero(clamped))
            out.append(
                LossWarning(
                    "log_clamped",
                    f"{n} elements of 'input' are 0 or 1 (within e^-100) where the target "
                    "disagrees: log(0) is -infinity, and torch clamps each log at -100, so each "
                    "such element contributes 100·weight and its gradient is about ±1e12. The "
                    "loss is finite but its size is set by the clamp, not by the data. Computing "
                    "from logits with binary_cross_entropy_with_logits avoids this.",
                    {"clamped_elements": n},
                )
            )
        near = (((x < SATURATION) & (t != 0)) | ((x > 1 - SATURATION) & (t != 1))) & ~clamped
        if near.any():
            n = int(np.count_nonzero(near))
            out.append(
                LossWarning(
                    "input_saturated",
                    f"{n} elements of 'input' are within {SATURATION:g} of 0 or 1 where the target "
                    "disagrees: their losses and gradients are dominated by rounding (float32 "
                    "cannot represent probabilities closer to 1 than 6e-8). Pass the logits to "
                    "binary_cross_entropy_with_logits instead.",
                    {"saturated_elements": n},
                )
            )
        return out

    def example(self) -> dict[str, Any]:
        return {"input": [[0.9, 0.2, 0.6], [0.1, 0.7, 0.4]], "target": [[1, 0, 1], [0, 1, 1]]}

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "the example")
        shapes: dict[int, tuple[int, ...]] = {
            0: (),
            1: (5,),
            2: (4, 3),
            3: (2, 3, 2),
            4: (2, 1, 2, 3),
        }
        for rank, shape in shapes.items():
            x = rng.uniform(0.0, 1.0, shape)
            hard = rng.integers(0, 2, shape)
            soft = rng.uniform(0.0, 1.0, shape)
            weights: list[Any] = [None, rng.uniform(0.0, 2.0, shape).tolist(), 0.5]
            if rank:
                weights += [rng.uniform(0, 2, shape[-1:]).tolist(), [1.5]]
            if rank > 1:
                weights.append(rng.uniform(0, 2, (shape[0],) + (1,) * (rank - 1)).tolist())
            for reduction in REDUCTIONS:
                body = {"input": x.tolist(), "target": hard.tolist(), "reduction": reduction}
                yield Sample(body, f"hard targets rank {rank}")
            for i, w in enumerate(weights):
                body = {
                    "input": x.tolist(),
                    "target": soft.tolist(),
                    "reduction": REDUCTIONS[i % 3],
                }
                yield Sample(
                    body if w is None else body | {"weight": w},
                    f"soft targets rank {rank} weight form {i}",
                )
        edges = [0.0, 1.0, 0.0, 1.0, 1e-50, 1 - 1e-12, 1e-9, 0.5, 1e-45, 1 - 1e-7]
        t_edge = [1.0, 0.0, 0.0, 1.0, 0.5, 0.3, 1.0, 0.5, 1.0, 0.0]
        for reduction in REDUCTIONS:
            yield Sample(
                {"input": edges, "target": t_edge, "reduction": reduction},
                "0, 1 and values within e^-100 of them (the clamp)",
            )
            yield Sample({"input": [], "target": [], "reduction": reduction}, "empty (mean is NaN)")
            yield Sample(
                {
                    "input": [0.3, 0.6],
                    "target": [0.0, 1.0],
                    "weight": [0.0, 0.0],
                    "reduction": reduction,
                },
                "zero weights",
            )

    def error_samples(self) -> Iterator[ErrorSample]:
        ok = {"input": [0.2, 0.9], "target": [0.0, 1.0]}
        yield ErrorSample(ok | {"input": [1.5, 0.9]}, "input", "probability above 1 (logits?)")
        yield ErrorSample(ok | {"input": [-0.5, 0.9]}, "input", "negative probability")
        yield ErrorSample(ok | {"target": [0.0, 2.0]}, "target", "target above 1")
        yield ErrorSample(ok | {"target": [-1.0, 1.0]}, "target", "negative target")
        yield ErrorSample(ok | {"target": [1.0]}, "target", "target of another shape")
        yield ErrorSample(ok | {"target": [[0.0, 1.0]]}, "target", "target of another rank")
        yield ErrorSample(ok | {"weight": [1.0, 2.0, 3.0]}, "weight", "weight does not broadcast")
        yield ErrorSample(ok | {"weight": [[1.0], [2.0]]}, "weight", "weight would enlarge")
        yield ErrorSample(ok | {"reduction": "batchmean"}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"pos_weight": [1.0]}, "pos_weight", "only the logits form has it")
        yield ErrorSample(ok | {"size_average": False}, "size_average", "deprecated argument")
        yield ErrorSample({"input": [0.5]}, "target", "missing target")
