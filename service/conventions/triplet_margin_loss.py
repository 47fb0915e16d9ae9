"""triplet_margin_loss as each library measures the same triplets.

Rows, in this order: ``torch`` (the service's reference for the request) and ``optax``. Both
take max(0, margin + d(a, p) - d(a, n)); they differ in the distance:

- torch's ``pairwise_distance``: (Σ |a - b + eps|^p)^(1/p), eps added to every coordinate of
  the difference, so d(x, x) = eps·D^(1/p); with ``swap`` the negative distance is
  min(d(a, n), d(p, n)).
- optax ``triplet_margin_loss(anchors, positives, negatives, norm_degree, margin, eps)``:
  (Σ (a - b)^p + eps)^(1/p), eps inside the root, so d(x, x) = eps^(1/p), and the differences
  raised to the power p without their absolute value (for p = 2 the same, for an odd p the
  negative ones subtract, for a fractional p they are NaN); it has no swap. The call takes the
  mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.conventions import shared
from service.conventions.base import F64, Row, mean_of
from service.conventions.records import Family, Request
from service.losses.triplet_margin_loss import TripletMarginParams

EMBEDDINGS = "embeddings"


@dataclass
class Case:
    a: F64
    p: F64
    n: F64
    margin: float
    norm: float
    eps: float
    swap: bool
    request: Request


def case_of(request: Request) -> Case:
    params: TripletMarginParams = request.params  # type: ignore[assignment]
    a, p, n = (
        np.asarray(request.array(k), dtype=np.float64) for k in ("anchor", "positive", "negative")
    )
    return Case(
        a=a,
        p=p,
        n=n,
        margin=float(params.margin),
        norm=float(params.p),
        eps=float(params.eps),
        swap=bool(params.swap),
        request=request,
    )


FAMILY: Family[Case] = Family(
    "triplet_margin_loss", case=case_of, shared=(shared.sum_instead_of_mean,)
)


def _options(case: Case, names: tuple[str, str, str, str]) -> str:
    margin, norm, eps, swap = names
    out = f", {margin}={case.margin:g}" if case.margin != 1 else ""
    out += f", {norm}={case.norm:g}" if case.norm != 2 else ""
    out += f", {eps}={case.eps:g}" if case.eps != 1e-6 else ""
    return out + (f", {swap}=True" if case.swap and swap else "")


@FAMILY.convention(
    "torch",
    "PyTorch",
    "torch.nn.functional.triplet_margin_loss(anchor, positive, negative)",
    reads=EMBEDDINGS,
    fix="Nothing to change: this is torch's convention.",
)
def torch_row(case: Case, row: Row) -> None:
    opts = _options(case, ("margin", "p", "eps", "swap"))
    row.call = f"torch.nn.functional.triplet_margin_loss(anchor, positive, negative{opts})"
    row.fill(case.request.torch_value, case.request.losses)
    row.same = (
        "The request itself: torch takes max(0, margin + d(a, p) - d(a, n)) with "
        "d(u, v) = ‖u - v + eps‖_p, eps added to each coordinate of the difference"
    )


def _optax_distance(u: F64, v: F64, norm: float, eps: float) -> F64:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out: F64 = np.power(np.power(u - v, norm).sum(axis=-1) + eps, 1 / norm)
    return out


@FAMILY.convention(
    "optax",
    "optax",
    "optax.losses.triplet_margin_loss(anchor, positive, negative).mean()",
    reads=EMBEDDINGS,
    fix="Add eps to each coordinate of the difference rather than under the root (torch's "
    "pairwise_distance: ‖a - b + eps‖_p), with the absolute value of the differences.",
)
def optax(case: Case, row: Row) -> None:
    opts = _options(case, ("margin", "norm_degree", "eps", ""))
    row.call = f"optax.losses.triplet_margin_loss(anchor, positive, negative{opts}).mean()"
    if case.a.ndim == 0:
        row.refuse("optax sums over axis -1, which 0-dim embeddings do not have")
        return
    if case.norm == 0:
        row.refuse("optax takes the root 1 / norm_degree, which divides by zero for p = 0")
        return
    d_ap = _optax_distance(case.a, case.p, case.norm, case.eps)
    d_an = _optax_distance(case.a, case.n, case.norm, case.eps)
    per = np.maximum(d_ap - d_an + case.margin, 0.0)
    row.fill(mean_of(per, per.size) if per.ndim else float(per), per)
    row.same = (
        "Same number as torch here: moving eps from each coordinate of the difference to under "
        "the root changes the distances by less than 1e-6"
    )
    row.reading = (
        "optax adds eps under the root, (Σ (a - b)^p + eps)^(1/p), where torch adds it to each "
        "coordinate of the difference, (Σ |a - b + eps|^p)^(1/p)"
    )
    if case.norm != round(case.norm) or round(case.norm) % 2:
        row.differences.append(
            row.reading + f"; and optax raises the differences to the power {case.norm:g} "
            "without their absolute value, so negative ones "
            + ("subtract" if case.norm == round(case.norm) else "give NaN")
        )
    if case.swap:
        row.differences.append(
            "optax has no swap: the negative distance is d(a, n), not min(d(a, n), d(p, n))"
        )
