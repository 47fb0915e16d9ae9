"""Triplet margin loss: ``torch.nn.functional.triplet_margin_loss``.

An anchor a should lie closer to its positive p than to its negative n by at least ``margin``.
Distances are torch's ``pairwise_distance``: the p-norm over the last dimension of the
difference *plus eps* (eps is added to every coordinate of the difference, not to the norm, so
d(x, x) = eps·D^(1/p) rather than 0):

    d(u, v) = (Σ_i |u_i - v_i + eps|^p)^(1/p)      (p = 0: the count of non-zero terms)
    d_neg   = d(a, n), or min(d(a, n), d(p, n)) with ``swap`` (Balntas et al., 2016)
    loss    = max(0, margin + d(a, p) - d_neg)

Inputs have the same number of dimensions, shape (N, D) for a batch or (D) for one triplet (any
rank works: the norm is over the last dimension). They broadcast pairwise as torch's
subtractions do, then d(a, p) broadcasts with d_neg. ``margin`` must be > 0 (torch checks);
``p`` is any real number (torch's vector norm takes p < 1 and negative p too, though the result
is then no metric; the service warns) and ``eps`` any real number. ``mean`` divides the sum by
the number of elements of the result (NaN when empty).

Gradient: ∂d/∂u_i = sign(u_i)·(|u_i| / d)^(p-1) for the difference u (0 when d = 0, and 0 for
p = 0); the loss passes it where margin + d(a, p) - d_neg >= 0 (torch's clamp passes the
gradient at the kink); with ``swap``, min gives its gradient to the smaller distance, half to
each on a tie, as torch does.
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
from service.losses.broadcasting import broadcast_shape, sum_to_shape
from service.losses.common import floating, grad_scale, require_equal_ranks, scale_of
from service.losses.distances import pnorm, pnorm_grad
from service.losses.reduction import REDUCTIONS
from service.losses.registry import register


class TripletMarginParams(LossParams):
    anchor: Tensor = Field(description="Anchors, shape (N, D) or (D).")
    positive: Tensor = Field(description="Positives, same number of dimensions as the anchor.")
    negative: Tensor = Field(description="Negatives, same number of dimensions as the anchor.")
    margin: float = Field(default=1.0, gt=0.0, allow_inf_nan=False)
    p: float = Field(default=2.0, allow_inf_nan=False, description="Degree of the norm.")
    eps: float = Field(
        default=1e-6, allow_inf_nan=False, description="Added to each coordinate difference."
    )
    swap: bool = Field(default=False, description="Use min(d(a, n), d(p, n)) as d_neg.")
    reduction: Reduction = "mean"


@register
class TripletMarginLoss(Loss[TripletMarginParams]):
    name = "triplet_margin_loss"
    module = "TripletMarginLoss"
    warning_codes = frozenset({"p_below_one"})
    inline = True  # linear in the elements, no Python loop over them
    summary = "Anchor closer to its positive than to its negative by a margin, in the p-norm."
    formula = "loss = max(0, margin + d(a, p) - d(a, n)); d(u, v) = ‖u - v + eps‖_p"
    params_model = TripletMarginParams
    tensor_inputs = ("anchor", "positive", "negative")
    differentiable = ("anchor", "positive", "negative")
    nonnegative = True

    def prepare(self, params: TripletMarginParams, dtype: str) -> Prepared:
        a, pos, neg = params.anchor, params.positive, params.negative
        require_equal_ranks(("anchor", a), ("positive", pos), ("negative", neg))
        limit = params.limits.max_elements
        ap = broadcast_shape(("anchor", a.shape), ("positive", pos.shape), max_elements=limit)
        an = broadcast_shape(("anchor", a.shape), ("negative", neg.shape), max_elements=limit)
        d_shapes = [("positive", ap[:-1]), ("negative", an[:-1])]
        features = [ap[-1:], an[-1:]]
        if params.swap:
            pn = broadcast_shape(
                ("positive", pos.shape), ("negative", neg.shape), max_elements=limit
            )
            d_shapes.append(("negative", pn[:-1]))
            features.append(pn[-1:])
        broadcast_shape(*d_shapes, max_elements=limit)
        if params.p < 0 and any(f == (0,) for f in features):
            raise InvalidInput.at(
                "p", f"a negative norm degree ({params.p}) needs a non-empty last dimension"
            )
        arrays = {k: floating(getattr(params, k), dtype) for k in self.tensor_inputs}
        return Prepared(
            arrays=arrays,
            floating=frozenset(arrays),
            scale=scale_of(*arrays.values(), np.asarray([params.margin, params.eps])),
        )

    def reference(
        self, params: TripletMarginParams, prep: Prepared, include: frozenset[str]
    ) -> Reference:
        # A 0-dim input is one coordinate; the norm over it leaves a 0-dim distance.
        a, pos, neg = (np.atleast_1d(prep.arrays[k]) for k in self.tensor_inputs)
        u_ap, u_an = a - pos + params.eps, a - neg + params.eps
        d_ap, d_an = pnorm(u_ap, params.p), pnorm(u_an, params.p)
        breakdown: dict[str, Any] = {"d_ap": d_ap, "d_an": d_an}
        w_an: F64 | float = 1.0
        if params.swap:
            u_pn = pos - neg + params.eps
            d_pn = pnorm(u_pn, params.p)
            d_neg = np.minimum(d_an, d_pn)
            w_an = np.where(d_an < d_pn, 1.0, np.where(d_an == d_pn, 0.5, 0.0))
            breakdown |= {"d_pn": d_pn, "d_negative": d_neg}
        else:
            d_neg = d_an
        unclamped = params.margin + d_ap - d_neg
        losses: F64 = np.maximum(unclamped, 0.0)
        breakdown["active"] = unclamped >= 0
        shape = losses.shape
        breakdown = {k: np.broadcast_to(v, shape).copy() for k, v in breakdown.items()}
        ref = Reference.reduced(losses, params.reduction, breakdown=breakdown)
        if "grad" in include:
            g = grad_scale(params.reduction, losses.size)
            c = np.where(unclamped >= 0, g, 0.0)
            g_ap = c[..., None] * pnorm_grad(u_ap, d_ap, params.p)
            g_an = (c * w_an)[..., None] * pnorm_grad(u_an, d_an, params.p)
            grads = {"anchor": [g_ap, -g_an], "positive": [-g_ap], "negative": [g_an]}
            if params.swap:
                g_pn = (c * (1 - w_an))[..., None] * pnorm_grad(u_pn, d_pn, params.p)
                grads["positive"].append(-g_pn)
                grads["negative"].append(g_pn)
            for k, parts in grads.items():
                shape_k = prep.arrays[k].shape
                ref.grads[k] = sum(
                    (sum_to_shape(part, shape_k) for part in parts), np.zeros(shape_k)
                )
        return ref

    def warnings(self, params: TripletMarginParams, prep: Prepared) -> list[LossWarning]:
        if params.p >= 1:
            return []
        detail = (
            "p = 0 counts the non-zero coordinates of the difference: the loss is piecewise "
            "constant and its gradient is 0 everywhere"
            if params.p == 0
            else f"for p = {params.p} the p-'norm' breaks the triangle inequality"
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
        }

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "example")
        shapes = {
            "batched": ((5, 4), (5, 4), (5, 4)),
            "unbatched": ((4,), (4,), (4,)),
            "rank 3": ((2, 3, 4), (2, 3, 4), (2, 3, 4)),
            "broadcast positive": ((5, 3), (1, 3), (5, 3)),
            "broadcast anchor": ((1, 3), (4, 3), (4, 3)),
            "empty features": ((3, 0), (3, 0), (3, 0)),
        }
        i = 0
        for scale in (1e-2, 1.0, 1e2):
            for what, (sa, sp, sn) in shapes.items():
                for reduction in REDUCTIONS:
                    for swap in (False, True):
                        p = (1.0, 2.0, 3.0, 1.5)[i % 4]
                        margin = (1.0, 0.2, 5.0)[i % 3] * scale
                        i += 1
                        yield Sample(
                            {
                                "anchor": (rng.standard_normal(sa) * scale).tolist(),
                                "positive": (rng.standard_normal(sp) * scale).tolist(),
                                "negative": (rng.standard_normal(sn) * scale).tolist(),
                                "margin": margin,
                                "p": p,
                                "swap": swap,
                                "reduction": reduction,
                            },
                            f"{what} x{scale} p={p:g} margin {margin:g} swap={swap}",
                        )
        a = rng.standard_normal((4, 3))
        tricky = {
            "0-dim": {"anchor": 0.5, "positive": 0.25, "negative": -1.5},
            "anchor = positive, swap tie": {
                "anchor": a.tolist(),
                "positive": a.tolist(),
                "negative": (a + 0.5).tolist(),
                "swap": True,
                "margin": 0.3,
            },
            "eps 0, margin tiny": {
                "anchor": a.tolist(),
                "positive": (a + rng.standard_normal((4, 3))).tolist(),
                "negative": (a + rng.standard_normal((4, 3))).tolist(),
                "eps": 0.0,
                "margin": 1e-9,
            },
            "eps large": {
                "anchor": a.tolist(),
                "positive": (a * 0.9).tolist(),
                "negative": (-a).tolist(),
                "eps": 0.7,
                "swap": True,
            },
            "p = 0 (warned)": {
                "anchor": a.tolist(),
                "positive": (a * 0.5).tolist(),
                "negative": (a * 2).tolist(),
                "p": 0,
            },
            "p = 0.5 (warned)": {
                "anchor": a.tolist(),
                "positive": (a + 0.1).tolist(),
                "negative": (a - 1.0).tolist(),
                "p": 0.5,
                "reduction": "none",
            },
            "p = -1 (warned)": {
                "anchor": a.tolist(),
                "positive": (a + 0.1).tolist(),
                "negative": (a - 1.0).tolist(),
                "p": -1,
            },
            "pairwise broadcast, swap off": {
                "anchor": rng.standard_normal((3, 1)).tolist(),
                "positive": rng.standard_normal((3, 4)).tolist(),
                "negative": rng.standard_normal((3, 5)).tolist(),
                "reduction": "none",
            },
            "integer embeddings": {
                "anchor": [[1, 2], [3, 4]],
                "positive": [[1, 3], [3, 3]],
                "negative": [[4, 4], [0, 0]],
                "p": 1,
            },
        }
        for note, body in tricky.items():
            yield Sample(body, note)

    def error_samples(self) -> Iterator[ErrorSample]:
        ok = {"anchor": [[0.1, 0.2]], "positive": [[0.2, 0.2]], "negative": [[0.9, -0.1]]}
        yield ErrorSample(ok | {"margin": 0}, "margin", "margin 0 (torch: must be > 0)")
        yield ErrorSample(ok | {"margin": -1.0}, "margin", "negative margin")
        yield ErrorSample(ok | {"positive": [0.2, 0.2]}, "positive", "rank differs")
        yield ErrorSample(ok | {"negative": [[[0.9, -0.1]]]}, "negative", "rank differs")
        yield ErrorSample(ok | {"positive": [[0.2, 0.2, 0.3]]}, "positive", "feature mismatch")
        yield ErrorSample(
            ok | {"positive": [[0.2, 0.2]] * 2, "negative": [[0.9, -0.1]] * 3},
            "negative",
            "distances do not broadcast",
        )
        yield ErrorSample(
            {"anchor": [[0.1]], "positive": [[0.2, 0.3]], "negative": [[0.1, 0.2, 0.3]]}
            | {"swap": True},
            "negative",
            "positive and negative do not broadcast when swapping",
        )
        yield ErrorSample(
            {"anchor": [[]], "positive": [[]], "negative": [[]], "p": -1.0},
            "p",
            "negative p over an empty dimension",
        )
        yield ErrorSample(ok | {"swap": "yes"}, "swap", "swap as a string")
        yield ErrorSample(ok | {"swap": 1}, "swap", "swap as a number")
        yield ErrorSample(ok | {"p": None}, "p", "null p")
        yield ErrorSample(ok | {"eps": "1e-6"}, "eps", "eps as a string")
        yield ErrorSample(ok | {"reduction": "max"}, "reduction", "unknown reduction")
        yield ErrorSample({"anchor": [[0.1]], "positive": [[0.2]]}, "negative", "missing")
