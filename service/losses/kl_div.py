"""Kullback-Leibler divergence: ``torch.nn.functional.kl_div``.

Argument order is the reverse of the notation KL(P ‖ Q): ``input`` holds log Q (log-probabilities
of the model, what ``log_softmax`` returns) and ``target`` holds P, as probabilities or, with
``log_target=True``, as log-probabilities. Each element's term is

    ℓ = t · (log t - x)          (log_target=False; 0 where t = 0, NaN where t < 0)
    ℓ = e^t · (t - x)            (log_target=True)

The terms can be negative; only their sum over a distribution is ≥ 0. Input and target
broadcast together silently. Reductions: ``sum``; ``batchmean`` divides the sum by
``input.size(0)`` (the input's, also when the target broadcast to more rows; nothing for a 0-d
input) and is the KL divergence per sample; ``mean`` (torch's default) divides by the number of
elements, which is *not* the KL divergence and which torch deprecates with a warning. A mean
over nothing is NaN. Gradients: ∂ℓ/∂x = -t (-e^t), ∂ℓ/∂t = log t + 1 - x ((t - x + 1)·e^t);
at t = 0 torch's ∂ℓ/∂t is NaN (0·log 0 differentiated), and the reference says the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from service.losses.base import (
    ErrorSample,
    Loss,
    LossParams,
    LossWarning,
    Prepared,
    Reference,
    Sample,
    Tensor,
)
from service.losses.broadcasting import (
    BroadcastsWithInput,
    broadcast_shape,
    broadcast_shapes,
    shapes_broadcast_warning,
    sum_to_shape,
)
from service.losses.common import F64, floating, grad_scale, log_softmax, quietly, scale_of
from service.losses.registry import register

KLReduction = Literal["none", "batchmean", "sum", "mean"]

#: The reduction code torch's functional passes to the ``kl_div`` operator for "mean".
_MEAN_CODE = 1


class KlDivParams(LossParams):
    input: Tensor = Field(description="Log-probabilities log q, any shape.")
    target: BroadcastsWithInput = Field(
        description="Probabilities p (log-probabilities when log_target), broadcastable with the "
        "input."
    )
    reduction: KLReduction = Field(
        default="mean",
        description="'batchmean' gives the KL divergence (sum / input.size(0)); 'mean' divides "
        "by the number of elements.",
    )
    log_target: bool = Field(default=False, description="The target holds log-probabilities.")


@register
class KlDiv(Loss[KlDivParams]):
    name = "kl_div"
    module = "KLDivLoss"
    warning_codes = frozenset(
        {
            "input_not_log_probabilities",
            "mean_is_not_kl_divergence",
            "shape_mismatch_broadcast",
            "target_negative",
            "target_not_log_probabilities",
        }
    )
    inline = True  # linear in the elements, no Python loop over them
    summary = "Kullback-Leibler divergence KL(target ‖ exp(input)), input as log-probabilities."
    formula = "loss = t·(log t - x), or e^t·(t - x) with log_target; batchmean = sum / N"
    params_model = KlDivParams
    tensor_inputs = ("input", "target")
    differentiable = ("input", "target")

    def prepare(self, params: KlDivParams, dtype: str) -> Prepared:
        x = floating(params.input, dtype)
        broadcast_shape(("input", x.shape), ("target", params.target.shape))
        t = floating(params.target, dtype)
        return Prepared(
            arrays={"input": x, "target": t},
            floating=frozenset({"input", "target"}),
            scale=scale_of(_terms(x, t, params.log_target)),
        )

    def torch_loss(self, params: KlDivParams, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``F.kl_div``, except for 'mean': there ``F.kl_div`` emits a Python warning on every
        call (process-global state that cannot be silenced per request from worker threads; the
        service reports it as its own structured warning) and then calls this very operator."""
        if params.reduction == "mean":
            return torch.kl_div(
                tensors["input"], tensors["target"], _MEAN_CODE, log_target=params.log_target
            )
        return super().torch_loss(params, tensors)

    def reference(self, params: KlDivParams, prep: Prepared, include: frozenset[str]) -> Reference:
        x, t = prep.arrays["input"], prep.arrays["target"]
        with quietly(divide="ignore", invalid="ignore"):
            if params.log_target:
                p, log_ratio = np.exp(t), t - x
                losses = p * log_ratio
            else:
                p, log_ratio = t, np.log(t) - x
                losses = np.where(t == 0, 0.0, t * np.log(t)) - t * x
        p = np.broadcast_to(p, losses.shape)
        denominator = _denominator(params.reduction, x, losses)
        plain = "mean" if params.reduction == "batchmean" else params.reduction
        ref = Reference.reduced(
            losses,
            plain,
            denominator,
            breakdown={"target_probability": np.array(p), "log_ratio": log_ratio},
        )
        if "grad" in include:
            g = grad_scale(plain, denominator)
            with quietly(divide="ignore", invalid="ignore"):
                if params.log_target:
                    gx, gt = -p, p * (t - x + 1)
                else:
                    gx, gt = -p, np.where(t == 0, np.nan, np.log(t) + 1) - x
            ref.grads["input"] = sum_to_shape(g * np.broadcast_to(gx, losses.shape), x.shape)
            ref.grads["target"] = sum_to_shape(g * np.broadcast_to(gt, losses.shape), t.shape)
        return ref

    def warnings(self, params: KlDivParams, prep: Prepared) -> list[LossWarning]:
        out: list[LossWarning] = []
        x, t = prep.arrays["input"], prep.arrays["target"]
        if params.reduction == "mean":
            count = math.prod(broadcast_shapes(x.shape, t.shape))
            batch = _denominator("batchmean", x, np.empty(0))
            factor = f" (here 'mean' × {count / batch:g})" if batch else ""
            out.append(
                LossWarning(
                    "mean_is_not_kl_divergence",
                    f"reduction 'mean' divides the sum by the number of elements ({count}), "
                    "which is not the KL divergence; 'batchmean' divides by the batch size "
                    f"input.size(0) ({batch:g}) and gives it{factor}. Torch deprecates 'mean' "
                    "for this reason.",
                    {"elements": count, "batch_size": batch},
                )
            )
        if x.size and x.max() > 0:
            n = int(np.count_nonzero(x > 0))
            out.append(
                LossWarning(
                    "input_not_log_probabilities",
                    f"{n} values of 'input' are positive, so 'input' is not log-probabilities "
                    "(which are ≤ 0). kl_div expects log q as input: pass log_softmax(logits), "
                    "or log(probabilities), not the probabilities or logits themselves.",
                    {"positive_values": n},
                )
            )
        if t.size and not params.log_target and t.min() < 0:
            n = int(np.count_nonzero(t < 0))
            out.append(
                LossWarning(
                    "target_negative",
                    f"{n} values of 'target' are negative: with log_target=False the target holds "
                    "probabilities and t·log t is NaN there. If the target holds "
                    "log-probabilities, set log_target=True.",
                    {"negative_values": n},
                )
            )
        if t.size and params.log_target and t.max() > 0:
            n = int(np.count_nonzero(t > 0))
            out.append(
                LossWarning(
                    "target_not_log_probabilities",
                    f"log_target=True reads 'target' as log-probabilities, but {n} of its values "
                    "are positive (probabilities above 1). If it holds probabilities, set "
                    "log_target=False.",
                    {"positive_values": n},
                )
            )
        if t.shape != x.shape:
            out.append(
                shapes_broadcast_warning(
                    t.shape,
                    x.shape,
                    "; 'batchmean' still divides by input.size(0). Check that this is the "
                    "pairing you meant.",
                )
            )
        return out

    def example(self) -> dict[str, Any]:
        return {
            "input": [[-1.2, -0.9, -1.2], [-0.4, -1.6, -1.6]],
            "target": [[0.2, 0.5, 0.3], [0.7, 0.2, 0.1]],
            "reduction": "batchmean",
        }

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "the example")
        yield Sample(self.example() | {"reduction": "mean"}, "the example, torch's default mean")
        shapes: dict[int, tuple[int, ...]] = {0: (), 1: (5,), 2: (4, 3), 3: (2, 3, 4)}
        reductions = ("none", "batchmean", "sum", "mean")
        for scale in (0.3, 3.0, 30.0):
            for rank, shape in shapes.items():
                axis = -1 if rank else None
                x = _log_probs(rng.standard_normal(shape) * scale, axis)
                lt = _log_probs(rng.standard_normal(shape) * scale, axis)
                for i, reduction in enumerate(reductions):
                    yield Sample(
                        {
                            "input": x.tolist(),
                            "target": np.exp(lt).tolist(),
                            "reduction": reduction,
                        },
                        f"probabilities rank {rank} x{scale}",
                    )
                    log_target = {"target": lt.tolist(), "log_target": True}
                    yield Sample(
                        {"input": x.tolist(), "reduction": reductions[(i + 1) % 4]} | log_target,
                        f"log-probabilities rank {rank} x{scale}",
                    )
        x = _log_probs(rng.standard_normal((4, 3)), -1)
        p = np.exp(_log_probs(rng.standard_normal((2, 4, 3)), -1))
        for reduction in reductions:
            yield Sample(
                {"input": x.tolist(), "target": p[0, 0].tolist(), "reduction": reduction},
                "target (3,) broadcast over the batch",
            )
            yield Sample(
                {"input": x.tolist(), "target": p.tolist(), "reduction": reduction},
                "target (2, 4, 3): batchmean still divides by 4",
            )
            yield Sample(
                {
                    "input": x[0].tolist(),
                    "target": np.log(p).tolist(),
                    "log_target": True,
                    "reduction": reduction,
                },
                "input (3,) broadcast to the target's (2, 4, 3)",
            )
            yield Sample(
                {"input": x.tolist(), "target": [[0.0, 1.0, 0.0]] * 4, "reduction": reduction},
                "one-hot target: zeros contribute 0",
            )
            yield Sample({"input": [], "target": [], "reduction": reduction}, "empty")
        yield Sample(
            {"input": [[0.5, 1.5], [-2.0, 3.0]], "target": [[0.5, 0.5], [0.1, 0.9]]},
            "logits passed as input (positive values)",
        )

    def error_samples(self) -> Iterator[ErrorSample]:
        ok = {"input": [[-1.2, -0.4]], "target": [[0.3, 0.7]]}
        yield ErrorSample(ok | {"target": [0.3, 0.3, 0.4]}, "target", "does not broadcast")
        yield ErrorSample(ok | {"target": [[[0.3, 0.7]], [[0.1]]]}, "target", "ragged")
        yield ErrorSample(ok | {"reduction": "batch_mean"}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"log_target": "yes"}, "log_target", "not a boolean")
        yield ErrorSample(ok | {"log_target": 1}, "log_target", "an integer, not a boolean")
        yield ErrorSample(ok | {"weight": [1.0, 1.0]}, "weight", "kl_div has no weight")
        yield ErrorSample(ok | {"size_average": True}, "size_average", "deprecated argument")
        yield ErrorSample({"target": [0.5]}, "input", "missing input")


def _terms(x: F64, t: F64, log_target: bool) -> F64:
    """The magnitudes that each element's term is a difference of (they set the tolerance)."""
    with quietly(all="ignore"):
        if log_target:
            p, logp = np.exp(t), t
        else:
            p, logp = t, np.log(np.where(t > 0, t, 1.0))
        magnitude = np.abs(p * logp) + np.abs(p * x)
    out: F64 = np.where(np.isfinite(magnitude), magnitude, 0.0)
    return out


def _denominator(reduction: str, x: F64, losses: F64) -> float:
    """What ``mean`` and ``batchmean`` divide by: the element count, or ``input.size(0)``."""
    if reduction == "batchmean":
        return float(x.shape[0]) if x.ndim else 1.0
    return float(losses.size)


def _log_probs(z: F64, axis: int | None) -> F64:
    if axis is None:
        return np.asarray(-np.log1p(np.exp(-z)))  # a 0-d "distribution": log σ(z)
    return log_softmax(z, axis)
