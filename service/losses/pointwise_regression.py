"""Pointwise regression losses: ``mse_loss``, ``l1_loss``, ``smooth_l1_loss``, ``huber_loss``.

With d = input - target, the two broadcast together as ``torch.broadcast_tensors`` does, each
element's loss ℓ(d) is

- ``mse_loss``:        d²
- ``l1_loss``:         |d|
- ``smooth_l1_loss``:  0.5·d²/β if |d| < β, else |d| - 0.5·β   (β = ``beta`` ≥ 0; β = 0 is l1)
- ``huber_loss``:      0.5·d² if |d| < δ, else δ·(|d| - 0.5·δ)  (δ = ``delta`` > 0; δ·smooth_l1)

multiplied by the element-wise ``weight`` where the function takes one (mse, l1 and huber).
Torch 2.13 requires that weight to have the *input's* shape and broadcasts it against the
losses. Shapes that differ are legal but usually a mistake: torch warns, the service says why
in its own warning (and refuses a broadcast larger than one tensor may be).

Reduction: ``sum`` adds every element of the broadcast shape. ``mean`` divides by the number of
those elements, except that mse_loss and l1_loss *with* a weight divide by Σ weight, taken over
the weight's own (the input's) shape even when the target broadcasts the losses larger;
huber_loss with a weight still divides by the count. A mean over nothing is NaN, and so is a
weighted mean whose weights sum to 0 over zero losses.

Gradients, with g = 1/denominator for ``mean`` (else 1) and ℓ' = 2d, sign(d) (0 at d = 0 and at
NaN, as torch's ``sgn``), clamp(d/β, -1, 1) (sign(d) when β = 0), clamp(d, -δ, δ):
∂/∂input = g·w·ℓ'(d) and ∂/∂target = -g·w·ℓ'(d), each summed back over the broadcast axes;
∂/∂weight_k = g·Σ_{b→k} ℓ(d_b), minus value/Σw for the weighted mean (the weight is in the
denominator too).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np
import numpy.typing as npt
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
    F64,
    floating,
    grad_scale,
    ieee_quiet,
    negative_weight_warning,
    require_shape,
    scale_of,
    shape_str,
)
from service.losses.reduction import REDUCTIONS
from service.losses.registry import register


class PointwiseParams(LossParams):
    input: Tensor = Field(description="Predictions, any shape.")
    target: BroadcastsWithInput = Field(
        description="Targets, the input's shape (or one that broadcasts with it, which torch "
        "warns about)."
    )
    reduction: Reduction = "mean"


class WeightedPointwiseParams(PointwiseParams):
    weight: Tensor | None = Field(
        default=None,
        description="Element-wise weight; torch requires exactly the input's shape.",
    )


class MSELossParams(WeightedPointwiseParams):
    pass


class L1LossParams(WeightedPointwiseParams):
    pass


class SmoothL1LossParams(PointwiseParams):
    beta: float = Field(
        default=1.0,
        ge=0.0,
        description="Where the quadratic part turns linear; 0 makes it l1_loss.",
    )


class HuberLossParams(WeightedPointwiseParams):
    delta: float = Field(
        default=1.0,
        gt=0.0,
        description="Where the quadratic part turns linear (δ·smooth_l1_loss with β = δ).",
    )


P = TypeVar("P", bound=PointwiseParams)


def torch_sign(d: F64) -> F64:
    """sign(d) as torch's ``sgn`` has it: 0 at 0, and 0 (not NaN) at NaN (inf - inf)."""
    return np.where(np.isnan(d), 0.0, np.sign(d))


def _weight(params: PointwiseParams) -> npt.NDArray[Any] | None:
    w: npt.NDArray[Any] | None = getattr(params, "weight", None)
    return w


class PointwiseLoss(Loss[P]):
    """What the four losses share: broadcasting, the optional weight, reduction, gradients."""

    differentiable: ClassVar[tuple[str, ...]] = ("input", "target", "weight")
    nonnegative = True
    weighted: ClassVar[bool] = True
    """The function takes an element-wise ``weight``."""
    mean_over_weights: ClassVar[bool] = True
    """With a weight, ``mean`` divides by Σ weight (mse, l1) rather than by the count (huber)."""

    # -- the loss itself ------------------------------------------------------------------------

    def elementwise(self, d: F64, params: P) -> F64:
        """ℓ(d) for each difference d = input - target."""
        raise NotImplementedError

    def derivative(self, d: F64, params: P) -> F64:
        """ℓ'(d), with torch's choice at the kinks."""
        raise NotImplementedError

    def zones(self, d: F64, params: P) -> dict[str, npt.NDArray[Any]]:
        """Extra per-element breakdown terms (which branch each element took)."""
        return {}

    def option_sets(self) -> list[dict[str, Any]]:
        """Values of the loss's own options that the samples go through (bounds included)."""
        return [{}]

    def option_errors(self) -> list[tuple[dict[str, Any], str, str]]:
        """(options, field, note): values of the loss's own options that must be refused."""
        return []

    # -- the Loss protocol ----------------------------------------------------------------------

    def prepare(self, params: P, dtype: str) -> Prepared:
        x = floating(params.input, dtype)
        y = floating(params.target, dtype)
        broadcast_shape(("input", x.shape), ("target", y.shape))
        arrays: dict[str, Any] = {"input": x, "target": y}
        w = _weight(params)
        if w is not None:
            require_shape(
                w, "weight", x.shape, "torch requires the weight to have the input's shape"
            )
            arrays["weight"] = floating(w, dtype)
        return Prepared(arrays=arrays, floating=frozenset(arrays), scale=scale_of(x, y))

    def torch_loss(self, params: P, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Torch's function, called so that it does not warn.

        When the shapes differ torch emits a UserWarning, and Python's warning filters are
        process-wide (silencing them per request is not thread-safe). So the service broadcasts
        first, as torch does inside the function, and reports the mismatch as a service warning.
        With a weight and a target that broadcasts the losses beyond the input's shape, the
        weighted mean is torch's own ``Σ(ℓ·w) / Σw`` with Σw over the input-shaped weight."""
        fn = getattr(torch.nn.functional, self.name)
        kwargs = params.torch_kwargs(self.tensor_inputs)
        x, y = tensors["input"], tensors["target"]
        w = tensors.get("weight")
        weight = {} if w is None else {"weight": w}
        if x.shape == y.shape:
            return fn(x, y, **kwargs, **weight)  # type: ignore[no-any-return]
        shape = tuple(np.broadcast_shapes(tuple(x.shape), tuple(y.shape)))
        xb, yb = x.expand(shape), y.expand(shape)
        if w is None or xb.shape == x.shape:
            return fn(xb, yb, **kwargs, **weight)  # type: ignore[no-any-return]
        wb = w.expand(xb.shape)
        if self.mean_over_weights and params.reduction == "mean":
            total: torch.Tensor = fn(xb, yb, **(kwargs | {"reduction": "sum"}), weight=wb)
            return total / w.sum()
        return fn(xb, yb, **kwargs, weight=wb)  # type: ignore[no-any-return]

    @ieee_quiet
    def reference(self, params: P, prep: Prepared, include: frozenset[str]) -> Reference:
        x, y = prep.arrays["input"], prep.arrays["target"]
        xb, yb = np.broadcast_arrays(x, y)
        d = xb - yb
        unweighted = self.elementwise(d, params)
        w = prep.arrays.get("weight")
        breakdown: dict[str, npt.NDArray[Any]] = {"difference": d}
        if w is None:
            wb: F64 | float = 1.0
            losses = unweighted
            denominator = float(d.size)
        else:
            wb = np.broadcast_to(w, d.shape).copy()
            losses = unweighted * wb
            denominator = float(w.sum()) if self.mean_over_weights else float(d.size)
            breakdown |= {"unweighted": unweighted, "weight": wb}
        breakdown |= self.zones(d, params)
        ref = Reference.reduced(losses, params.reduction, denominator, breakdown)
        if "grad" in include:
            mean = params.reduction == "mean"
            g = grad_scale(params.reduction, denominator)
            through = g * wb * self.derivative(d, params)
            ref.grads["input"] = sum_to_shape(through, x.shape)
            ref.grads["target"] = sum_to_shape(-through, y.shape)
            if w is not None:
                gw = sum_to_shape(g * unweighted, w.shape)
                if mean and self.mean_over_weights:
                    gw = gw - np.float64(ref.value) / np.float64(denominator)
                ref.grads["weight"] = gw
        return ref

    @ieee_quiet
    def warnings(self, params: P, prep: Prepared) -> list[LossWarning]:
        out: list[LossWarning] = []
        x_shape, y_shape = params.input.shape, params.target.shape
        b_shape = tuple(np.broadcast_shapes(x_shape, y_shape))
        if x_shape != y_shape:
            out.append(broadcast_mismatch_warning(x_shape, y_shape))
        w = _weight(params)
        if w is None:
            return out
        negative = negative_weight_warning(w)
        if negative is not None:
            out.append(negative)
        if params.reduction != "mean":
            return out
        if not self.mean_over_weights:
            out.append(
                LossWarning(
                    "weighted_mean_divides_by_count",
                    f"{self.name} with a weight: 'mean' divides Σ(weight·loss) by the number of "
                    "elements, not by Σ weight as mse_loss and l1_loss do.",
                )
            )
        elif b_shape != x_shape:
            ratio = int(np.prod(b_shape)) // max(1, int(np.prod(x_shape)))
            out.append(
                LossWarning(
                    "weighted_mean_over_broadcast",
                    f"the target broadcasts the losses to {shape_str(b_shape)}, but 'mean' "
                    f"divides by Σ weight over the input's {shape_str(x_shape)}: the result is "
                    f"{ratio} times the weighted mean of the broadcast losses.",
                    {"ratio": ratio},
                )
            )
        return out

    def example(self) -> dict[str, Any]:
        return {
            "input": [[0.5, 1.5, -2.0], [3.0, 0.0, 1.0]],
            "target": [[0.0, 2.0, -1.0], [2.5, 0.5, 1.0]],
        }

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "example")

        def arr(shape: tuple[int, ...], scale: float = 1.0) -> Any:
            return (rng.standard_normal(shape) * scale).tolist()

        def weight(shape: tuple[int, ...]) -> Any:
            return rng.uniform(0.0, 2.0, shape).tolist()

        shapes: list[tuple[int, ...]] = [(), (5,), (3, 4), (2, 3, 2), (2, 1, 3, 2)]
        for shape in shapes:
            for reduction in REDUCTIONS:
                body = {"input": arr(shape), "target": arr(shape), "reduction": reduction}
                yield Sample(body, f"rank {len(shape)} {reduction}")
                if self.weighted:
                    yield Sample(body | {"weight": weight(shape)}, f"weighted rank {len(shape)}")
        for scale in (1e-6, 1e-3, 1e3, 1e15):
            for reduction in REDUCTIONS:
                body = {"input": arr((4, 3), scale), "target": arr((4, 3), scale)}
                yield Sample(body | {"reduction": reduction}, f"scale {scale:g} {reduction}")
        for options in self.option_sets():
            for reduction in REDUCTIONS:
                x = rng.standard_normal((3, 5)) * 2
                body = {"input": x.tolist(), "target": np.round(x, 0).tolist()}
                yield Sample(body | options | {"reduction": reduction}, f"{options} {reduction}")
        broadcasts: list[tuple[tuple[int, ...], tuple[int, ...], str]] = [
            ((3, 4), (4,), "target broadcast over rows"),
            ((3, 1), (1, 4), "outer broadcast"),
            ((4, 1), (4,), "the (N, 1) against (N) mistake"),
            ((), (3,), "scalar input"),
            ((2, 3), (), "scalar target"),
        ]
        for x_shape, y_shape, note in broadcasts:
            for reduction in REDUCTIONS:
                body = {"input": arr(x_shape), "target": arr(y_shape), "reduction": reduction}
                yield Sample(body, f"{note} {reduction}")
                if self.weighted:
                    yield Sample(body | {"weight": weight(x_shape)}, f"weighted {note} {reduction}")
        x = rng.standard_normal((2, 4))
        exact = np.where(rng.random((2, 4)) < 0.5, x, x + 1.0)
        for reduction in REDUCTIONS:
            base = {"input": x.tolist(), "target": exact.tolist(), "reduction": reduction}
            yield Sample(base, f"zero differences (the kink of |d|) {reduction}")
            yield Sample(
                {"input": [[1, 2], [3, 4]], "target": [[1, 0], [5, 4]], "reduction": reduction},
                f"integers {reduction}",
            )
            yield Sample({"input": [], "target": [], "reduction": reduction}, f"empty {reduction}")
            yield Sample(
                {"input": np.zeros((2, 0)).tolist(), "target": [], "reduction": reduction},
                f"empty 2-d, broadcast target {reduction}",
            )
            if self.weighted:
                yield Sample(
                    base | {"weight": np.zeros((2, 4)).tolist()}, f"all weights zero {reduction}"
                )
                yield Sample(
                    {"input": [], "target": [], "weight": [], "reduction": reduction},
                    f"empty weighted {reduction}",
                )

    def error_samples(self) -> Iterator[ErrorSample]:
        ok: dict[str, Any] = {"input": [[0.5, 1.5], [2.0, 0.0]], "target": [[0.0, 2.0], [2.5, 0.5]]}
        yield ErrorSample(ok | {"target": [1.0, 2.0, 3.0]}, "target", "does not broadcast")
        yield ErrorSample(ok | {"target": [[[1.0], [2.0], [3.0]]]}, "target", "rank 3 mismatch")
        yield ErrorSample({"target": [1.0]}, "input", "missing input")
        yield ErrorSample({"input": [1.0]}, "target", "missing target")
        yield ErrorSample(ok | {"reduction": "batchmean"}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"size_average": True}, "size_average", "deprecated argument")
        yield ErrorSample(ok | {"reduce": False}, "reduce", "deprecated argument")
        yield ErrorSample(ok | {"input": [[0.5, 1.5], [2.0]]}, "input", "ragged")
        yield ErrorSample(ok | {"target": [[0.5, "x"], [2.0, 1.0]]}, "target", "not a number")
        yield ErrorSample(ok | {"dtype": "float8"}, "dtype", "unknown dtype")
        if self.weighted:
            yield ErrorSample(
                ok | {"weight": [1.0, 2.0]}, "weight", "weight broadcasts but torch refuses"
            )
            yield ErrorSample(
                ok | {"weight": [[1.0, 2.0, 3.0]]}, "weight", "weight of another shape"
            )
            yield ErrorSample(
                {"input": [[1.0], [2.0]], "target": [[1.0, 2.0]], "weight": [[1.0, 1.0]]},
                "weight",
                "weight of the broadcast shape, not the input's",
            )
            yield ErrorSample(ok | {"weight": [[1.0, True], [1.0, 1.0]]}, "weight", "boolean")
        else:
            yield ErrorSample(
                ok | {"weight": [[1.0, 1.0], [1.0, 1.0]]}, "weight", "takes no weight"
            )
        for options, field, note in self.option_errors():
            yield ErrorSample(ok | options, field, note)


@register
class MSELoss(PointwiseLoss[MSELossParams]):
    name = "mse_loss"
    module = "MSELoss"
    warning_codes = frozenset(
        {
            "negative_weight",
            "shape_mismatch_broadcast",
            "weighted_mean_over_broadcast",
        }
    )
    inline = True  # linear in the elements, no Python loop over them
    summary = "Mean squared error, optionally weighted element-wise."
    formula = "loss = w·(input - target)²; weighted mean = Σ(w·loss)/Σw"
    params_model = MSELossParams
    tensor_inputs = ("input", "target", "weight")

    def elementwise(self, d: F64, params: MSELossParams) -> F64:
        return d * d

    def derivative(self, d: F64, params: MSELossParams) -> F64:
        return 2.0 * d


@register
class L1Loss(PointwiseLoss[L1LossParams]):
    name = "l1_loss"
    module = "L1Loss"
    warning_codes = frozenset(
        {
            "negative_weight",
            "shape_mismatch_broadcast",
            "weighted_mean_over_broadcast",
        }
    )
    inline = True  # linear in the elements, no Python loop over them
    summary = "Mean absolute error, optionally weighted element-wise."
    formula = "loss = w·|input - target|; weighted mean = Σ(w·loss)/Σw"
    params_model = L1LossParams
    tensor_inputs = ("input", "target", "weight")

    def elementwise(self, d: F64, params: L1LossParams) -> F64:
        return np.abs(d)

    def derivative(self, d: F64, params: L1LossParams) -> F64:
        return torch_sign(d)


@register
class SmoothL1Loss(PointwiseLoss[SmoothL1LossParams]):
    name = "smooth_l1_loss"
    module = "SmoothL1Loss"
    warning_codes = frozenset({"shape_mismatch_broadcast"})
    inline = True  # linear in the elements, no Python loop over them
    summary = "Squared error below beta, absolute error above it (beta = 0 is l1_loss)."
    formula = "d = input - target; loss = 0.5·d²/β if |d| < β else |d| - 0.5·β"
    params_model = SmoothL1LossParams
    tensor_inputs = ("input", "target")
    differentiable = ("input", "target")
    weighted = False

    def elementwise(self, d: F64, params: SmoothL1LossParams) -> F64:
        beta = params.beta
        z = np.abs(d)
        if beta == 0.0:
            return z
        return np.where(z < beta, 0.5 * d * d / beta, z - 0.5 * beta)

    def derivative(self, d: F64, params: SmoothL1LossParams) -> F64:
        if params.beta == 0.0:
            return torch_sign(d)
        return np.clip(d / params.beta, -1.0, 1.0)

    def zones(self, d: F64, params: SmoothL1LossParams) -> dict[str, npt.NDArray[Any]]:
        return {"quadratic": np.abs(d) < params.beta}

    def option_sets(self) -> list[dict[str, Any]]:
        return [{"beta": 0.0}, {"beta": 1e-6}, {"beta": 0.5}, {"beta": 1.0}, {"beta": 1e3}]

    def option_errors(self) -> list[tuple[dict[str, Any], str, str]]:
        return [
            ({"beta": -0.5}, "beta", "negative beta (torch refuses)"),
            ({"beta": "1"}, "beta", "beta as a string"),
            ({"delta": 1.0}, "delta", "huber's option"),
        ]


@register
class HuberLoss(PointwiseLoss[HuberLossParams]):
    name = "huber_loss"
    module = "HuberLoss"
    warning_codes = frozenset(
        {
            "negative_weight",
            "shape_mismatch_broadcast",
            "weighted_mean_divides_by_count",
        }
    )
    inline = True  # linear in the elements, no Python loop over them
    summary = "Squared error below delta, delta-scaled absolute error above it."
    formula = "d = input - target; loss = w·(0.5·d² if |d| < δ else δ·(|d| - 0.5·δ))"
    params_model = HuberLossParams
    tensor_inputs = ("input", "target", "weight")
    mean_over_weights = False

    def elementwise(self, d: F64, params: HuberLossParams) -> F64:
        delta = params.delta
        z = np.abs(d)
        return np.where(z < delta, 0.5 * d * d, delta * (z - 0.5 * delta))

    def derivative(self, d: F64, params: HuberLossParams) -> F64:
        return np.clip(d, -params.delta, params.delta)

    def zones(self, d: F64, params: HuberLossParams) -> dict[str, npt.NDArray[Any]]:
        return {"quadratic": np.abs(d) < params.delta}

    def option_sets(self) -> list[dict[str, Any]]:
        return [{"delta": 1e-6}, {"delta": 0.5}, {"delta": 1.0}, {"delta": 1e3}]

    def option_errors(self) -> list[tuple[dict[str, Any], str, str]]:
        return [
            ({"delta": 0.0}, "delta", "zero delta (torch refuses)"),
            ({"delta": -1.0}, "delta", "negative delta"),
            ({"beta": 1.0}, "beta", "smooth_l1's option"),
        ]
