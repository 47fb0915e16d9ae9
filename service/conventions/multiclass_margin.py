"""multi_margin_loss as each library reads the same class scores.

Rows, in this order: ``torch`` (the service's reference for the request), ``crammer_singer``,
``sklearn``, ``optax`` and ``keras_categorical_hinge``. Torch's multi-class hinge is Weston and
Watkins's: every wrong class whose score comes within ``margin`` of the right one's adds
max(0, margin - x[y] + x[i])^p, and the sum is divided by the number of classes C. The others
are Crammer and Singer's: only the most violating wrong class counts, nothing is divided by C,
and the margin is 1.

The algorithms followed (see the README for the versions):
- ``crammer_singer``: w_y·max(0, margin - x[y] + max_{i≠y} x[i])^p with the request's margin,
  p and weight, averaged over the samples as torch averages.
- scikit-learn ``hinge_loss(y_true, pred_decision, labels=range(C))``: for more than two labels,
  max(0, 1 - (x[y] - max_{i≠y} x[i])), averaged with ``sample_weight`` (divided by its sum);
  for two labels it takes a 1-D decision function and refuses (N, 2) scores.
- optax ``multiclass_hinge_loss(scores, labels)``: max_i(x[i] + 1 - onehot_i) - x[y].
- Keras 3 ``CategoricalHinge`` on one-hot targets: max(neg - pos + 1, 0) with pos = Σ y·x and
  neg = max((1 - y)·x): the max runs over every class, the right one's score zeroed, so it is
  never below 0; ``sample_weight = weight[target]`` and the mean over the samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.conventions import shared
from service.conventions.base import F64, Row, mean_of
from service.conventions.records import Family, Request
from service.losses.base import I64
from service.losses.multiclass_margin import MultiMarginLossParams

SCORES = "scores"


@dataclass
class Case:
    x: F64
    """(N, C) the scores (a vector is one sample, a number one sample of one class)."""
    y: I64
    weight: F64 | None
    p: int
    margin: float
    request: Request

    @property
    def n(self) -> int:
        return int(self.y.size)

    @property
    def classes(self) -> int:
        return int(self.x.shape[1])

    @property
    def onehot(self) -> np.ndarray:
        out: np.ndarray = np.arange(self.classes)[None, :] == self.y[:, None]
        return out

    @property
    def x_y(self) -> F64:
        out: F64 = self.x[np.arange(self.n), self.y]
        return out

    @property
    def w_y(self) -> F64:
        return np.ones(self.n) if self.weight is None else self.weight[self.y]

    @property
    def worst_wrong(self) -> F64:
        """max over the wrong classes of each sample's scores (-inf with one class)."""
        out: F64 = np.where(self.onehot, -np.inf, self.x).max(axis=1)
        return out

    @property
    def unbatched(self) -> bool:
        return bool(self.request.array("input").ndim < 2)

    def shaped(self, per: F64) -> F64:
        return per.reshape(self.request.losses.shape)


def case_of(request: Request) -> Case:
    params: MultiMarginLossParams = request.params  # type: ignore[assignment]
    y = np.asarray(request.prep.arrays["target"]).reshape(-1)
    classes = int(request.prep.facts["classes"])
    weight = request.array("weight")
    return Case(
        x=np.asarray(request.array("input"), dtype=np.float64).reshape(y.size, classes),
        y=y,
        weight=None if weight is None else np.asarray(weight, dtype=np.float64),
        p=int(params.p),
        margin=float(params.margin),
        request=request,
    )


FAMILY: Family[Case] = Family(
    "multi_margin_loss", case=case_of, shared=(shared.sum_instead_of_mean,)
)

_SAME = "Nothing to change: this is torch's convention."
_WESTON_WATKINS = (
    "Sum the hinge over every wrong class and divide by the number of classes, as torch's "
    "multi_margin_loss (Weston-Watkins) does"
)


def _options(case: Case) -> str:
    out = f", p={case.p}" if case.p != 1 else ""
    out += f", margin={case.margin:g}" if case.margin != 1 else ""
    return out + (", weight=weight" if case.weight is not None else "")


def _names(case: Case) -> tuple[str, str]:
    return ("input[None]", "target[None]") if case.unbatched else ("input", "target")


@FAMILY.convention(
    "torch",
    "PyTorch",
    "torch.nn.functional.multi_margin_loss(input, target)",
    reads=SCORES,
    fix=_SAME,
)
def torch_row(case: Case, row: Row) -> None:
    row.call = f"torch.nn.functional.multi_margin_loss(input, target{_options(case)})"
    row.fill(case.request.torch_value, case.request.losses)
    row.same = (
        "The request itself: torch's Weston-Watkins hinge, the sum over the wrong classes of "
        "max(0, margin - x[target] + x[i])^p divided by the number of classes"
    )


def _crammer_singer(case: Case, margin: float, p: int) -> F64:
    """max(0, margin - x[y] + max_{i≠y} x[i])^p per sample (0 with one class)."""
    with np.errstate(invalid="ignore"):
        hinge = np.maximum(margin - case.x_y + case.worst_wrong, 0.0)
    out: F64 = np.where(np.isfinite(case.worst_wrong), hinge, 0.0) ** p
    return out


def _options_left_out(case: Case, row: Row, who: str, *, weight: bool) -> None:
    if case.margin != 1:
        row.differences.append(f"{who} has a margin of 1, not {case.margin:g}")
    if case.p != 1:
        row.differences.append(f"{who} has no squared hinge (p = 2), so it is computed with p = 1")
    if weight and case.weight is not None:
        row.differences.append(f"{who} has no class weight, so it is computed without weight")


def _cs_reading(who: str = "") -> str:
    return (
        f"Crammer-Singer{who}: only the most violating wrong class counts and nothing is divided "
        "by the number of classes, where torch's Weston-Watkins sums over every wrong class and "
        "divides by C"
    )


@FAMILY.convention(
    "crammer_singer",
    "NumPy",
    "numpy.maximum(0, margin - input[arange(N), target] + wrong_scores.max(1)) ** p  # mean",
    reads=SCORES,
    fix=_WESTON_WATKINS + ".",
)
def crammer_singer(case: Case, row: Row) -> None:
    per = case.w_y * _crammer_singer(case, case.margin, case.p)
    row.fill(mean_of(per, case.n), case.shaped(per))
    row.reading = _cs_reading()
    row.same = "Same number as torch for these scores, though the conventions differ: " + (
        _cs_reading()
    )


@FAMILY.convention(
    "sklearn",
    "scikit-learn",
    "sklearn.metrics.hinge_loss(target, input, labels=range(C))",
    reads=SCORES,
    fix=_WESTON_WATKINS
    + ", with torch's margin and p (scikit-learn's are 1), and weigh the mean by the number of "
    "samples rather than by the sum of the weights.",
)
def sklearn(case: Case, row: Row) -> None:
    xs, ts = _names(case)
    weights = f", sample_weight=weight[{ts}]" if case.weight is not None else ""
    row.call = f"sklearn.metrics.hinge_loss({ts}, {xs}{weights}, labels=range(C))"
    if case.classes <= 2:
        row.refuse(
            f"with {case.classes} label(s) scikit-learn's hinge_loss takes a 1-D decision "
            f"function (binary) and refuses scores of shape (N, {case.classes})"
        )
        return
    w = case.w_y
    if not np.any(w != 0):
        row.refuse("scikit-learn refuses sample weights that sum to zero")
        return
    loss = np.maximum(1 - (case.x_y - case.worst_wrong), 0.0)
    row.fill(float(np.average(loss, weights=w)), case.shaped(loss * w))
    row.reading = _cs_reading(" in scikit-learn's multiclass hinge_loss")
    _options_left_out(case, row, "scikit-learn", weight=False)
    if case.weight is not None:
        row.differences.append(
            "weight becomes sample_weight = weight[target], and scikit-learn's mean divides by "
            "the sum of the weights, where torch's divides by the number of samples"
        )
    if row.differences:
        row.differences.insert(0, row.reading)


@FAMILY.convention(
    "optax",
    "optax",
    "optax.losses.multiclass_hinge_loss(input, target).mean()",
    reads=SCORES,
    fix=_WESTON_WATKINS + ", with torch's margin, p and weight.",
)
def optax(case: Case, row: Row) -> None:
    xs, ts = _names(case)
    row.call = f"optax.losses.multiclass_hinge_loss({xs}, {ts}).mean()"
    per = (case.x + 1.0 - case.onehot).max(axis=1) - case.x_y
    row.fill(mean_of(per, case.n), case.shaped(per))
    row.reading = _cs_reading(" in optax's multiclass_hinge_loss")
    _options_left_out(case, row, "optax", weight=True)
    if row.differences:
        row.differences.insert(0, row.reading)


@FAMILY.convention(
    "keras_categorical_hinge",
    "Keras 3",
    "keras.losses.CategoricalHinge()(keras.ops.one_hot(target, C), input)",
    reads=SCORES,
    fix=_WESTON_WATKINS + ", with torch's margin and p.",
)
def keras_categorical_hinge(case: Case, row: Row) -> None:
    xs, ts = _names(case)
    weights = f", sample_weight=weight[{ts}]" if case.weight is not None else ""
    row.call = f"keras.losses.CategoricalHinge()(keras.ops.one_hot({ts}, C), {xs}{weights})"
    onehot = case.onehot.astype(np.float64)
    pos = (onehot * case.x).sum(axis=1)
    neg = ((1.0 - onehot) * case.x).max(axis=1)
    per = np.maximum(neg - pos + 1.0, 0.0) * case.w_y
    row.fill(mean_of(per, case.n), case.shaped(per))
    row.reading = _cs_reading(" in Keras's CategoricalHinge")
    _options_left_out(case, row, "Keras", weight=False)
    below = int(np.count_nonzero(case.worst_wrong < 0))
    if below:
        row.differences.append(
            f"Keras's max over the wrong classes also sees the right class's score zeroed by the "
            f"one-hot mask, so in {below} sample(s) whose wrong scores are all negative it "
            "compares against 0 instead"
        )
    if row.differences:
        row.differences.insert(0, row.reading)
