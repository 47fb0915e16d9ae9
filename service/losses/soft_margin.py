"""Logistic margin losses: ``soft_margin_loss`` and ``multilabel_soft_margin_loss``.

``soft_margin_loss`` takes targets y ∈ {-1, 1} and scores x; each element's loss is
``log(1 + exp(-y·x))`` (the logistic loss of the margin m = y·x). The target broadcasts to the
input's shape, never beyond it (torch refuses a larger result). ``mean`` divides by the number
of elements; a mean over nothing is NaN. Torch evaluates the formula literally, so exp(-y·x)
overflows to inf once -y·x passes log(max float) (88.7 in float32, 11.1 in float16): there it
returns inf (and NaN gradients) where the reference, log1p(exp(z)) = logaddexp(0, z), stays
finite. ∂/∂x = -y·σ(-y·x), with σ the logistic function; the target is not differentiable.

``multilabel_soft_margin_loss`` is the binary cross-entropy of logits averaged over the last
(class) dimension of size C, with targets t ∈ {0, 1} (or soft, in [0, 1]) and an optional
``weight`` (per class, or anything that broadcasts to the input's shape):
``loss_n = -(1/C)·Σ_c w_c·(t_c·log σ(x_c) + (1 - t_c)·log σ(-x_c))``, one value per sample
(the input's shape without its last dimension). ``mean`` divides by the number of samples; an
empty class dimension gives 0/0 = NaN per sample, as in torch. Gradients, g = 1/N for ``mean``:
∂/∂x_c = g·w_c·(σ(x_c) - t_c)/C, ∂/∂t_c = -g·w_c·x_c/C, ∂/∂w_c = g·ℓ_c/C (ℓ_c the unweighted
term), each summed back over the axes broadcasting stretched.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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
from service.losses.broadcasting import (
    broadcast_mismatch_warning,
    require_broadcasts_into,
    sum_to_shape,
)
from service.losses.common import (
    F64,
    floating,
    grad_scale,
    ieee_quiet,
    negative_weight_warning,
    scale_of,
    target_values_warning,
)
from service.losses.reduction import REDUCTIONS
from service.losses.registry import register

#: log of the largest finite number of each dtype: exp() overflows to inf past it.
EXP_LIMIT: dict[str, float] = {
    "float64": float(np.log(np.finfo(np.float64).max)),
    "float32": float(np.log(np.finfo(np.float32).max)),
    "bfloat16": float(np.log(np.finfo(np.float32).max)),
    "float16": float(np.log(np.finfo(np.float16).max)),
}


#: Why the target (and weight) may not enlarge the input, as the refusals say it.
_LARGER_REFUSED = "torch refuses a result larger than the input"
_WRONG_DIMENSION = "torch would average over the wrong dimension"


def log_sigmoid(x: F64) -> F64:
    """log σ(x) = -log(1 + exp(-x)), without overflow for either sign."""
    out: F64 = -np.logaddexp(0.0, -x)
    return out


def sigmoid(x: F64) -> F64:
    return np.exp(log_sigmoid(x))


class SoftMarginLossParams(LossParams):
    input: Tensor = Field(description="Scores, any shape.")
    target: Tensor = Field(
        description="Labels 1 or -1, the input's shape (or one that broadcasts to it)."
    )
    reduction: Reduction = "mean"


@dataclass
class SoftMarginPrepared(Prepared):
    exp_limit: float = EXP_LIMIT["float64"]


@register
class SoftMarginLoss(Loss[SoftMarginLossParams]):
    name = "soft_margin_loss"
    module = "SoftMarginLoss"
    warning_codes = frozenset({"exp_overflow", "shape_mismatch_broadcast", "target_values"})
    inline = True  # linear in the elements, no Python loop over them
    summary = "Logistic loss of the margin y·x, for labels y in {1, -1}."
    formula = "loss = log(1 + exp(-target·input))"
    params_model = SoftMarginLossParams
    tensor_inputs = ("input", "target")
    differentiable = ("input",)
    nonnegative = True

    def prepare(self, params: SoftMarginLossParams, dtype: str) -> Prepared:
        x = floating(params.input, dtype)
        require_broadcasts_into("target", params.target.shape, x.shape, _LARGER_REFUSED)
        y = floating(params.target, dtype)
        return SoftMarginPrepared(
            arrays={"input": x, "target": y},
            floating=frozenset({"input", "target"}),
            scale=scale_of(x),
            exp_limit=EXP_LIMIT[dtype],
        )

    @ieee_quiet
    def reference(
        self, params: SoftMarginLossParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        x = prep.arrays["input"]
        y = np.broadcast_to(prep.arrays["target"], x.shape)
        margin = y * x
        losses = np.logaddexp(0.0, -margin)
        ref = Reference.reduced(losses, params.reduction, breakdown={"margin": margin})
        if "grad" in include:
            g = grad_scale(params.reduction, losses.size)
            ref.grads["input"] = -g * y * sigmoid(-margin)
        return ref

    @ieee_quiet
    def warnings(self, params: SoftMarginLossParams, prep: Prepared) -> list[LossWarning]:
        out: list[LossWarning] = []
        odd = target_values_warning(
            params.target,
            (-1.0, 1.0),
            self.name,
            "With 0/1 labels every 0 contributes log 2 whatever the input; map them to -1 "
            "(or use binary_cross_entropy_with_logits).",
        )
        if odd is not None:
            out.append(odd)
        if params.target.shape != params.input.shape:
            out.append(broadcast_mismatch_warning(params.input.shape, params.target.shape))
        limit = prep.exp_limit if isinstance(prep, SoftMarginPrepared) else EXP_LIMIT["float64"]
        x = prep.arrays["input"]
        margin = np.broadcast_to(prep.arrays["target"], x.shape) * x
        overflowing = int(np.count_nonzero(-margin > limit))
        if overflowing:
            out.append(
                LossWarning(
                    "exp_overflow",
                    f"torch evaluates log(1 + exp(-target·input)) literally, and exp overflows "
                    f"once -target·input exceeds {limit:.2f} in this dtype: {overflowing} "
                    "element(s) do, so torch returns inf there (and NaN gradients) while the "
                    "reference is finite. Use float64, or binary_cross_entropy_with_logits.",
                    {"overflowing": overflowing},
                )
            )
        return out

    def example(self) -> dict[str, Any]:
        return {"input": [0.8, -1.2, 2.5, 0.1], "target": [1, -1, -1, 1]}

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "example")

        def labels(shape: tuple[int, ...]) -> Any:
            return rng.choice([-1, 1], size=shape).tolist()

        shapes: list[tuple[int, ...]] = [(), (5,), (3, 4), (2, 3, 2), (2, 1, 3, 2)]
        for shape in shapes:
            for reduction in REDUCTIONS:
                x = rng.standard_normal(shape) * 2
                body = {"input": x.tolist(), "target": labels(shape), "reduction": reduction}
                yield Sample(body, f"rank {len(shape)} {reduction}")
        for scale in (1e-4, 10.0, 40.0):
            for reduction in REDUCTIONS:
                # within float32's exp range: past it torch overflows (the exp_overflow warning)
                x = np.clip(rng.standard_normal((4, 3)) * scale, -80.0, 80.0)
                body = {"input": x.tolist(), "target": labels((4, 3)), "reduction": reduction}
                yield Sample(body, f"scale {scale:g} {reduction}")
        for reduction in REDUCTIONS:
            yield Sample(
                {"input": [[-80.0, 80.0], [85.0, -85.0]], "target": [[1, 1], [-1, -1]]}
                | {"reduction": reduction},
                f"margins near float32's exp limit {reduction}",
            )
            x = rng.standard_normal((3, 4))
            yield Sample(
                {"input": x.tolist(), "target": labels((4,)), "reduction": reduction},
                f"target broadcast over rows {reduction}",
            )
            yield Sample(
                {"input": x.tolist(), "target": 1, "reduction": reduction},
                f"scalar target {reduction}",
            )
            yield Sample(
                {"input": x.tolist(), "target": rng.integers(0, 2, (3, 4)).tolist()}
                | {"reduction": reduction},
                f"0/1 targets (a common mistake) {reduction}",
            )
            yield Sample(
                {"input": x.tolist(), "target": rng.uniform(-2, 2, (3, 4)).tolist()}
                | {"reduction": reduction},
                f"real-valued targets {reduction}",
            )
            yield Sample({"input": [], "target": [], "reduction": reduction}, f"empty {reduction}")
            yield Sample(
                {"input": [[], []], "target": [], "reduction": reduction},
                f"empty rows, broadcast target {reduction}",
            )

    def error_samples(self) -> Iterator[ErrorSample]:
        ok: dict[str, Any] = {"input": [[0.5, -1.0], [2.0, 0.0]], "target": [[1, -1], [-1, 1]]}
        yield ErrorSample(ok | {"target": [1, -1, 1]}, "target", "does not broadcast")
        yield ErrorSample(
            {"input": [0.5, 1.0], "target": [[1, -1], [1, 1]]},
            "target",
            "broadcasts the input larger (torch refuses)",
        )
        yield ErrorSample(
            {"input": [[0.5], [1.0]], "target": [[1, -1]]}, "target", "outer broadcast"
        )
        yield ErrorSample({"target": [1]}, "input", "missing input")
        yield ErrorSample(ok | {"weight": [1.0, 1.0]}, "weight", "takes no weight")
        yield ErrorSample(ok | {"reduction": "batchmean"}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"reduce": True}, "reduce", "deprecated argument")
        yield ErrorSample(ok | {"target": [[1, None], [1, 1]]}, "target", "null")


class MultilabelSoftMarginLossParams(LossParams):
    input: Tensor = Field(
        description="Logits, shape (C) or (N, C) (any rank ≥ 1: the last dimension is the class)."
    )
    target: Tensor = Field(
        description="0/1 labels (or soft labels in [0, 1]), the input's shape or one that "
        "broadcasts to it."
    )
    weight: Tensor | None = Field(
        default=None,
        description="Weight per class, shape (C), or any shape that broadcasts to the input's.",
    )
    reduction: Reduction = "mean"


@register
class MultilabelSoftMarginLoss(Loss[MultilabelSoftMarginLossParams]):
    name = "multilabel_soft_margin_loss"
    module = "MultiLabelSoftMarginLoss"
    warning_codes = frozenset(
        {
            "empty_class_dimension",
            "negative_weight",
            "shape_mismatch_broadcast",
            "target_values",
        }
    )
    inline = True  # linear in the elements, no Python loop over them
    summary = "Binary cross-entropy of logits, averaged over the classes of each sample."
    formula = "loss_n = -(1/C)·Σ_c w_c·(t_c·log σ(x_c) + (1 - t_c)·log σ(-x_c))"
    params_model = MultilabelSoftMarginLossParams
    tensor_inputs = ("input", "target", "weight")
    differentiable = ("input", "target", "weight")
    nonnegative = True

    def prepare(self, params: MultilabelSoftMarginLossParams, dtype: str) -> Prepared:
        if params.input.ndim == 0:
            raise InvalidInput.at(
                "input", "a class dimension is needed: shape (C), (N, C) or (N, ..., C)"
            )
        x = floating(params.input, dtype)
        require_broadcasts_into("target", params.target.shape, x.shape, _WRONG_DIMENSION)
        arrays: dict[str, Any] = {"input": x, "target": floating(params.target, dtype)}
        if params.weight is not None:
            require_broadcasts_into("weight", params.weight.shape, x.shape, _WRONG_DIMENSION)
            arrays["weight"] = floating(params.weight, dtype)
        return Prepared(
            arrays=arrays,
            floating=frozenset(arrays),
            facts={"classes": x.shape[-1]},
            scale=scale_of(x),
        )

    @ieee_quiet
    def reference(
        self, params: MultilabelSoftMarginLossParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        x = prep.arrays["input"]
        t = np.broadcast_to(prep.arrays["target"], x.shape)
        w = prep.arrays.get("weight")
        wb = np.ones(x.shape) if w is None else np.broadcast_to(w, x.shape)
        n_classes = x.shape[-1]
        per_class = -(t * log_sigmoid(x) + (1.0 - t) * log_sigmoid(-x))
        weighted = per_class * wb
        losses = weighted.sum(axis=-1) / n_classes
        ref = Reference.reduced(losses, params.reduction, breakdown={"per_class": weighted})
        if "grad" in include:
            g = grad_scale(params.reduction, losses.size) / np.float64(n_classes)
            ref.grads["input"] = g * wb * (sigmoid(x) - t)
            ref.grads["target"] = sum_to_shape(-g * wb * x, prep.arrays["target"].shape)
            if w is not None:
                ref.grads["weight"] = sum_to_shape(g * per_class, w.shape)
        return ref

    @ieee_quiet
    def warnings(self, params: MultilabelSoftMarginLossParams, prep: Prepared) -> list[LossWarning]:
        out: list[LossWarning] = []
        t = params.target.astype(np.float64)
        if t.size and (t.min() < 0 or t.max() > 1):
            out.append(
                LossWarning(
                    "target_values",
                    "multilabel_soft_margin_loss expects targets in [0, 1] (1 = the class is "
                    f"present); the target ranges over [{t.min():g}, {t.max():g}]. For -1/1 "
                    "labels use soft_margin_loss, or map -1 to 0.",
                )
            )
        if params.target.shape != params.input.shape:
            out.append(broadcast_mismatch_warning(params.input.shape, params.target.shape))
        if params.input.shape[-1] == 0:
            out.append(
                LossWarning(
                    "empty_class_dimension",
                    "the class dimension is empty: each sample's loss is 0/0, which is NaN.",
                )
            )
        negative = negative_weight_warning(params.weight)
        if negative is not None:
            out.append(negative)
        return out

    def example(self) -> dict[str, Any]:
        return {"input": [[0.9, -1.1, 2.0], [-0.3, 0.4, -2.2]], "target": [[1, 0, 1], [0, 1, 0]]}

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "example")
        shapes: list[tuple[int, ...]] = [(4,), (3, 4), (2, 3, 4), (2, 1, 2, 3)]
        for shape in shapes:
            for reduction in REDUCTIONS:
                x = rng.standard_normal(shape) * 2
                t = rng.integers(0, 2, shape)
                body = {"input": x.tolist(), "target": t.tolist(), "reduction": reduction}
                yield Sample(body, f"rank {len(shape)} {reduction}")
                w = rng.uniform(0.0, 2.0, shape[-1])
                yield Sample(body | {"weight": w.tolist()}, f"class weights rank {len(shape)}")
        for reduction in REDUCTIONS:
            x = rng.standard_normal((3, 4))
            soft = rng.uniform(0, 1, (3, 4))
            base = {"input": x.tolist(), "reduction": reduction}
            yield Sample(base | {"target": soft.tolist()}, f"soft targets {reduction}")
            yield Sample(
                base | {"target": [1, 0, 0, 1], "weight": rng.uniform(0, 2, (3, 4)).tolist()},
                f"target broadcast, element-wise weight {reduction}",
            )
            yield Sample(
                base | {"target": soft.tolist(), "weight": rng.uniform(0, 2, (3, 1)).tolist()},
                f"weight per sample {reduction}",
            )
            yield Sample(
                base | {"target": soft.tolist(), "weight": 0.5}, f"scalar weight {reduction}"
            )
            for scale in (1e-4, 30.0, 1e3):
                y = rng.standard_normal((2, 3)) * scale
                yield Sample(
                    {"input": y.tolist(), "target": rng.integers(0, 2, (2, 3)).tolist()}
                    | {"reduction": reduction},
                    f"scale {scale:g} {reduction}",
                )
            yield Sample(
                {"input": [[3.0]], "target": [[1]], "reduction": reduction},
                f"one class {reduction}",
            )

    def error_samples(self) -> Iterator[ErrorSample]:
        ok: dict[str, Any] = {"input": [[0.5, -1.0, 2.0]], "target": [[1, 0, 1]]}
        yield ErrorSample(ok | {"input": 1.5, "target": 1}, "input", "no class dimension")
        yield ErrorSample(ok | {"target": [[1, 0]]}, "target", "too few classes")
        yield ErrorSample(
            {"input": [0.5, -1.0, 2.0], "target": [[1, 0, 1], [0, 0, 1]]},
            "target",
            "broadcasts the input larger (torch averages the wrong dimension)",
        )
        yield ErrorSample(ok | {"weight": [1.0, 2.0]}, "weight", "weight of the wrong length")
        yield ErrorSample(
            ok | {"weight": [[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]},
            "weight",
            "weight broadcasts the input larger",
        )
        yield ErrorSample(ok | {"reduction": "batchmean"}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"size_average": False}, "size_average", "deprecated argument")
        yield ErrorSample({"input": [[0.5]]}, "target", "missing target")
