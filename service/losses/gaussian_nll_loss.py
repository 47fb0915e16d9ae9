"""Gaussian negative log-likelihood: ``torch.nn.functional.gaussian_nll_loss``.

The input holds predicted means μ, the target observations y, ``var`` the predicted variances
σ². With σ² clamped from below at ``eps`` for stability, each element's loss is

    ℓ = ½·(log max(σ², eps) + (μ - y)² / max(σ², eps))      (+ ½·log 2π with ``full``)

``var`` is a number (one variance for everything: torch multiplies it by ones of the input's
shape) or a tensor of the input's shape, of the input's shape without its last dimension (one
variance per row: torch appends a dimension of 1), or of the input's rank with exactly one
dimension of size 1 where the input's differs (torch's rule: the sizes of var at the differing
dimensions must sum to 1). ``var`` must be ≥ 0 (torch refuses negative entries). The target is
*not* checked against the input: the two broadcast silently, so the loss takes the broadcast
shape of input, target and var. ``mean`` divides by the number of elements of that shape; a
mean over nothing is NaN.

Gradients: ∂ℓ/∂μ = (μ - y)/v, ∂ℓ/∂y = -(μ - y)/v and ∂ℓ/∂σ² = ½·(1/v - (μ - y)²/v²) with
v = max(σ², eps); torch clamps without recording it, so the gradient with respect to σ² flows
also where σ² < eps, and the reference does the same. Gradients of broadcast operands are summed
back to their shapes.
"""

from __future__ import annotations

import math
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
from service.losses.broadcasting import (
    BroadcastsWithInput,
    broadcast_shape,
    shapes_broadcast_warning,
    stretched,
    sum_to_shape,
)
from service.losses.common import F64, floating, grad_scale, quietly, scale_of, shape_str
from service.losses.reduction import REDUCTIONS
from service.losses.registry import register

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class GaussianNllLossParams(LossParams):
    input: Tensor = Field(description="Predicted means, any shape.")
    target: BroadcastsWithInput = Field(description="Observations, broadcastable with the input.")
    var: Tensor = Field(
        description="Predicted variances ≥ 0: a number, or a tensor of the input's shape, of its "
        "shape without the last dimension, or with one dimension of size 1."
    )
    full: bool = Field(default=False, description="Add the constant ½·log(2π).")
    eps: float = Field(default=1e-6, description="Lower clamp of var, for stability.")
    reduction: Reduction = "mean"


@register
class GaussianNllLoss(Loss[GaussianNllLossParams]):
    name = "gaussian_nll_loss"
    module = "GaussianNLLLoss"
    warning_codes = frozenset({"shape_mismatch_broadcast", "var_clamped"})
    inline = True  # linear in the elements, no Python loop over them
    summary = "Negative log-likelihood of targets under Gaussians of predicted mean and variance."
    formula = "loss = ½·(log max(var, eps) + (input - target)² / max(var, eps)) [+ ½·log 2π]"
    params_model = GaussianNllLossParams
    tensor_inputs = ("input", "target", "var")
    differentiable = ("input", "target", "var")

    def prepare(self, params: GaussianNllLossParams, dtype: str) -> Prepared:
        x = floating(params.input, dtype)
        var = params.var
        if var.size and var.min() < 0:
            raise InvalidInput.at(
                "var", f"variances must be ≥ 0, got {float(var[var < 0].flat[0])!r}"
            )
        if var.ndim == 0:
            form = "scalar"
            var = np.full(x.shape, float(var))  # torch: var * torch.ones_like(input)
        else:
            form = _var_form(var.shape, x.shape)
        broadcast_shape(
            ("input", x.shape),
            ("target", params.target.shape),
            ("var", _effective(var, x.shape).shape),
            max_elements=params.limits.max_elements,
        )
        arrays = {
            "input": x,
            "target": floating(params.target, dtype),
            "var": floating(var, dtype),
        }
        d2 = np.square(arrays["input"] - arrays["target"])
        v = np.maximum(_effective(arrays["var"], x.shape), params.eps)
        with quietly(all="ignore"):
            terms = [np.log(v), d2 / v]
        if terms[0].shape != terms[1].shape:
            terms = list(np.broadcast_arrays(*terms))  # (the same values; empty if either is)
        return Prepared(
            arrays=arrays,
            floating=frozenset(arrays),
            facts={"var_form": form},
            scale=scale_of(*(np.where(np.isfinite(a), a, 0.0) for a in terms)),
        )

    def reference(
        self, params: GaussianNllLossParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        x, t, var = prep.arrays["input"], prep.arrays["target"], prep.arrays["var"]
        v_eff = _effective(var, x.shape)
        v = np.maximum(v_eff, params.eps)
        d = x - t
        with quietly(divide="ignore", invalid="ignore"):
            log_v = np.log(v)
            sq = d**2 / v
            losses = 0.5 * (log_v + sq)
        if params.full:
            losses = losses + HALF_LOG_2PI
        shape = losses.shape
        ref = Reference.reduced(
            losses,
            params.reduction,
            breakdown={
                "log_var": stretched(log_v, shape),
                "squared_error_over_var": stretched(sq, shape),
                "var_clamped": stretched(v_eff < params.eps, shape),
            },
        )
        if "grad" in include:
            g = grad_scale(params.reduction, losses.size)
            with quietly(divide="ignore", invalid="ignore"):
                gx = np.broadcast_to(g * d / v, shape)
                gv = np.broadcast_to(g * 0.5 * (1 / v - d**2 / v**2), shape)
            ref.grads["input"] = sum_to_shape(gx, x.shape)
            ref.grads["target"] = sum_to_shape(-gx, t.shape)
            ref.grads["var"] = sum_to_shape(gv, v_eff.shape).reshape(var.shape)
        return ref

    def warnings(self, params: GaussianNllLossParams, prep: Prepared) -> list[LossWarning]:
        out: list[LossWarning] = []
        x, t, var = prep.arrays["input"], prep.arrays["target"], prep.arrays["var"]
        clamped = var < params.eps
        if clamped.any():
            n = int(np.count_nonzero(clamped))
            out.append(
                LossWarning(
                    "var_clamped",
                    f"{n} entries of 'var' are below eps ({params.eps:g}) and were raised to it: "
                    "there the loss measures eps, not your variance, and a variance of 0 weighs "
                    "the squared error by 1/eps. (The gradient still flows to var as if it had "
                    "not been clamped.)",
                    {"elements": n},
                )
            )
        if t.shape != x.shape:
            out.append(
                shapes_broadcast_warning(
                    t.shape,
                    x.shape,
                    " (torch checks var against the input, but not the target). An (N) target "
                    "against an (N, 1) input gives N·N losses.",
                )
            )
        return out

    def example(self) -> dict[str, Any]:
        return {
            "input": [[1.2, 0.4], [2.0, -0.5], [0.3, 0.9]],
            "target": [[1.0, 0.0], [2.5, -0.2], [0.1, 1.4]],
            "var": [0.5, 1.5, 0.2],
        }

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "the example: one variance per row")
        shapes: dict[int, tuple[int, ...]] = {0: (), 1: (5,), 2: (4, 3), 3: (2, 3, 2)}
        i = 0
        for scale in (0.1, 1.0, 100.0):
            for rank, shape in shapes.items():
                mu = rng.standard_normal(shape) * scale
                y = mu + rng.standard_normal(shape) * scale
                variances: list[Any] = [float(scale**2), rng.gamma(2.0, scale**2, shape).tolist()]
                if rank:
                    variances.append(rng.gamma(2.0, scale**2, shape[:-1]).tolist())
                if rank > 1:
                    column = (*shape[:1], 1, *shape[2:])
                    variances.append(rng.gamma(2.0, scale**2, column).tolist())
                for j, var in enumerate(variances):
                    for full in (False, True):
                        yield Sample(
                            {
                                "input": np.asarray(mu).tolist(),
                                "target": np.asarray(y).tolist(),
                                "var": var,
                                "full": full,
                                "reduction": REDUCTIONS[i % 3],
                            },
                            f"rank {rank} x{scale} var form {j} full={full}",
                        )
                        i += 1
        for reduction in REDUCTIONS:
            yield Sample(
                {
                    "input": [0.5, 1.0, -1.0, 2.0],
                    "target": [0.0, 1.0, 1.0, 2.5],
                    "var": [0.0, 1e-9, 0.5, 2.0],
                    "reduction": reduction,
                },
                "variances below eps are clamped",
            )
            yield Sample(
                {
                    "input": [0.5, 1.0, -1.0],
                    "target": [0.0, 1.0, 1.0],
                    "var": [0.1, 0.2, 0.3],
                    "eps": 0.25,
                    "full": True,
                    "reduction": reduction,
                },
                "a large eps clamps more",
            )
            yield Sample(
                {
                    "input": [0.5, 1.0, -1.0],
                    "target": [0.0, 1.0, 1.0],
                    "var": [0.1, 0.2, 0.3],
                    "eps": 0.0,
                    "reduction": reduction,
                },
                "eps 0 with positive variances",
            )
            yield Sample(
                {
                    "input": [[0.5], [1.0], [-1.0]],
                    "target": [0.0, 1.0],
                    "var": [[0.1], [0.2], [0.3]],
                    "reduction": reduction,
                },
                "(3, 1) against a (2) target: broadcasts to (3, 2)",
            )
            yield Sample(
                {
                    "input": [0.5, 1.0],
                    "target": [[0.0, 1.0], [1.0, 1.5]],
                    "var": 0.5,
                    "reduction": reduction,
                },
                "a (2, 2) target against a (2) input, scalar var",
            )
            yield Sample({"input": [], "target": [], "var": 1.0, "reduction": reduction}, "empty")
            yield Sample(
                {"input": [0.5, 1.0], "target": [0.4, 1.0], "var": 0, "reduction": reduction},
                "var the integer 0, as JSON may send it",
            )

    def error_samples(self) -> Iterator[ErrorSample]:
        ok = {"input": [[1.0, 2.0, 3.0], [0.0, 1.0, 2.0]], "target": [[1.5, 2.0, 2.0]] * 2}
        yield ErrorSample(ok, "var", "var is required")
        yield ErrorSample(ok | {"var": -1.0}, "var", "negative variance")
        yield ErrorSample(ok | {"var": [[1.0, -0.5, 1.0]] * 2}, "var", "a negative entry")
        yield ErrorSample(ok | {"var": [[1.0]]}, "var", "two dimensions of size 1")
        yield ErrorSample(ok | {"var": [1.0, 1.0, 1.0]}, "var", "the last dimension, not the rest")
        yield ErrorSample(ok | {"var": [[[1.0, 1.0, 1.0]] * 2]}, "var", "one dimension more")
        yield ErrorSample(
            {"input": [[[1.0, 2.0], [3.0, 4.0]]], "target": [[[1.0, 2.0], [3.0, 4.0]]]}
            | {"var": [[[1.0]]]},
            "var",
            "two dimensions of size 1 (rank 3)",
        )
        yield ErrorSample(ok | {"var": "1"}, "var", "a string")
        yield ErrorSample(ok | {"var": 1.0, "target": [1.0, 2.0]}, "target", "no broadcast")
        yield ErrorSample(ok | {"var": 1.0, "full": "true"}, "full", "a string, not a boolean")
        yield ErrorSample(ok | {"var": 1.0, "eps": None}, "eps", "null eps")
        yield ErrorSample(ok | {"var": 1.0, "reduction": "max"}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"var": 1.0, "reduce": True}, "reduce", "gaussian_nll has none")


def _var_form(var: tuple[int, ...], x: tuple[int, ...]) -> str:
    """Torch's size rule for a tensor ``var`` against the input, or a refusal naming 'var'."""
    if var == x:
        return "per_element"
    if x[:-1] == var:
        return "per_row"
    if len(var) == len(x) and sum(v for v, n in zip(var, x, strict=True) if v != n) == 1:
        return "broadcast"
    raise InvalidInput.at(
        "var",
        f"shape {shape_str(var)} fits neither the input's {shape_str(x)}, nor that shape without "
        "its last dimension, nor that shape with one dimension of size 1",
    )


def _effective(var: F64, x_shape: tuple[int, ...]) -> F64:
    """``var`` as torch uses it: with a trailing dimension of 1 when it has one per row."""
    if var.shape != x_shape and x_shape[:-1] == var.shape:
        return var[..., None]
    return var
