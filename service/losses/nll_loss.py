"""Negative log-likelihood of class indices: ``torch.nn.functional.nll_loss``.

The input holds *log-probabilities* (what ``log_softmax`` returns), shape ``(C)``, ``(N, C)`` or
``(N, C, d1, ..., dK)``; the target holds class indices of shape ``()`` (or ``(1)``, which torch
also accepts for a ``(C)`` input), ``(N)`` or ``(N, d1, ..., dK)``. Torch does not normalise
anything: each element's loss is

    ℓ = -w_y · x_y          (0 where y == ignore_index)

so logits or probabilities are accepted silently and give a number that is not a likelihood;
the warnings say so. ``w`` is ``weight`` (all ones when absent). ``mean`` divides the sum by
Σ w_y over the targets not ignored (not by their count); a mean over nothing, or over targets
whose weights sum to 0, is NaN or infinite, as in torch. The gradient with respect to x is
``-g·w_y`` at the target class and 0 elsewhere, g being 1/Σ w_y for ``mean``.
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
from service.losses.common import (
    F64,
    ClassWeight,
    all_targets_ignored_warning,
    at_targets,
    class_axis,
    class_count,
    class_indices,
    class_weights,
    floating,
    grad_scale,
    log_softmax,
    logsumexp,
    quietly,
    require_shape,
    scale_of,
    shape_str,
    take_class,
    without_class_axis,
)
from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from service.losses.reduction import REDUCTIONS
from service.losses.registry import register

#: How far Σ_c exp(x_c) of a row may be from 1 (in log space) and still count as normalised:
#: loose enough for log-probabilities computed in bfloat16, tight enough to catch logits.
NORMALISED_ATOL = 1e-2


class NllLossParams(LossParams):
    input: Tensor = Field(
        description="Log-probabilities, shape (C), (N, C) or (N, C, d1, ..., dK)."
    )
    target: Tensor = Field(
        description="Class indices in [0, C) (or ignore_index), shape (), (N) or (N, d1, ..., dK)."
    )
    weight: ClassWeight = None
    ignore_index: int = Field(
        default=-100, description="Target value that is ignored and does not count in 'mean'."
    )
    reduction: Reduction = "mean"


@register
class NllLoss(Loss[NllLossParams]):
    name = "nll_loss"
    module = "NLLLoss"
    warning_codes = frozenset(
        {
            "all_targets_ignored",
            "input_looks_like_probabilities",
            "input_not_log_probabilities",
            "zero_weight_total",
        }
    )
    inline = True  # linear in the elements, no Python loop over them
    summary = "Negative log-likelihood of class indices, given log-probabilities."
    formula = "loss = -w_y·x_y (0 where y == ignore_index); mean divides by Σ w_y"
    params_model = NllLossParams
    tensor_inputs = ("input", "target", "weight")
    differentiable = ("input",)

    def prepare(self, params: NllLossParams, dtype: str) -> Prepared:
        x = params.input
        n_classes = class_count(x, "log-probabilities")
        target = params.target
        if x.ndim == 1 and target.shape == (1,):
            target = target.reshape(())  # torch reads a (1) target of a (C) input as one index
        require_shape(
            target, "target", without_class_axis(x), f"class indices for input {shape_str(x.shape)}"
        )
        y = class_indices(target, n_classes, params.ignore_index)
        arrays: dict[str, Any] = {"input": floating(x, dtype), "target": y}
        floating_names = {"input"}
        if params.weight is not None:
            arrays["weight"] = class_weights(params.weight, n_classes, dtype)
            floating_names.add("weight")
        return Prepared(
            arrays=arrays,
            floating=frozenset(floating_names),
            facts={"classes": n_classes},
            scale=scale_of(arrays["input"]),
        )

    def reference(
        self, params: NllLossParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        x = prep.arrays["input"]
        class_dim = class_axis(x)
        xm = np.moveaxis(x, class_dim, -1)  # (..., C)
        n_classes = xm.shape[-1]
        w = prep.arrays.get("weight", np.ones(n_classes))
        kept, safe, w_y = at_targets(prep.arrays["target"], params.ignore_index, w)
        x_y = np.where(kept, take_class(xm, safe), 0.0)
        losses = -w_y * x_y
        denominator = float(w_y.sum())
        ref = Reference.reduced(
            losses,
            params.reduction,
            denominator,
            breakdown={"target_log_prob": x_y, "weight": w_y, "ignored": ~kept},
        )
        if "grad" in include:
            # Torch gives ignored elements a zero gradient, also when 'mean' divides by 0.
            at_target = (np.arange(n_classes) == safe[..., None]) & kept[..., None]
            g = grad_scale(params.reduction, denominator)
            with quietly(invalid="ignore"):
                grad = np.where(at_target, -g * w_y[..., None], 0.0)
            ref.grads["input"] = np.moveaxis(grad, -1, class_dim)
        return ref

    def warnings(self, params: NllLossParams, prep: Prepared) -> list[LossWarning]:
        out: list[LossWarning] = []
        x = prep.arrays["input"]
        class_dim = class_axis(x)
        y = prep.arrays["target"]
        kept = y != params.ignore_index
        if x.size:
            lse = logsumexp(np.moveaxis(x, class_dim, -1), axis=-1)
            if x.min() >= 0 and x.max() <= 1 and np.allclose(x.sum(axis=class_dim), 1, atol=1e-3):
                with quietly(divide="ignore"):
                    reading = _mean_nll(np.log(x), params, prep)
                out.append(
                    LossWarning(
                        "input_looks_like_probabilities",
                        "every row of 'input' lies in [0, 1] and sums to 1: it looks like "
                        "probabilities, but nll_loss expects log-probabilities (it does not take "
                        "the log). Pass log(input), or logits to cross_entropy; the mean loss "
                        f"on log(input) would be {_shown(reading)}.",
                        {"log_input_reading": reading},
                    )
                )
            elif np.abs(lse).max() > NORMALISED_ATOL:
                rows = int(np.count_nonzero(np.abs(lse) > NORMALISED_ATOL))
                positive = int(np.count_nonzero(x > 0))
                reading = _mean_nll(log_softmax(x, class_dim), params, prep)
                why = f"{positive} values are positive, " if positive else ""
                out.append(
                    LossWarning(
                        "input_not_log_probabilities",
                        f"'input' is not log-probabilities ({why}{rows} rows have "
                        "Σ exp(input) over the classes different from 1). nll_loss uses the "
                        "values as they are, so the result is not a likelihood. If these are "
                        "logits, apply log_softmax first or use cross_entropy, which would give "
                        f"a mean of {_shown(reading)} here.",
                        {"cross_entropy_reading": reading, "rows_not_normalised": rows},
                    )
                )
        if y.size and not kept.any():
            out.append(all_targets_ignored_warning(params.ignore_index))
        elif params.reduction == "mean" and kept.any() and params.weight is not None:
            w = prep.arrays["weight"]
            if float(w[np.where(kept, y, 0)][kept].sum()) == 0.0:
                out.append(
                    LossWarning(
                        "zero_weight_total",
                        "the weights of the targets that are not ignored sum to 0, and 'mean' "
                        "divides by that sum: the result is infinite or NaN.",
                    )
                )
        return out

    def example(self) -> dict[str, Any]:
        return {"input": np.log(ARTICLE_INPUT).tolist(), "target": ARTICLE_TARGET}

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "log of the article's probabilities")
        shapes = {1: (5,), 2: (4, 5), 3: (3, 4, 2), 4: (2, 3, 2, 2), 5: (2, 3, 1, 2, 2)}
        for scale in (0.1, 3.0, 1e3):
            for rank, shape in shapes.items():
                c = shape[0] if rank == 1 else shape[1]
                batch = () if rank == 1 else shape[:1] + shape[2:]
                logp = log_softmax(rng.standard_normal(shape) * scale, 0 if rank == 1 else 1)
                y = rng.integers(0, c, size=batch)
                weight = rng.uniform(0.1, 2.0, c).tolist()
                for reduction in REDUCTIONS:
                    base = {"input": logp.tolist(), "reduction": reduction}
                    yield Sample(base | {"target": y.tolist()}, f"rank {rank} x{scale}")
                    if rank > 1:
                        y_ign = np.where(rng.random(batch) < 0.4, 7, y)
                        yield Sample(
                            base | {"target": y_ign.tolist(), "weight": weight, "ignore_index": 7},
                            f"weighted, some ignored, rank {rank} x{scale}",
                        )
        x = rng.standard_normal((4, 3)) * 2
        for reduction in REDUCTIONS:
            yield Sample(
                {"input": x.tolist(), "target": [0, 1, 2, 1], "reduction": reduction},
                "raw logits, not log-probabilities (torch does not care)",
            )
            yield Sample(
                {
                    "input": x.tolist(),
                    "target": [1, 1, 1, 1],
                    "ignore_index": 1,
                    "reduction": reduction,
                },
                "all ignored by an in-range ignore_index",
            )
            yield Sample(
                {"input": [[[], [], []], [[], [], []]], "target": [[], []], "reduction": reduction},
                "empty batch (2, 3, 0)",
            )
            yield Sample(
                {
                    "input": x.tolist(),
                    "target": [0, 1, 2, 0],
                    "weight": [0.0, 1.0, 0.5],
                    "reduction": reduction,
                },
                "a zero class weight",
            )
        yield Sample({"input": [-0.5, -1.5, -2.5], "target": 2}, "rank 1, target a scalar")
        yield Sample({"input": [-0.5, -1.5, -2.5], "target": [2]}, "rank 1, a (1) target")
        yield Sample({"input": [-0.5, -1.5, -2.5], "target": -100}, "rank 1, target ignored")
        yield Sample({"input": [[-1e4, 0.0]], "target": [0]}, "extreme log-probability")

    def error_samples(self) -> Iterator[ErrorSample]:
        ok = {"input": [[-1.2, -0.9, -1.2]], "target": [2]}
        yield ErrorSample(ok | {"target": [3]}, "target", "index out of range")
        yield ErrorSample(ok | {"target": [-1]}, "target", "negative index, not ignore_index")
        yield ErrorSample(ok | {"target": [1.5]}, "target", "fractional index")
        yield ErrorSample(ok | {"target": [[1], [2]]}, "target", "wrong shape")
        yield ErrorSample(ok | {"target": [[0.2, 0.3, 0.5]]}, "target", "probabilities")
        yield ErrorSample(ok | {"weight": [1.0, 2.0]}, "weight", "weight of the wrong length")
        yield ErrorSample(ok | {"reduction": "batchmean"}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"input": -1.0}, "input", "no class dimension")
        yield ErrorSample(ok | {"input": [[]], "target": [0]}, "input", "empty class dimension")
        yield ErrorSample(ok | {"ignore_index": 1.5}, "ignore_index", "fractional ignore_index")
        yield ErrorSample(ok | {"reduce": False}, "reduce", "deprecated argument")
        yield ErrorSample({"input": [[-1.0]]}, "target", "missing target")


def _mean_nll(logp: F64, params: NllLossParams, prep: Prepared) -> float:
    """What ``mean`` would give with ``logp`` in place of the input (same targets and weights)."""
    lm = np.moveaxis(logp, class_axis(logp), -1)
    w = prep.arrays.get("weight", np.ones(lm.shape[-1]))
    kept, safe, w_y = at_targets(prep.arrays["target"], params.ignore_index, w)
    picked = take_class(lm, safe)
    with quietly(invalid="ignore", divide="ignore"):
        return float(-(np.where(kept, w_y * picked, 0.0)).sum() / w_y.sum())


def _shown(v: float) -> str:
    return f"{v:.4f}" if np.isfinite(v) else str(v)
