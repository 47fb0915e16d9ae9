"""Triplet margin loss in a chosen distance: ``F.triplet_margin_with_distance_loss``.

An anchor a should lie closer to its positive p than to its negative n by at least ``margin``,
in the distance d that ``distance_function`` names:

    d_neg = d(a, n), or min(d(a, n), d(p, n)) with ``swap`` (Balntas et al., 2016)
    loss  = max(0, margin + d(a, p) - d_neg)

Torch takes a callable, which JSON cannot carry, so ``distance_function`` is one of

- ``null``: torch's default, ``pairwise_distance`` with its defaults;
- a name, ``"pairwise_distance"`` or ``"cosine_distance"`` (``1 - cosine_similarity``);
- an object naming one with its keyword arguments: ``{"name": "pairwise_distance", "p": 2.0,
  "eps": 1e-6, "keepdim": false}`` or ``{"name": "cosine_distance", "dim": 1, "eps": 1e-8}``
  (torch's defaults when left out).

``pairwise_distance`` is the p-norm over the last dimension of ``x1 - x2 + eps``; the cosine
distance reduces over ``dim`` (see ``service.losses.distances``). The three inputs have the same
number of dimensions (torch checks) and broadcast pairwise inside the distance; the distances
broadcast with each other. ``margin`` must be > 0. ``mean`` divides the sum by the number of
elements of the result (NaN when empty).

Gradient: the loss passes g (1/count for ``mean``) to d(a, p) and -g to d_neg where
margin + d(a, p) - d_neg >= 0 (torch's clamp passes the gradient at the kink); ``minimum`` gives
it to the smaller distance, half to each on a tie; each distance passes it on to its operands.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
from service.losses.broadcasting import Shape, broadcast_shape, sum_to_shape
from service.losses.common import floating, grad_scale, last_axis, require_equal_ranks, scale_of
from service.losses.distances import (
    cosine_similarity,
    cosine_similarity_grads,
    pnorm,
    pnorm_grad,
)
from service.losses.reduction import REDUCTIONS
from service.losses.registry import register

DISTANCES = ("pairwise_distance", "cosine_distance")

#: Each distance's keyword arguments with torch's defaults (``pairwise_distance``'s and
#: ``cosine_similarity``'s).
DEFAULTS: dict[str, dict[str, Any]] = {
    "pairwise_distance": {"p": 2.0, "eps": 1e-6, "keepdim": False},
    "cosine_distance": {"dim": 1, "eps": 1e-8},
}


class DistanceFunction(BaseModel):
    """A distance named with its keyword arguments; those of the other distance are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: Literal["pairwise_distance", "cosine_distance"] = Field(
        description="'pairwise_distance' (torch.pairwise_distance) or 'cosine_distance' "
        "(1 - torch.nn.functional.cosine_similarity)."
    )
    p: float | None = Field(
        default=None, allow_inf_nan=False, description="pairwise_distance: degree of the norm (2)."
    )
    eps: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="pairwise_distance: added to each coordinate difference (1e-6); "
        "cosine_distance: the smallest norm divided by (1e-8).",
    )
    keepdim: bool | None = Field(
        default=None, description="pairwise_distance: keep the reduced dimension (false)."
    )
    dim: int | None = Field(
        default=None, description="cosine_distance: the dimension reduced over (1)."
    )

    @model_validator(mode="after")
    def _own_arguments_only(self) -> DistanceFunction:
        allowed = DEFAULTS[self.name]
        for key in ("p", "eps", "keepdim", "dim"):
            if getattr(self, key) is not None and key not in allowed:
                raise ValueError(
                    f"{self.name} takes no {key!r}; its keyword arguments are "
                    + ", ".join(repr(k) for k in allowed)
                )
        return self


@dataclass(frozen=True)
class Distance:
    """A distance with every keyword argument resolved to its value."""

    name: str
    kwargs: dict[str, Any]

    @classmethod
    def of(cls, spec: DistanceFunction | None) -> Distance:
        if spec is None:
            return cls("pairwise_distance", dict(DEFAULTS["pairwise_distance"]))
        given = {k: getattr(spec, k) for k in DEFAULTS[spec.name] if getattr(spec, k) is not None}
        return cls(spec.name, DEFAULTS[spec.name] | given)

    def torch_callable(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        if self.name == "pairwise_distance":
            return functools.partial(torch.pairwise_distance, **self.kwargs)
        kwargs = self.kwargs

        def cosine_distance(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
            return 1 - torch.nn.functional.cosine_similarity(x1, x2, **kwargs)

        return cosine_distance

    def out_shape(self, operands: Shape) -> Shape:
        """The shape of the distance between operands that broadcast to ``operands``."""
        if not operands:
            return ()
        if self.name == "pairwise_distance":
            return operands[:-1] + ((1,) if self.kwargs["keepdim"] else ())
        axis = self.kwargs["dim"] % len(operands)
        return operands[:axis] + operands[axis + 1 :]

    def compute(self, x1: F64, x2: F64) -> tuple[F64, Callable[[F64], tuple[F64, F64]]]:
        """The distance, and the function taking its upstream gradient to the operands'."""
        s1, s2 = x1.shape, x2.shape
        zero_dim = x1.ndim == 0
        a, b = np.atleast_1d(x1), np.atleast_1d(x2)
        if self.name == "pairwise_distance":
            p, eps = self.kwargs["p"], self.kwargs["eps"]
            u = a - b + eps
            d = pnorm(u, p)
            keep = self.kwargs["keepdim"] and not zero_dim

            def pairwise_grads(up: F64) -> tuple[F64, F64]:
                g_u = (up if keep else up[..., None]) * pnorm_grad(u, d, p)
                return sum_to_shape(g_u, s1), sum_to_shape(-g_u, s2)

            return (d[..., None] if keep else d), pairwise_grads
        axis, eps = self.kwargs["dim"] % a.ndim, self.kwargs["eps"]
        if a.shape != b.shape:
            a, b = np.broadcast_arrays(a, b)
        a, b = last_axis(a, axis), last_axis(b, axis)
        sim = cosine_similarity(a, b, eps)

        def cosine_grads(up: F64) -> tuple[F64, F64]:
            g1, g2 = cosine_similarity_grads(a, b, sim, eps)
            back = (np.moveaxis(-up[..., None] * g, -1, axis) for g in (g1, g2))
            return sum_to_shape(next(back), s1), sum_to_shape(next(back), s2)

        return 1.0 - sim, cosine_grads


def _names_too(schema: dict[str, Any]) -> None:
    """Document the name alone (turned into an object before validation) beside the object."""
    schema.setdefault("anyOf", []).insert(0, {"type": "string", "enum": list(DISTANCES)})


class TripletMarginWithDistanceParams(LossParams):
    anchor: Tensor = Field(description="Anchors, shape (N, D) or (D).")
    positive: Tensor = Field(description="Positives, same number of dimensions as the anchor.")
    negative: Tensor = Field(description="Negatives, same number of dimensions as the anchor.")
    distance_function: DistanceFunction | None = Field(
        default=None,
        description="null (pairwise_distance, torch's default), a distance's name, or an object "
        "naming one with its keyword arguments.",
        json_schema_extra=lambda schema: _names_too(schema),
    )
    margin: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    swap: bool = Field(default=False, description="Use min(d(a, n), d(p, n)) as d_neg.")
    reduction: Reduction = "mean"

    @field_validator("distance_function", mode="before")
    @classmethod
    def _name_alone(cls, value: Any) -> Any:
        """A distance's name alone stands for that distance with torch's defaults."""
        if isinstance(value, str):
            if value not in DISTANCES:
                raise ValueError(
                    f"unknown distance {value!r}; the distances are "
                    + ", ".join(repr(d) for d in DISTANCES)
                )
            return {"name": value}
        return value


@register
class TripletMarginWithDistanceLoss(Loss[TripletMarginWithDistanceParams]):
    name = "triplet_margin_with_distance_loss"
    module = "TripletMarginWithDistanceLoss"
    warning_codes = frozenset({"p_below_one"})
    inline = True  # linear in the elements, no Python loop over them
    summary = "Triplet margin loss in a chosen distance (pairwise p-norm or cosine distance)."
    formula = "loss = max(0, margin + d(a, p) - d(a, n)); d = pairwise_distance or 1 - cos"
    params_model = TripletMarginWithDistanceParams
    tensor_inputs = ("anchor", "positive", "negative")
    differentiable = ("anchor", "positive", "negative")
    nonnegative = True

    def torch_options(self, params: TripletMarginWithDistanceParams) -> dict[str, Any]:
        kwargs = params.torch_kwargs(self.tensor_inputs)
        kwargs["distance_function"] = Distance.of(params.distance_function).torch_callable()
        return kwargs

    def prepare(self, params: TripletMarginWithDistanceParams, dtype: str) -> Prepared:
        a, pos, neg = params.anchor, params.positive, params.negative
        require_equal_ranks(("anchor", a), ("positive", pos), ("negative", neg))
        distance = Distance.of(params.distance_function)
        if distance.name == "cosine_distance":
            rank, dim = max(a.ndim, 1), distance.kwargs["dim"]
            if not -rank <= dim < rank:
                raise InvalidInput.at(
                    "distance_function.dim",
                    f"dimension {dim} is out of range for inputs of rank {a.ndim} "
                    f"(expected {-rank} to {rank - 1})",
                )
        limit = params.limits.max_elements
        pairs = [("positive", "anchor", a, pos), ("negative", "anchor", a, neg)]
        if params.swap:
            pairs.append(("negative", "positive", pos, neg))
        d_shapes: list[tuple[str, Shape]] = []
        for second, first, x1, x2 in pairs:
            shape = broadcast_shape((first, x1.shape), (second, x2.shape), max_elements=limit)
            negative_p = distance.name == "pairwise_distance" and distance.kwargs["p"] < 0
            if negative_p and shape and shape[-1] == 0:
                raise InvalidInput.at(
                    "distance_function.p",
                    f"a negative norm degree ({distance.kwargs['p']}) needs a non-empty "
                    "last dimension",
                )
            d_shapes.append((second, distance.out_shape(shape)))
        broadcast_shape(*d_shapes, max_elements=limit)
        arrays = {k: floating(getattr(params, k), dtype) for k in self.tensor_inputs}
        return Prepared(
            arrays=arrays,
            floating=frozenset(arrays),
            facts={"distance_function": {"name": distance.name, **distance.kwargs}},
            scale=scale_of(*arrays.values(), np.asarray([params.margin])),
        )

    def reference(
        self, params: TripletMarginWithDistanceParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        distance = Distance.of(params.distance_function)
        a, pos, neg = (prep.arrays[k] for k in self.tensor_inputs)
        d_ap, back_ap = distance.compute(a, pos)
        d_an, back_an = distance.compute(a, neg)
        breakdown: dict[str, Any] = {"d_ap": d_ap, "d_an": d_an}
        w_an: F64 | float = 1.0
        if params.swap:
            d_pn, back_pn = distance.compute(pos, neg)
            d_neg = np.minimum(d_an, d_pn)
            w_an = np.where(d_an < d_pn, 1.0, np.where(d_an == d_pn, 0.5, 0.0))
            breakdown |= {"d_pn": d_pn, "d_negative": d_neg, "swapped": d_pn < d_an}
        else:
            d_neg = d_an
        unclamped = params.margin + d_ap - d_neg
        losses: F64 = np.maximum(unclamped, 0.0)
        breakdown["active"] = unclamped >= 0
        shape = losses.shape
        breakdown = {k: np.broadcast_to(v, shape).copy() for k, v in breakdown.items()}
        ref = Reference.reduced(losses, params.reduction, breakdown=breakdown)
        if "grad" in include:
            c = np.where(unclamped >= 0, grad_scale(params.reduction, losses.size), 0.0)
            g_a, g_p = back_ap(sum_to_shape(c, d_ap.shape))
            g_a2, g_n = back_an(sum_to_shape(-c * w_an, d_an.shape))
            grads = {"anchor": g_a + g_a2, "positive": g_p, "negative": g_n}
            if params.swap:
                g_p2, g_n2 = back_pn(sum_to_shape(-c * (1 - w_an), d_pn.shape))
                grads["positive"] = grads["positive"] + g_p2
                grads["negative"] = grads["negative"] + g_n2
            ref.grads = {k: np.asarray(v, dtype=np.float64) for k, v in grads.items()}
        return ref

    def warnings(
        self, params: TripletMarginWithDistanceParams, prep: Prepared
    ) -> list[LossWarning]:
        distance = Distance.of(params.distance_function)
        p = distance.kwargs.get("p", 2.0)
        if p >= 1:
            return []
        detail = (
            "p = 0 counts the non-zero coordinates of the difference: the loss is piecewise "
            "constant and its gradient is 0 everywhere"
            if p == 0
            else f"for p = {p} the p-'norm' breaks the triangle inequality"
        )
        return [
            LossWarning(
                "p_below_one",
                f"the distance is a norm only for p >= 1; {detail}. Torch computes it anyway.",
            )
        ]

    def example(self) -> dict[str, Any]:
        return {
            "anchor": [[0.1, 0.2, 0.3], [1.0, 0.0, -1.0]],
            "positive": [[0.1, 0.25, 0.3], [0.8, 0.1, -0.9]],
            "negative": [[0.9, -0.2, 0.4], [1.1, 0.05, -1.2]],
            "distance_function": "cosine_distance",
            "margin": 0.5,
        }

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "example")
        distances: list[Any] = [
            None,
            "pairwise_distance",
            "cosine_distance",
            {"name": "pairwise_distance", "p": 1.0},
            {"name": "pairwise_distance", "p": 3.0, "eps": 0.0, "keepdim": True},
            {"name": "cosine_distance", "eps": 1e-3},
            {"name": "cosine_distance", "dim": -1},
        ]
        shapes = {
            "batched": ((5, 4), (5, 4), (5, 4)),
            "broadcast positive": ((5, 3), (1, 3), (5, 3)),
            "rank 3": ((2, 3, 4), (2, 3, 4), (2, 3, 4)),
        }
        i = 0
        for scale in (1e-2, 1.0, 1e2):
            for what, (sa, sp, sn) in shapes.items():
                for reduction in REDUCTIONS:
                    for swap in (False, True):
                        dist = distances[i % len(distances)]
                        margin = (1.0, 0.2, 2.5)[i % 3] * (scale if dist is None else 1.0)
                        i += 1
                        yield Sample(
                            {
                                "anchor": (rng.standard_normal(sa) * scale).tolist(),
                                "positive": (rng.standard_normal(sp) * scale).tolist(),
                                "negative": (rng.standard_normal(sn) * scale).tolist(),
                                "distance_function": dist,
                                "margin": margin,
                                "swap": swap,
                                "reduction": reduction,
                            },
                            f"{what} x{scale} {dist} margin {margin:g} swap={swap}",
                        )
        a = rng.standard_normal((4, 3))
        tricky = {
            "unbatched pairwise": {
                "anchor": a[0].tolist(),
                "positive": a[1].tolist(),
                "negative": a[2].tolist(),
                "reduction": "none",
            },
            "unbatched cosine dim 0": {
                "anchor": a[0].tolist(),
                "positive": a[1].tolist(),
                "negative": a[2].tolist(),
                "distance_function": {"name": "cosine_distance", "dim": 0},
            },
            "0-dim pairwise": {"anchor": 0.5, "positive": 0.25, "negative": -1.5},
            "0-dim pairwise keepdim": {
                "anchor": 0.5,
                "positive": 0.25,
                "negative": -1.5,
                "distance_function": {"name": "pairwise_distance", "keepdim": True},
            },
            "cosine over dim 0 of a batch": {
                "anchor": a.tolist(),
                "positive": (a + 0.3).tolist(),
                "negative": (-a).tolist(),
                "distance_function": {"name": "cosine_distance", "dim": 0},
                "reduction": "none",
            },
            "cosine, a zero vector (norm below eps)": {
                "anchor": [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]],
                "positive": [[1.0, 0.0, 0.0], [1.0, 2.0, 2.5]],
                "negative": [[0.0, 1.0, 0.0], [-1.0, 0.5, 3.0]],
                "distance_function": "cosine_distance",
                "margin": 0.1,
            },
            "cosine, swap tie": {
                "anchor": a.tolist(),
                "positive": a.tolist(),
                "negative": (a + 0.5).tolist(),
                "distance_function": "cosine_distance",
                "swap": True,
                "margin": 1.5,
            },
            "pairwise, anchor = positive, swap tie": {
                "anchor": a.tolist(),
                "positive": a.tolist(),
                "negative": (a + 0.5).tolist(),
                "swap": True,
                "margin": 0.3,
            },
            "pairwise broadcast, cosine": {
                "anchor": rng.standard_normal((3, 1, 4)).tolist(),
                "positive": rng.standard_normal((1, 5, 4)).tolist(),
                "negative": rng.standard_normal((3, 5, 4)).tolist(),
                "distance_function": "cosine_distance",
                "reduction": "none",
            },
            "empty batch": {"anchor": [[]], "positive": [[]], "negative": [[]]},
            "p = 0.5 (warned)": {
                "anchor": a.tolist(),
                "positive": (a + 0.1).tolist(),
                "negative": (a - 1.0).tolist(),
                "distance_function": {"name": "pairwise_distance", "p": 0.5},
            },
            "integer embeddings": {
                "anchor": [[1, 2], [3, 4]],
                "positive": [[1, 3], [3, 3]],
                "negative": [[4, 4], [0, 0]],
                "distance_function": {"name": "pairwise_distance", "p": 1},
            },
        }
        for note, body in tricky.items():
            yield Sample(body, note)

    def error_samples(self) -> Iterator[ErrorSample]:
        ok = {"anchor": [[0.1, 0.2]], "positive": [[0.2, 0.2]], "negative": [[0.9, -0.1]]}
        yield ErrorSample(ok | {"margin": 0}, "margin", "margin 0 (torch: must be > 0)")
        yield ErrorSample(ok | {"positive": [0.2, 0.2]}, "positive", "rank differs")
        yield ErrorSample(ok | {"negative": [[[0.9, -0.1]]]}, "negative", "rank differs")
        yield ErrorSample(ok | {"positive": [[0.2, 0.2, 0.3]]}, "positive", "feature mismatch")
        yield ErrorSample(
            ok | {"distance_function": "euclidean"}, "distance_function", "unknown name"
        )
        yield ErrorSample(
            ok | {"distance_function": {"name": "manhattan"}},
            "distance_function.name",
            "unknown name in an object",
        )
        yield ErrorSample(
            ok | {"distance_function": {"p": 1.0}}, "distance_function.name", "no name"
        )
        yield ErrorSample(
            ok | {"distance_function": {"name": "cosine_distance", "p": 1.0}},
            "distance_function",
            "an argument of the other distance",
        )
        yield ErrorSample(
            ok | {"distance_function": {"name": "pairwise_distance", "q": 1.0}},
            "distance_function.q",
            "unknown argument",
        )
        yield ErrorSample(
            ok | {"distance_function": {"name": "pairwise_distance", "p": "2"}},
            "distance_function.p",
            "p as a string",
        )
        yield ErrorSample(ok | {"distance_function": 2}, "distance_function", "a number")
        yield ErrorSample(
            ok | {"distance_function": {"name": "cosine_distance", "dim": 2}},
            "distance_function.dim",
            "dim out of range",
        )
        yield ErrorSample(
            {"anchor": [[]], "positive": [[]], "negative": [[]]}
            | {"distance_function": {"name": "pairwise_distance", "p": -1.0}},
            "distance_function.p",
            "negative p over an empty dimension",
        )
        yield ErrorSample(
            ok | {"positive": [[0.2, 0.2]] * 2, "negative": [[0.9, -0.1]] * 3},
            "negative",
            "distances do not broadcast",
        )
        yield ErrorSample(ok | {"swap": "yes"}, "swap", "swap as a string")
        yield ErrorSample(ok | {"reduction": "max"}, "reduction", "unknown reduction")
        yield ErrorSample({"anchor": [[0.1]], "positive": [[0.2]]}, "negative", "missing")
