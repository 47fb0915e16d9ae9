"""kl_div as each library reads the same numbers.

torch's ``kl_div(input, target)`` takes log q as ``input`` and p as ``target`` (log p with
``log_target``), the reverse of the notation KL(p ‖ q); its default ``mean`` divides by the
number of elements, ``batchmean`` by ``input.size(0)`` (the KL divergence per sample). Rows:

- ``torch``: the request as sent (``mean``, ``batchmean`` or ``sum``); ``torch_batchmean``.
- Keras 3 ``KLDivergence()(p, q)`` with q = exp(input): both clipped to [1e-7, 1], the sum over
  the last axis, the mean over the rest (``sum_over_batch_size``).
- optax ``kl_divergence(input, p).mean()``: p·(log p - input) with 0 where p = 0, summed over
  the last axis, averaged over the rest (``kl_divergence_with_log_targets`` for log targets).
- torchmetrics ``kl_divergence(p, q)``: target first, both renormalised to sum to 1 (not with
  ``log_prob``), xlogy(p, p/q) summed over the last axis, the mean over samples; 2-d only.
- SciPy ``rel_entr(p, q).sum() / N``: p·log(p/q), 0 where p = 0 and q ≥ 0, infinite where q = 0
  < p; N = input.shape[0].

The libraries pair input and target elementwise: they get both broadcast to the shape torch's
terms have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.conventions import shared
from service.conventions.base import F64, KERAS_EPSILON, Row, mean_of, xlogy
from service.conventions.records import Family, Request
from service.losses.kl_div import KlDivParams

LOG_PROBABILITIES = "log-probabilities"
PROBABILITIES = "probabilities"


@dataclass
class Case:
    x: F64
    """The input (log q), broadcast with the target."""
    t: F64
    """The target as sent, broadcast."""
    p: F64
    """The target as probabilities: exp(t) with log_target."""
    log_target: bool
    reduction: str
    batch: int
    """input.size(0) (1 for a 0-d input): what batchmean divides by."""
    request: Request

    @property
    def q(self) -> F64:
        out: F64 = np.exp(self.x)
        return out

    @property
    def rows_of_last_axis(self) -> int:
        """How many distributions the last axis holds (the count a per-sample mean takes)."""
        return int(self.x.size // self.x.shape[-1]) if self.x.ndim and self.x.shape[-1] else 1


def case_of(request: Request) -> Case:
    params: KlDivParams = request.params  # type: ignore[assignment]
    x = np.asarray(request.array("input"), dtype=np.float64)
    t = np.asarray(request.array("target"), dtype=np.float64)
    xb, tb = np.broadcast_arrays(x, t)
    p = np.exp(tb) if params.log_target else tb
    return Case(
        x=np.array(xb),
        t=np.array(tb),
        p=np.array(p),
        log_target=params.log_target,
        reduction=params.reduction,
        batch=int(x.shape[0]) if x.ndim else 1,
        request=request,
    )


FAMILY: Family[Case] = Family(
    "kl_div",
    case=case_of,
    reductions=("mean", "batchmean", "sum"),
    shared=(shared.sum_instead_of_mean, shared.broadcast_n1_vs_n),
)

_BATCHMEAN = (
    "Use reduction='batchmean' in torch: it divides the sum by input.size(0), as this does."
)
_SAME = "Nothing to change: this is torch's convention."


def _targets(case: Case) -> str:
    return "exp(target)" if case.log_target else "target"


def _per_sample_sum(terms: F64) -> F64:
    out: F64 = terms.sum(axis=-1) if terms.ndim else terms
    return out


@FAMILY.convention(
    "torch",
    "PyTorch",
    "torch.nn.functional.kl_div(input, target, reduction='batchmean')",
    reads=LOG_PROBABILITIES,
    fix=_SAME,
)
def torch_row(case: Case, row: Row) -> None:
    lt = ", log_target=True" if case.log_target else ""
    row.call = f"torch.nn.functional.kl_div(input, target, reduction={case.reduction!r}{lt})"
    row.fill(case.request.torch_value, case.request.losses)
    divides = {
        "mean": "divides the sum by the number of elements, which is not the KL divergence",
        "batchmean": "divides the sum by input.size(0): the KL divergence per sample",
        "sum": "adds every term",
    }[case.reduction]
    row.same = (
        f"The request itself: torch reads 'input' as log q and 'target' as "
        f"{'log p' if case.log_target else 'p'}, and reduction={case.reduction!r} {divides}"
    )


@FAMILY.convention(
    "torch_batchmean",
    "PyTorch",
    "torch.nn.functional.kl_div(input, target, reduction='batchmean')",
    reads=LOG_PROBABILITIES,
    fix=lambda case: (
        _SAME
        if case.reduction == "batchmean"
        else f"Torch's number here uses reduction={case.reduction!r}; 'batchmean' gives this one."
    ),
)
def torch_batchmean(case: Case, row: Row) -> None:
    lt = ", log_target=True" if case.log_target else ""
    row.call = f"torch.nn.functional.kl_div(input, target, reduction='batchmean'{lt})"
    value = case.request.value_with(reduction="batchmean")
    row.fill(np.nan if value is None else value, case.request.losses)
    row.reading = "the KL divergence per sample: the sum of the terms divided by input.size(0)"
    row.same = "The request's own reduction is batchmean: the KL divergence per sample"


@FAMILY.convention(
    "keras",
    "Keras 3",
    "keras.losses.KLDivergence()(target, exp(input))",
    reads=LOG_PROBABILITIES,
    fix=lambda case: (
        "Keras clips both distributions to [1e-7, 1] and averages the per-sample sums: torch's "
        "reduction='batchmean' on unclipped numbers gives torch's"
        + ("" if case.reduction == "batchmean" else f", not {case.reduction!r}")
        + "."
    ),
)
def keras(case: Case, row: Row) -> None:
    row.call = f"keras.losses.KLDivergence()({_targets(case)}, numpy.exp(input))"
    if not case.x.size:
        row.refuse("Keras returns an empty tensor, not a number, for an empty batch")
        return
    y = np.clip(case.p, KERAS_EPSILON, 1.0)
    q = np.clip(case.q, KERAS_EPSILON, 1.0)
    per = _per_sample_sum(y * np.log(y / q))
    row.fill(mean_of(per, per.size), per)
    row.reading = (
        "Keras takes probabilities for both arguments, clips them to [1e-7, 1], sums over the "
        "last axis and averages over the rest: the KL divergence per sample"
    )
    if case.log_target:
        row.differences.append(
            "Keras has no log_target, so the target is passed as exp(target); " + row.reading
        )


@FAMILY.convention(
    "optax",
    "optax",
    "optax.losses.kl_divergence(input, target).mean()",
    reads=LOG_PROBABILITIES,
    fix=lambda case: (
        _SAME
        if case.reduction == "batchmean" and case.x.ndim == 2
        else "optax sums over the last axis and averages over the rest: torch's "
        "reduction='batchmean' on a 2-d input (N, C) gives the same."
    ),
)
def optax(case: Case, row: Row) -> None:
    if case.log_target:
        row.call = "optax.losses.kl_divergence_with_log_targets(input, target).mean()"
        terms = np.exp(case.t) * (case.t - case.x)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = case.p * (np.where(case.p == 0, 0.0, np.log(case.p)) - case.x)
    per = _per_sample_sum(terms)
    row.fill(mean_of(per, per.size), per)
    row.reading = (
        "optax sums the terms over the last axis and averages the sums: the KL divergence per "
        "distribution of the last axis"
    )
    row.same = "Same number as torch: optax's mean of the per-sample sums is torch's batchmean"


@FAMILY.convention(
    "torchmetrics",
    "torchmetrics",
    "torchmetrics.functional.kl_divergence(target, exp(input))",
    reads=LOG_PROBABILITIES,
    fix="torchmetrics takes the target first and renormalises both distributions: torch's "
    "kl_div(log_softmax(logits), target / target.sum(-1, keepdim=True), "
    "reduction='batchmean') gives the same.",
)
def torchmetrics(case: Case, row: Row) -> None:
    if case.log_target:
        row.call = "torchmetrics.functional.kl_divergence(target, input, log_prob=True)"
    if case.x.ndim != 2:
        row.refuse(
            f"torchmetrics takes 2-d distributions (N, d); these are {case.x.ndim}-d "
            "('Expected both p and q distribution to be 2D')"
        )
        return
    if case.log_target:
        per = (np.exp(case.t) * (case.t - case.x)).sum(axis=-1)
        row.reading = (
            "torchmetrics with log_prob=True takes both as log-probabilities, target first"
        )
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            p = case.p / case.p.sum(axis=-1, keepdims=True)
            q = case.q / case.q.sum(axis=-1, keepdims=True)
            per = xlogy(p, p / q).sum(axis=-1)
        row.reading = (
            "torchmetrics renormalises both distributions to sum to 1 and averages KL(p ‖ q) "
            "over the samples, target first; torch takes them as they are"
        )
    row.fill(mean_of(per, case.x.shape[0]), per)
    row.same = "Same number as torch's batchmean: the distributions already sum to 1"


@FAMILY.convention(
    "scipy",
    "SciPy",
    "scipy.special.rel_entr(target, numpy.exp(input)).sum() / N",
    reads=LOG_PROBABILITIES,
    fix="rel_entr(p, q).sum() / N is torch's reduction='batchmean': compare with that.",
)
def scipy(case: Case, row: Row) -> None:
    row.call = f"scipy.special.rel_entr({_targets(case)}, numpy.exp(input)).sum() / len(input)"
    p, q = case.p, case.q
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(
            (p > 0) & (q > 0),
            p * np.log(p / q),
            np.where((p == 0) & (q >= 0), 0.0, np.inf),
        )
    terms = np.where(np.isnan(p) | np.isnan(q), np.nan, terms)
    row.fill(mean_of(terms, case.batch), terms)
    row.reading = (
        "SciPy's rel_entr takes p·log(p/q) elementwise, infinite where q = 0 < p and for "
        "negative numbers; the sum divided by N is torch's batchmean"
    )
    row.same = "Same number as torch's batchmean"


# -- mistakes ------------------------------------------------------------------------------------


def _lt(case: Case) -> str:
    return "log_target=True" if case.log_target else "log_target=False"


@FAMILY.mistake(
    "kl_mean_not_batchmean",
    explanation=lambda case: (
        f"reduction='mean' (torch's default) gives this: the sum divided by the number of "
        f"elements ({case.x.size}), not by the batch size ({case.batch}), which is not the KL "
        "divergence."
    ),
    fix=lambda case: f"Pass reduction={case.reduction!r} (batchmean is the KL divergence).",
    applies=lambda case: case.reduction != "mean" and case.x.size > 0,
)
def kl_mean_not_batchmean(case: Case) -> float | None:
    return case.request.value_with(reduction="mean")


@FAMILY.mistake(
    "kl_arguments_swapped",
    explanation="The arguments swapped give this: KL(q ‖ p) instead of KL(p ‖ q), as "
    "kl_div(log p, q) computes (the divergence is not symmetric).",
    fix="Pass the model's log-probabilities as input and the reference distribution as "
    "target: kl_div(log q, p) is KL(p ‖ q).",
)
def kl_arguments_swapped(case: Case) -> float | None:
    params: KlDivParams = case.request.params  # type: ignore[assignment]
    x, t = params.input.astype(np.float64), params.target.astype(np.float64)
    if case.log_target:
        return case.request.value_with(input=t, target=x)
    with np.errstate(divide="ignore"):
        return case.request.value_with(input=np.log(t), target=np.exp(x))


@FAMILY.mistake(
    "kl_probabilities_as_input",
    explanation="Probabilities passed as input give this: kl_div reads 'input' as log q, so "
    "q itself in its place (softmax instead of log_softmax) gives another number.",
    fix="Pass log-probabilities as input: log_softmax(logits), or the log of the probabilities.",
)
def kl_probabilities_as_input(case: Case) -> float | None:
    params: KlDivParams = case.request.params  # type: ignore[assignment]
    return case.request.value_with(input=np.exp(params.input.astype(np.float64)))


@FAMILY.mistake(
    "kl_log_target_flipped",
    explanation=lambda case: (
        f"log_target={not case.log_target} gives this: the target read as "
        f"{'probabilities' if case.log_target else 'log-probabilities'}, where it holds "
        f"{'log-probabilities' if case.log_target else 'probabilities'}."
    ),
    fix=lambda case: f"Pass {_lt(case)}, which says what the target holds.",
)
def kl_log_target_flipped(case: Case) -> float | None:
    return case.request.value_with(log_target=not case.log_target)
