"""nll_loss as each library reads the same numbers.

Rows, in this order: ``torch`` (the service's reference for the request),
``cross_entropy_reading``, ``keras``, ``sklearn_log_loss`` and ``on_probabilities``. torch's
nll_loss takes 'input' as log-probabilities and normalises nothing: each element's loss is
-w_y·input[target]. The other rows are what the same numbers give where another call reads
them otherwise. Inputs of shape (N, C, d1, ...) are read with the class axis last, one sample
per element, as Keras takes them; scikit-learn gets them flattened to (M, C).

The algorithms followed (see the README for the versions):
- ``F.cross_entropy``: log_softmax over the classes, then nll_loss; on log-probabilities the
  log_softmax changes nothing, on raw scores it is the step nll_loss leaves out.
- Keras 3 ``SparseCategoricalCrossentropy(from_logits=False)`` on exp(input): each row divided
  by its sum, clipped to [1e-7, 1 - 1e-7]; ``ignore_class`` masks targets out and the mean
  divides by those kept; ``sample_weight = weight[target]`` and the default
  ``sum_over_batch_size`` divides the weighted sum by the number of samples.
- scikit-learn ``log_loss`` on exp(input): refuses values above 1, clips to [eps, 1 - eps]
  (eps = finfo(float64).eps) without renormalising; ``sample_weight`` weighs the mean.
- ``on_probabilities``: nll_loss on exp(input), what torch returns when it is handed
  probabilities where log-probabilities go: -Σ w_y·p_y / Σ w_y.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.conventions import shared
from service.conventions.base import (
    F64,
    KERAS_EPSILON,
    LOGITS,
    SKLEARN_EPSILON,
    Row,
    mean_of,
)
from service.conventions.records import Family, Request
from service.losses.base import I64
from service.losses.common import class_axis, last_axis, log_softmax, logsumexp
from service.losses.nll_loss import NORMALISED_ATOL, NllLossParams

LOG_PROBABILITIES = "log-probabilities"


@dataclass
class Case:
    """The request's numbers with the class axis last, flattened to (M, C)."""

    x: F64
    """(M, C): the input as sent."""
    batch: tuple[int, ...]
    y: I64
    kept: np.ndarray
    """(M,) targets that are not ``ignore_index``."""
    safe: I64
    """(M,) the targets with the ignored ones replaced by class 0 (safe to index with)."""
    w_y: F64
    """(M,) each target's weight, 0 where ignored."""
    weight: F64 | None
    ignore_index: int
    normalised: bool
    """Every row log-sum-exps to 0 (within nll_loss's own tolerance): log-probabilities."""
    x_name: str
    t_name: str
    request: Request

    @property
    def classes(self) -> int:
        return int(self.x.shape[1])

    @property
    def any_ignored(self) -> bool:
        return not bool(self.kept.all())

    @property
    def in_unit_interval(self) -> bool:
        return bool(self.x.size) and bool(self.x.min() >= 0) and bool(self.x.max() <= 1)

    def shaped(self, per: F64) -> F64:
        return per.reshape(self.batch)

    def rerun_on(self, values: F64) -> tuple[float, F64] | None:
        """torch's nll_loss (the service's reference) with ``values`` (M, C) as the input."""
        x = self.request.array("input")
        axis = class_axis(x)
        moved = values.reshape(*self.batch, self.classes)
        ref = self.request.rerun(input=np.moveaxis(moved, -1, axis) if x.ndim > 1 else moved)
        return None if ref is None else (float(ref.value), np.asarray(ref.losses, np.float64))


def case_of(request: Request) -> Case:
    params: NllLossParams = request.params  # type: ignore[assignment]
    x = request.array("input")
    xm = np.asarray(last_axis(x, class_axis(x)), dtype=np.float64)
    batch = xm.shape[:-1]
    flat = xm.reshape(-1, xm.shape[-1])
    y = np.asarray(request.prep.arrays["target"]).reshape(-1)
    kept = y != params.ignore_index
    safe = np.where(kept, y, 0)
    weight = request.array("weight")
    w = None if weight is None else np.asarray(weight, dtype=np.float64)
    w_y = kept.astype(np.float64) if w is None else np.where(kept, w[safe], 0.0)
    lse = logsumexp(flat, axis=-1) if flat.size else np.zeros(0)
    if x.ndim == 1:
        x_name, t_name = "input[None]", "target[None]"
    elif x.ndim == 2:
        x_name, t_name = "input", "target"
    else:
        x_name, t_name = "moveaxis(input, 1, -1)", "target"
    return Case(
        x=flat,
        batch=batch,
        y=y,
        kept=kept,
        safe=safe,
        w_y=w_y,
        weight=w,
        ignore_index=params.ignore_index,
        normalised=not lse.size or bool(np.abs(lse).max() <= NORMALISED_ATOL),
        x_name=x_name,
        t_name=t_name,
        request=request,
    )


FAMILY: Family[Case] = Family(
    "nll_loss",
    case=case_of,
    shared=(
        shared.sum_instead_of_mean,
        shared.mean_over_batch_not_elements,
        shared.weights_not_in_denominator,
    ),
)

_SAME = "Nothing to change: this is torch's convention."
_NOT_LOG_PROBABILITIES = "'input' is not log-probabilities here (its rows do not log-sum-exp to 0)"


def _options(case: Case) -> str:
    out = ", weight=weight" if case.weight is not None else ""
    if case.ignore_index != -100:
        out += f", ignore_index={case.ignore_index}"
    return out


@FAMILY.convention(
    "torch",
    "PyTorch",
    "torch.nn.functional.nll_loss(input, target)",
    reads=LOG_PROBABILITIES,
    fix=_SAME,
)
def torch_row(case: Case, row: Row) -> None:
    row.call = f"torch.nn.functional.nll_loss(input, target{_options(case)})"
    row.fill(case.request.torch_value, case.request.losses)
    row.same = "The request itself: torch reads 'input' as log-probabilities and takes " + (
        "-weight[target]·input[target], its mean divided by the sum of the targets' weights"
        if case.weight is not None
        else "-input[target], averaged over the targets not ignored"
    )


@FAMILY.convention(
    "cross_entropy_reading",
    "PyTorch",
    "torch.nn.functional.cross_entropy(input, target)",
    reads=LOGITS,
    fix="cross_entropy is nll_loss(log_softmax(input)): pass log_softmax(input, dim=1) to "
    "nll_loss (or the same numbers to both) and the two agree.",
)
def cross_entropy_reading(case: Case, row: Row) -> None:
    row.call = f"torch.nn.functional.cross_entropy(input, target{_options(case)})"
    got = case.rerun_on(log_softmax(case.x, axis=-1))
    if got is None:  # pragma: no cover - the request itself was accepted
        row.refuse("torch refuses these inputs")
        return
    row.fill(*got)
    row.same = (
        "Same number as torch: 'input' holds log-probabilities, on which cross_entropy's "
        "log_softmax changes nothing"
    )
    row.reading = (
        "torch's cross_entropy reads 'input' as logits and applies log_softmax first, where "
        f"nll_loss takes the values as they are: {_NOT_LOG_PROBABILITIES}"
    )


def _reading_fix(case: Case, who: str) -> str:
    if case.normalised:
        return (
            f"Nothing to change: on log-probabilities, {who} on exp(input) is torch's "
            "negative log-likelihood (up to its clip)."
        )
    return (
        f"{who} on exp(input) normalises the scores as a softmax would: pass "
        "log_softmax(input, dim=1) to nll_loss and torch gives the same number."
    )


def _keras_fix(case: Case) -> str:
    if case.weight is not None:
        return (
            "Pass reduction='mean_with_sample_weight', so that Keras divides by the sum of the "
            "weights as torch's weighted mean does."
        )
    return _reading_fix(case, "Keras")


def _exp_name(case: Case) -> str:
    return f"torch.exp({case.x_name})"


@FAMILY.convention(
    "keras",
    "Keras 3",
    "keras.losses.SparseCategoricalCrossentropy()(target, torch.exp(input))",
    reads=LOG_PROBABILITIES,
    fix=_keras_fix,
)
def keras(case: Case, row: Row) -> None:
    ignore = case.any_ignored
    opts = f"ignore_class={case.ignore_index}" if ignore else ""
    weights = ", sample_weight=weight[target]" if case.weight is not None else ""
    row.call = (
        f"keras.losses.SparseCategoricalCrossentropy({opts})"
        f"({case.t_name}, {_exp_name(case)}{weights})"
    )
    n = case.y.size
    # ignore_class zeroes the ignored rows (0/0 below, masked out after the log).
    p = np.where(case.kept[:, None], np.exp(case.x), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.clip(p / p.sum(axis=-1, keepdims=True), KERAS_EPSILON, 1 - KERAS_EPSILON)
        per = np.where(case.kept, -np.log(q[np.arange(n), case.safe]), 0.0)
    if case.weight is not None:
        per = per * np.where(case.kept, case.weight[case.safe], 0.0)
    valid = float(case.kept.sum())
    if ignore:
        # apply_mask: kept samples weigh total/valid (0 when none is kept), then / total.
        value = float(np.float64(per.sum()) / valid) if valid else 0.0
    else:
        value = mean_of(per, n) if n else 0.0
    row.fill(value, case.shaped(per))
    row.same = (
        "Same convention as torch: Keras takes -log p[target] of the probabilities exp(input), "
        "renormalised and clipped to [1e-7, 1 - 1e-7]"
    )
    row.reading = (
        "Keras divides each row of exp(input) by its sum and clips it to [1e-7, 1 - 1e-7] before "
        "taking -log p[target], where nll_loss takes -input[target] as it is"
        + ("" if case.normalised else f": {_NOT_LOG_PROBABILITIES}")
    )
    if case.weight is not None:
        row.differences.append(
            "weight becomes sample_weight = weight[target], and Keras's default "
            "sum_over_batch_size divides the weighted sum by the number of samples"
            + (" not ignored" if ignore else "")
            + ", not by the sum of their weights as torch does"
        )
    if not valid and n:
        row.differences.append(
            "every target is ignored: Keras divides by no valid sample without a NaN and answers "
            "0, where torch's mean is 0/0"
        )
    if row.differences and not case.normalised:
        row.differences.insert(0, row.reading)


@FAMILY.convention(
    "sklearn_log_loss",
    "scikit-learn",
    "sklearn.metrics.log_loss(target, torch.exp(input), labels=range(C))",
    reads=LOG_PROBABILITIES,
    fix=lambda case: _reading_fix(case, "log_loss"),
)
def sklearn_log_loss(case: Case, row: Row) -> None:
    x_name = _exp_name(case)
    x_name = x_name if case.x_name == "input" else f"{x_name}.reshape(-1, C)"
    t_name = "target" if case.t_name == "target" and len(case.batch) <= 1 else "target.reshape(-1)"
    if case.any_ignored:
        xs, ts = f"{x_name}[keep]", f"{t_name}[keep]"
    else:
        xs, ts = x_name, t_name
    weights = f", sample_weight=weight[{ts}]" if case.weight is not None else ""
    row.call = f"sklearn.metrics.log_loss({ts}, {xs}{weights}, labels=range(C))"
    if case.any_ignored:
        row.call = f"keep = {t_name} != {case.ignore_index}; " + row.call
    kept = case.kept
    if not kept.any():
        row.refuse(
            "no targets are left once those equal to ignore_index are dropped, and "
            "scikit-learn refuses an empty input"
        )
        return
    with np.errstate(over="ignore"):
        p = np.exp(case.x[kept])
    if p.max() > 1:
        row.refuse(
            f"scikit-learn refuses probabilities greater than 1: exp(input) reaches "
            f"{float(p.max())!r} ('input' holds positive values, so it is not log-probabilities)"
        )
        return
    if case.classes < 2:
        row.refuse("scikit-learn needs at least two labels; the input has one class")
        return
    sw = np.ones(int(kept.sum())) if case.weight is None else case.weight[case.y[kept]]
    if not np.any(sw != 0):
        row.refuse("scikit-learn refuses sample weights that are all zero")
        return
    clipped = np.clip(p, SKLEARN_EPSILON, 1 - SKLEARN_EPSILON)
    loss = -np.log(clipped[np.arange(sw.size), case.y[kept]])
    per = np.zeros(case.y.size)
    per[kept] = loss * sw
    row.fill(float(np.float64((loss * sw).sum()) / np.float64(sw.sum())), case.shaped(per))
    row.same = (
        "Same convention as torch: scikit-learn takes -log p[target] of the probabilities "
        "exp(input), weighted as torch weighs, and its clip to [eps, 1 - eps] does not bind"
    )
    row.reading = (
        "scikit-learn clips the probabilities exp(input) to [eps, 1 - eps] (eps = 2.2e-16) "
        "without renormalising and takes -log p[target]"
        + ("" if case.normalised else f": {_NOT_LOG_PROBABILITIES}")
    )


@FAMILY.convention(
    "on_probabilities",
    "PyTorch",
    "torch.nn.functional.nll_loss(torch.exp(input), target)",
    reads=LOG_PROBABILITIES,
    fix="Pass log-probabilities (log_softmax of the scores, or log of the probabilities) to "
    "nll_loss: it takes -input[target] as it is, so probabilities give -p[target].",
)
def on_probabilities(case: Case, row: Row) -> None:
    row.call = f"torch.nn.functional.nll_loss(torch.exp(input), target{_options(case)})"
    with np.errstate(over="ignore"):
        got = case.rerun_on(np.exp(case.x))
    if got is None:  # pragma: no cover - the request itself was accepted
        row.refuse("torch refuses these inputs")
        return
    row.fill(*got)
    row.reading = (
        "the probabilities exp(input) passed where nll_loss wants log-probabilities: torch "
        "takes -p[target] (between -1 and 0), not -log p[target]"
    )
    if not case.normalised:
        row.differences.append(
            row.reading + f"; {_NOT_LOG_PROBABILITIES}, so exp(input) are not probabilities"
        )


# -- mistakes ------------------------------------------------------------------------------------


@FAMILY.mistake(
    "missing_log_softmax",
    explanation=lambda case: (
        "nll_loss takes 'input' as log-probabilities and these are "
        + ("probabilities" if case.in_unit_interval else "raw scores")
        + " (their rows do not log-sum-exp to 0): torch's number is -input[target] on them, "
        "and the loss of log_softmax(input), as cross_entropy or a library that normalises the "
        "scores computes it, is this."
    ),
    fix="Apply log_softmax(input, dim=1) before nll_loss (or call cross_entropy on the scores): "
    "nll_loss does not normalise, so on raw scores it gives -input[target], which is not a "
    "likelihood.",
    applies=lambda case: not case.normalised and bool(case.kept.any()),
)
def missing_log_softmax(case: Case) -> float | None:
    got = case.rerun_on(log_softmax(case.x, axis=-1))
    return None if got is None else got[0]


@FAMILY.mistake(
    "probabilities_as_logits",
    explanation="Softmax applied twice gives this: the probabilities exp(input) passed to "
    "cross_entropy, which applies log_softmax to them again, where nll_loss takes 'input' as the "
    "log-probabilities it is.",
    fix="Give nll_loss the log-probabilities (or cross_entropy the logits themselves): "
    "probabilities passed to cross_entropy are softmaxed a second time.",
    applies=lambda case: case.normalised and case.classes > 1 and bool(case.kept.any()),
)
def probabilities_as_logits(case: Case) -> float | None:
    with np.errstate(over="ignore"):
        got = case.rerun_on(log_softmax(np.exp(case.x), axis=-1))
    return None if got is None else got[0]


def _textbook_explanation(case: Case) -> str:
    if case.in_unit_interval:
        return (
            "'input' holds probabilities (every value in [0, 1]), not log-probabilities: their "
            "negative log-likelihood -log input[target], clipped to [eps, 1 - eps] as "
            "scikit-learn's log_loss clips them, is this, where nll_loss takes -input[target]."
        )
    return (
        "The textbook -log input[target] on the raw scores, clipped to [eps, 1 - eps] as "
        "scikit-learn clips probabilities (eps = 2.2e-16), gives this: scores read as "
        "probabilities."
    )


@FAMILY.mistake(
    "logits_as_probabilities",
    explanation=_textbook_explanation,
    fix="nll_loss takes log-probabilities: pass log(probabilities), or log_softmax(scores, "
    "dim=1), and torch's number is the negative log-likelihood.",
    applies=lambda case: not case.normalised and bool(case.kept.any()),
)
def logits_as_probabilities(case: Case) -> float:
    kept = case.kept
    p = np.clip(case.x[kept, case.y[kept]], SKLEARN_EPSILON, 1 - SKLEARN_EPSILON)
    w = case.w_y[kept]
    return float(np.float64((-np.log(p) * w).sum()) / np.float64(w.sum()))
