"""Mistakes that span families, declared once on the plain ``Request``.

A family takes the ones that apply to its losses with ``Family(..., shared=(...))``. Each works
from what every loss has: torch's per-element losses and the denominator its mean divides by
(``Request.reference``), or torch's loss itself on other numbers (``Request.value_with``).
"""

from __future__ import annotations

import numpy as np

from service.conventions.records import Request, shared_mistake
from service.losses.common import shape_str


def _denominator(r: Request) -> float:
    d = r.reference.denominator
    return float(r.losses.size) if d is None else float(d)


def _total(r: Request) -> float:
    return float(np.add.reduce(r.losses, axis=None, dtype=np.float64))


def _averages(r: Request) -> bool:
    return r.reduction in ("mean", "batchmean") and r.losses.size > 0


@shared_mistake(
    "sum_instead_of_mean",
    explanation=lambda r: (
        f"Summing the losses instead of averaging them (reduction='sum', or .sum() by hand) "
        f"gives this: {_denominator(r):g} times torch's {r.reduction}."
    ),
    fix=lambda r: (
        f"Divide the sum by {_denominator(r):g}, as torch's reduction={r.reduction!r} does "
        "(or pass that reduction)."
    ),
    applies=_averages,
)
def sum_instead_of_mean(r: Request) -> float:
    return _total(r)


def _per_batch(r: Request) -> bool:
    losses = r.losses
    return (
        r.reduction == "mean"
        and losses.ndim >= 2
        and 0 < losses.shape[0] < losses.size
        and _denominator(r) == losses.size
    )


@shared_mistake(
    "mean_over_batch_not_elements",
    explanation=lambda r: (
        f"Dividing the sum of the losses by the batch size N = {r.losses.shape[0]} instead of "
        f"by the number of elements ({r.losses.size}), as a per-sample sum averaged over the "
        "batch does (.sum(dim=1).mean()), gives this."
    ),
    fix=lambda r: (
        f"Divide by all {r.losses.size} elements (torch's reduction='mean'); torch has no "
        "per-sample sum, so for one use reduction='sum' and divide by N yourself."
    ),
    applies=_per_batch,
)
def mean_over_batch_not_elements(r: Request) -> float:
    return _total(r) / int(r.losses.shape[0])


def _weighted_mean(r: Request) -> bool:
    return (
        r.reduction == "mean"
        and r.array("weight") is not None
        and r.losses.size > 0
        and _denominator(r) != r.losses.size
    )


@shared_mistake(
    "weights_not_in_denominator",
    explanation=lambda r: (
        f"Averaging the weighted losses over their number ({r.losses.size}), as "
        "(loss * w).mean() does, gives this; torch's weighted mean divides by the sum of the "
        f"weights of the targets ({_denominator(r):g})."
    ),
    fix=lambda r: (
        f"Divide the weighted sum by the sum of the targets' weights ({_denominator(r):g}), "
        "not by their number."
    ),
    applies=_weighted_mean,
)
def weights_not_in_denominator(r: Request) -> float:
    return _total(r) / r.losses.size


def _n1_vs_n(r: Request) -> int | None:
    """N when input and target have the shapes (N, 1) and (N,) in either order, N > 1."""
    x, t = getattr(r.params, "input", None), getattr(r.params, "target", None)
    if x is None or t is None:
        return None
    shapes = {tuple(x.shape), tuple(t.shape)}
    for s in shapes:
        if len(s) == 1 and s[0] > 1 and (s[0], 1) in shapes:
            return int(s[0])
    return None


@shared_mistake(
    "broadcast_n1_vs_n",
    explanation=lambda r: (
        f"A library that lines up the shapes {shape_str(r.params.input.shape)} and "  # type: ignore[attr-defined]
        f"{shape_str(r.params.target.shape)} before the loss (Keras, scikit-learn) averages "  # type: ignore[attr-defined]
        f"the {_n1_vs_n(r)} element losses; torch broadcasts them to {_n1_vs_n(r)} x "
        f"{_n1_vs_n(r)} pairs of every input with every target, and averages those."
    ),
    fix=lambda r: (
        "Torch's number pairs every input with every target: give input and target the same "
        "shape (input.squeeze(1), or target.unsqueeze(1)), and torch computes the element "
        "losses too."
    ),
    applies=lambda r: _n1_vs_n(r) is not None,
)
def broadcast_n1_vs_n(r: Request) -> float | None:
    update = {
        k: getattr(r.params, k).reshape(-1)
        for k in ("input", "target", "weight")
        if getattr(r.params, k, None) is not None and getattr(r.params, k).ndim == 2
    }
    return r.value_with(**update)


def _minus_ones(r: Request) -> int:
    t = getattr(r.params, "target", None)
    if t is None or not t.size or not np.isin(t, (-1, 1)).all():
        return 0
    return int(np.count_nonzero(t == -1))


@shared_mistake(
    "labels_zero_one",
    explanation=lambda r: (
        f"Labels 0/1 where torch expects -1/1 give this: the {_minus_ones(r)} targets of "
        "the negative class sent as 0, which the loss does not read as negative."
    ),
    fix="Send the negative class as -1 (2 * y - 1 maps 0/1 labels to -1/1).",
    applies=lambda r: _minus_ones(r) > 0,
)
def labels_zero_one(r: Request) -> float | None:
    t = getattr(r.params, "target")  # noqa: B009 (every loss this applies to has one)
    return r.value_with(target=np.where(t == -1, 0, t))
