"""Poisson negative log-likelihood: ``torch.nn.functional.poisson_nll_loss``.

The input is the predicted rate λ of a Poisson distribution, as its logarithm (``log_input``,
the default) or as the rate itself; the target holds observed counts k. Dropping the constant
log k!, each element's loss is

    ℓ = e^x - k·x                  (log_input=True:  λ = e^x)
    ℓ = x - k·log(x + eps)         (log_input=False: λ = x; eps keeps log finite at 0)

With ``full`` the Stirling approximation of log k! is added where k > 1 (0 elsewhere):
``k·log k - k + ½·log(2πk)``. Input and target broadcast together silently; torch checks
neither k ≥ 0 nor λ ≥ 0 (log of a negative rate is NaN). ``mean`` divides by the number of
elements; a mean over nothing is NaN. Gradients: ∂ℓ/∂x = e^x - k (1 - k/(x + eps));
∂ℓ/∂k = -x (-log(x + eps)), plus log k + 1/(2k) from the Stirling term where k > 1; with
``full``, torch's ∂ℓ/∂k is NaN where k ≤ 0 (the masked term's log is differentiated at 0 or
below), and the reference says the same.
"""

from __future__ import annotations

import math
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
from service.losses.broadcasting import (
    BroadcastsWithInput,
    broadcast_shape,
    shapes_broadcast_warning,
    stretched,
    sum_to_shape,
)
from service.losses.common import F64, floating, grad_scale, quietly, scale_of
from service.losses.reduction import REDUCTIONS
from service.losses.registry import register

#: Above this, a "log-rate" is a rate of more than e^20 ≈ 5e8 events: probably a rate itself.
LARGE_LOG_RATE = 20.0


class PoissonNllLossParams(LossParams):
    input: Tensor = Field(description="Log-rates (log_input) or rates, any shape.")
    target: BroadcastsWithInput = Field(description="Counts, broadcastable with the input.")
    log_input: bool = Field(default=True, description="The input holds log λ, not λ.")
    full: bool = Field(
        default=False, description="Add the Stirling approximation of log(target!) where > 1."
    )
    eps: float = Field(
        default=1e-8, description="Added to the rate inside the log when log_input is false."
    )
    reduction: Reduction = "mean"


@register
class PoissonNllLoss(Loss[PoissonNllLossParams]):
    name = "poisson_nll_loss"
    module = "PoissonNLLLoss"
    warning_codes = frozenset(
        {
            "input_large_for_log_rate",
            "rate_not_positive",
            "shape_mismatch_broadcast",
            "target_negative",
        }
    )
    inline = True  # linear in the elements, no Python loop over them
    summary = "Negative log-likelihood of counts under a Poisson distribution of rate λ."
    formula = "loss = e^x - k·x (log_input) or x - k·log(x + eps); + Stirling(k) if full"
    params_model = PoissonNllLossParams
    tensor_inputs = ("input", "target")
    differentiable = ("input", "target")

    def prepare(self, params: PoissonNllLossParams, dtype: str) -> Prepared:
        x = floating(params.input, dtype)
        broadcast_shape(("input", x.shape), ("target", params.target.shape))
        t = floating(params.target, dtype)
        rate, log_rate = _rates(x, params)
        with quietly(all="ignore"):
            terms = [rate, t * log_rate, _stirling(t) if params.full else np.zeros(0)]
        return Prepared(
            arrays={"input": x, "target": t},
            floating=frozenset({"input", "target"}),
            scale=scale_of(*(np.where(np.isfinite(a), a, 0.0) for a in terms)),
        )

    def reference(
        self, params: PoissonNllLossParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        x, t = prep.arrays["input"], prep.arrays["target"]
        rate, log_rate = _rates(x, params)
        with quietly(invalid="ignore"):
            losses = rate - t * log_rate
        breakdown: dict[str, Any] = {"rate": rate, "log_rate": log_rate}
        if params.full:
            stirling = _stirling(t)
            losses = losses + stirling
            breakdown["stirling_term"] = stretched(stirling, losses.shape)
        ref = Reference.reduced(losses, params.reduction, breakdown=breakdown)
        if "grad" in include:
            g = grad_scale(params.reduction, losses.size)
            with quietly(divide="ignore", invalid="ignore"):
                gx = rate - t if params.log_input else 1 - t / (x + params.eps)
                gt = -log_rate
                if params.full:
                    safe = np.where(t > 1, t, 2.0)
                    gt = gt + np.where(t > 1, np.log(safe) + 0.5 / safe, np.where(t > 0, 0, np.nan))
            ref.grads["input"] = sum_to_shape(g * np.broadcast_to(gx, losses.shape), x.shape)
            ref.grads["target"] = sum_to_shape(g * np.broadcast_to(gt, losses.shape), t.shape)
        return ref

    def warnings(self, params: PoissonNllLossParams, prep: Prepared) -> list[LossWarning]:
        out: list[LossWarning] = []
        x, t = prep.arrays["input"], prep.arrays["target"]
        if not params.log_input and x.size and (x + params.eps).min() <= 0:
            n = int(np.count_nonzero(x + params.eps <= 0))
            out.append(
                LossWarning(
                    "rate_not_positive",
                    f"log_input=False reads 'input' as rates, but {n} values of input + eps are "
                    "≤ 0: log(input + eps) is -infinity or NaN there. Rates must be positive; if "
                    "the input holds log-rates, set log_input=True.",
                    {"elements": n},
                )
            )
        if params.log_input and x.size and x.max() > LARGE_LOG_RATE:
            peak = float(x.max())
            out.append(
                LossWarning(
                    "input_large_for_log_rate",
                    f"log_input=True reads 'input' as log λ and computes e^input; its largest "
                    f"value {peak:g} means a rate of e^{peak:g}, which overflows float32 past "
                    "88.7. If the input holds rates, set log_input=False.",
                    {"max_input": peak},
                )
            )
        if t.size and t.min() < 0:
            n = int(np.count_nonzero(t < 0))
            out.append(
                LossWarning(
                    "target_negative",
                    f"{n} values of 'target' are negative; Poisson counts are ≥ 0, and the loss "
                    "there is not a likelihood (torch does not check).",
                    {"elements": n},
                )
            )
        if t.shape != x.shape:
            out.append(
                shapes_broadcast_warning(
                    t.shape,
                    x.shape,
                    ". Check that this is the pairing you meant: an (N) target against an (N, 1) "
                    "input gives N·N losses.",
                )
            )
        return out

    def example(self) -> dict[str, Any]:
        return {"input": [[0.5, 1.2], [-0.3, 2.0]], "target": [[2, 3], [0, 7]], "full": True}

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "the example")
        shapes: dict[int, tuple[int, ...]] = {0: (), 1: (6,), 2: (4, 3), 3: (2, 3, 2)}
        i = 0
        for rank, shape in shapes.items():
            log_rate = np.asarray(rng.normal(0.5, 1.2, shape))
            counts = np.asarray(rng.poisson(np.exp(log_rate)))
            rates = np.asarray(rng.gamma(2.0, 1.5, shape))
            for log_input in (True, False):
                x = log_rate if log_input else rates
                for full in (False, True):
                    for target in (counts, np.asarray(counts + rng.uniform(0, 1, shape))):
                        body = {"input": x.tolist(), "target": target.tolist()}
                        yield Sample(
                            body
                            | {
                                "log_input": log_input,
                                "full": full,
                                "reduction": REDUCTIONS[i % 3],
                            },
                            f"rank {rank} log_input={log_input} full={full}",
                        )
                        i += 1
        small_counts = [0, 1, 2, 0, 5, 1]
        for reduction in REDUCTIONS:
            yield Sample(
                {
                    "input": [0.0, 0.0, 1e-12, 3.0, 0.5, 2.0],
                    "target": small_counts,
                    "log_input": False,
                    "full": True,
                    "reduction": reduction,
                },
                "zero rates kept finite by eps",
            )
            yield Sample(
                {
                    "input": [0.1, 0.0, 1e-12, 3.0, 0.5, 2.0],
                    "target": small_counts,
                    "log_input": False,
                    "eps": 0.25,
                    "reduction": reduction,
                },
                "a large eps",
            )
            yield Sample(
                {
                    "input": [0.1, 0.2, 1e-12, 3.0, 0.5, 2.0],
                    "target": small_counts,
                    "log_input": False,
                    "eps": 0.0,
                    "reduction": reduction,
                },
                "eps 0 with positive rates",
            )
            yield Sample(
                {
                    "input": [-30.0, 15.0, 0.0],
                    "target": [0, 3e6, 1],
                    "full": True,
                    "reduction": reduction,
                },
                "extreme log-rates and counts",
            )
            yield Sample(
                {"input": [[0.1], [0.7], [1.3]], "target": [1, 2, 0, 4], "reduction": reduction},
                "(3, 1) against (4): broadcasts to (3, 4)",
            )
            yield Sample(
                {
                    "input": [0.1, 0.7, 1.3],
                    "target": [[1, 2, 0], [2, 0, 0]],
                    "full": True,
                    "log_input": False,
                    "reduction": reduction,
                },
                "(3) against (2, 3)",
            )
            yield Sample({"input": [], "target": [], "reduction": reduction}, "empty")
            yield Sample(
                {"input": [0.4, -0.2], "target": [-1.0, 0.5], "full": True, "reduction": reduction},
                "negative and fractional counts (torch does not check)",
            )

    def error_samples(self) -> Iterator[ErrorSample]:
        ok = {"input": [[0.5, 1.2]], "target": [[2, 3]]}
        yield ErrorSample(ok | {"target": [2, 3, 4]}, "target", "does not broadcast")
        yield ErrorSample(ok | {"log_input": "false"}, "log_input", "a string, not a boolean")
        yield ErrorSample(ok | {"full": 0}, "full", "an integer, not a boolean")
        yield ErrorSample(ok | {"eps": "1e-8"}, "eps", "a string")
        yield ErrorSample(ok | {"eps": [1e-8]}, "eps", "a list")
        yield ErrorSample(ok | {"reduction": "batchmean"}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"size_average": True}, "size_average", "deprecated argument")
        yield ErrorSample({"input": [0.5]}, "target", "missing target")


def _rates(x: F64, params: PoissonNllLossParams) -> tuple[F64, F64]:
    """(λ, log λ) as torch computes them: (e^x, x), or (x, log(x + eps))."""
    if params.log_input:
        with quietly(over="ignore"):
            return np.exp(x), x
    with quietly(divide="ignore", invalid="ignore"):
        return x, np.log(x + params.eps)


def _stirling(t: F64) -> F64:
    """k·log k - k + ½·log(2πk) where k > 1, else 0: the approximation of log k!."""
    safe = np.where(t > 1, t, 2.0)
    with quietly(invalid="ignore"):  # inf - inf for a count that overflowed the dtype
        term = safe * np.log(safe) - safe + 0.5 * np.log(2 * math.pi * safe)
    out: F64 = np.where(t > 1, term, 0.0)
    return out
