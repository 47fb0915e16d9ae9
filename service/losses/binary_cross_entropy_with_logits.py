"""Binary cross-entropy of logits: ``torch.nn.functional.binary_cross_entropy_with_logits``.

The input holds logits x (any real number; the sigmoid σ is applied inside), the target t has
the input's shape (torch refuses any other). With softplus(z) = log(1 + e^z), so that
-log σ(x) = softplus(-x) and -log(1 - σ(x)) = softplus(x), each element's loss is

    ℓ = w · (p · t · softplus(-x) + (1 - t) · softplus(x))

computed without overflow for any logit. ``weight`` w and ``pos_weight`` p (the weight of the
positive class, typically one per class along the last dimension, n_negative/n_positive)
broadcast *into* the input's shape and cannot enlarge it. Torch does not check t ∈ [0, 1] or
p ≥ 0; outside them the loss can be negative and is no longer a cross-entropy (a warning says
so). ``mean`` divides by the number of elements; a mean over nothing is NaN. Gradients:
∂ℓ/∂x = w·(p·t·(σ(x) - 1) + (1 - t)·σ(x)) and ∂ℓ/∂t = w·(p·softplus(-x) - softplus(x)).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
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
from service.losses.binary_cross_entropy import LOG_FLOOR
from service.losses.broadcasting import WeightIntoInput, require_broadcasts_into
from service.losses.common import F64, floating, grad_scale, quietly, require_shape, scale_of
from service.losses.reduction import REDUCTIONS
from service.losses.registry import register


class BinaryCrossEntropyWithLogitsParams(LossParams):
    input: Tensor = Field(description="Logits, any shape.")
    target: Tensor = Field(description="Targets, usually in [0, 1]; the input's shape.")
    weight: WeightIntoInput = None
    reduction: Reduction = "mean"
    pos_weight: Tensor | None = Field(
        default=None,
        description="Weight of positive examples, broadcastable to the input's shape (usually "
        "one per class along the last dimension).",
    )


@register
class BinaryCrossEntropyWithLogits(Loss[BinaryCrossEntropyWithLogitsParams]):
    name = "binary_cross_entropy_with_logits"
    module = "BCEWithLogitsLoss"
    warning_codes = frozenset(
        {
            "input_looks_like_probabilities",
            "negative_pos_weight",
            "negative_weight",
            "target_outside_unit_interval",
        }
    )
    inline = True  # linear in the elements, no Python loop over them
    summary = "Binary cross-entropy between logits and targets, with optional positive weights."
    formula = "loss = w·(p·t·softplus(-x) + (1-t)·softplus(x)), softplus(z) = log(1 + e^z)"
    params_model = BinaryCrossEntropyWithLogitsParams
    tensor_inputs = ("input", "target", "weight", "pos_weight")
    differentiable = ("input", "target")
    extras = ("sigmoid",)
    nonnegative = True

    def prepare(self, params: BinaryCrossEntropyWithLogitsParams, dtype: str) -> Prepared:
        x = floating(params.input, dtype)
        require_shape(params.target, "target", x.shape, "torch needs the input's shape")
        arrays: dict[str, Any] = {"input": x, "target": floating(params.target, dtype)}
        for name in ("weight", "pos_weight"):
            arr = getattr(params, name)
            if arr is not None:
                require_broadcasts_into(name, arr.shape, x.shape, "torch multiplies in place")
                arrays[name] = floating(arr, dtype)
        return Prepared(arrays=arrays, floating=frozenset(arrays), scale=scale_of(x))

    def reference(
        self, params: BinaryCrossEntropyWithLogitsParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        x, t = prep.arrays["input"], prep.arrays["target"]
        w = np.broadcast_to(prep.arrays.get("weight", np.float64(1.0)), x.shape)
        p = np.broadcast_to(prep.arrays.get("pos_weight", np.float64(1.0)), x.shape)
        sp_neg, sp_pos = softplus(-x), softplus(x)  # -log σ(x), -log(1 - σ(x))
        positive = p * t * sp_neg
        negative = (1 - t) * sp_pos
        # Summed as torch does, (1 - t)·x + (1 + (p - 1)·t)·softplus(-x): adding the two terms
        # above cancels catastrophically for large targets (t·log 2 - (t - 1)·log 2 at x = 0).
        losses = w * ((1 - t) * x + (1 + (p - 1) * t) * sp_neg)
        breakdown: dict[str, Any] = {
            "log_sigmoid": -sp_neg,
            "positive_term": positive,
            "negative_term": negative,
        }
        if "weight" in prep.arrays:
            breakdown["weight"] = np.array(w)
        ref = Reference.reduced(losses, params.reduction, breakdown=breakdown)
        if "sigmoid" in include:
            ref.extras["sigmoid"] = sigmoid(x)
        if "grad" in include:
            g = grad_scale(params.reduction, losses.size)
            s = sigmoid(x)
            ref.grads["input"] = g * w * (p * t * (s - 1) + (1 - t) * s)
            ref.grads["target"] = g * w * (p * sp_neg - sp_pos)
        return ref

    def warnings(
        self, params: BinaryCrossEntropyWithLogitsParams, prep: Prepared
    ) -> list[LossWarning]:
        out: list[LossWarning] = []
        x, t = prep.arrays["input"], prep.arrays["target"]
        if x.size and x.min() >= 0 and x.max() <= 1 and x.max() > 0:
            reading = _bce_reading(x, t)
            shown = f"{reading:.4f}" if np.isfinite(reading) else str(reading)
            out.append(
                LossWarning(
                    "input_looks_like_probabilities",
                    "every value of 'input' lies in [0, 1]: it looks like probabilities, but "
                    "this loss expects logits and applies the sigmoid itself (a sigmoid applied "
                    "twice squeezes every prediction into [0.5, 0.73]). With probabilities use "
                    f"binary_cross_entropy, whose mean here would be {shown}.",
                    {"probability_reading": reading},
                )
            )
        if t.size and (t.min() < 0 or t.max() > 1):
            out.append(
                LossWarning(
                    "target_outside_unit_interval",
                    "'target' has values outside [0, 1]; torch accepts them, but the loss is no "
                    "longer a cross-entropy and can be negative.",
                )
            )
        for name in ("weight", "pos_weight"):
            arr = prep.arrays.get(name)
            if arr is not None and arr.size and arr.min() < 0:
                out.append(
                    LossWarning(
                        f"negative_{name}",
                        f"'{name}' has negative values: the loss can be negative and minimising "
                        "it pushes those predictions the wrong way.",
                    )
                )
        return out

    def example(self) -> dict[str, Any]:
        return {
            "input": [[2.2, -1.4, 0.4], [-2.2, 0.8, -0.4]],
            "target": [[1, 0, 1], [0, 1, 1]],
            "pos_weight": [1.0, 3.0, 0.5],
        }

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "the example")
        shapes: dict[int, tuple[int, ...]] = {
            0: (),
            1: (5,),
            2: (4, 3),
            3: (2, 3, 2),
            4: (2, 1, 2, 3),
        }
        for scale in (0.1, 3.0, 1e3):
            for rank, shape in shapes.items():
                x = rng.standard_normal(shape) * scale
                hard = rng.integers(0, 2, shape)
                soft = rng.uniform(0.0, 1.0, shape)
                options: list[dict[str, Any]] = [{}, {"weight": rng.uniform(0, 2, shape).tolist()}]
                options.append({"pos_weight": 2.5, "weight": 0.5})
                if rank:
                    last = rng.uniform(0, 4, shape[-1:]).tolist()
                    options.append({"pos_weight": last})
                    options.append({"pos_weight": last, "weight": [1.5]})
                if rank > 1:
                    column = rng.uniform(0, 2, (shape[0],) + (1,) * (rank - 1)).tolist()
                    options.append(
                        {"weight": column, "pos_weight": rng.uniform(0, 4, shape).tolist()}
                    )
                for reduction in REDUCTIONS:
                    body = {"input": x.tolist(), "target": hard.tolist(), "reduction": reduction}
                    yield Sample(body, f"hard, rank {rank} x{scale}")
                for i, extra in enumerate(options):
                    body = {"input": x.tolist(), "target": soft.tolist()} | extra
                    yield Sample(
                        body | {"reduction": REDUCTIONS[i % 3]},
                        f"soft, rank {rank} x{scale}, options {i}",
                    )
        for reduction in REDUCTIONS:
            yield Sample({"input": [], "target": [], "reduction": reduction}, "empty")
            yield Sample(
                {
                    "input": [-80.0, 80.0, 0.0, -1e4, 1e4],
                    "target": [1, 0, 0.5, 0, 1],
                    "pos_weight": [0.0],
                    "reduction": reduction,
                },
                "saturated logits, pos_weight 0",
            )

    def error_samples(self) -> Iterator[ErrorSample]:
        ok = {"input": [[0.2, -0.9]], "target": [[0.0, 1.0]]}
        yield ErrorSample(ok | {"target": [0.0, 1.0]}, "target", "target of another rank")
        yield ErrorSample(ok | {"target": [[0.0, 1.0, 1.0]]}, "target", "target of another shape")
        yield ErrorSample(ok | {"weight": [1.0, 2.0, 3.0]}, "weight", "weight does not broadcast")
        yield ErrorSample(ok | {"weight": [[[1.0, 2.0]]]}, "weight", "weight would enlarge")
        yield ErrorSample(ok | {"pos_weight": [1.0, 2.0, 3.0]}, "pos_weight", "wrong length")
        yield ErrorSample(ok | {"pos_weight": [[1.0], [2.0]]}, "pos_weight", "would enlarge")
        yield ErrorSample(ok | {"pos_weight": "2"}, "pos_weight", "a string")
        yield ErrorSample(ok | {"reduction": "mean "}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"reduce": True}, "reduce", "deprecated argument")
        yield ErrorSample({"target": [0.0]}, "input", "missing input")


def softplus(z: F64) -> F64:
    """log(1 + e^z) = max(z, 0) + log1p(e^-|z|), finite for every finite z."""
    out: F64 = np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
    return out


def sigmoid(z: F64) -> F64:
    """1 / (1 + e^-z), evaluated through e^-|z| so that no exponential overflows."""
    e = np.exp(-np.abs(z))
    out: F64 = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out


def _bce_reading(x: F64, t: F64) -> float:
    """The mean binary cross-entropy with ``x`` read as probabilities (torch's clamp included)."""
    with quietly(divide="ignore"):
        lx = np.maximum(np.log(x), LOG_FLOOR)
        l1x = np.maximum(np.log1p(-x), LOG_FLOOR)
    return float(np.mean(-(t * lx + (1 - t) * l1x)))
