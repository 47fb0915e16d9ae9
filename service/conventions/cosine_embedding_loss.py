"""cosine_embedding_loss as each library reads the same pairs.

Rows, in this order: ``torch`` (the service's reference for the request), ``keras``,
``optax`` and ``torchmetrics``. Torch's loss uses the labels: 1 - cos for pairs with y = 1,
max(0, cos - margin) for pairs with y = -1. The other libraries have no labels and no margin:
they score every pair by its cosine, each on its own scale.

The algorithms followed (see the README for the versions):
- torch: cos = x1·x2 / sqrt((|x1|² + ε)(|x2|² + ε)), ε = 1e-12 (a zero vector gives cos 0).
- Keras 3 ``CosineSimilarity(axis=-1)``: -Σ x1/max(|x1|, 1e-7) · x2/max(|x2|, 1e-7) (its
  ``normalize`` multiplies by min(rsqrt(Σx²), 1/epsilon)), then the mean over the pairs.
- optax ``cosine_distance`` (epsilon 0): 1 - Σ x1/|x1| · x2/|x2| (NaN for a zero vector), the
  call's ``.mean()`` over the pairs.
- torchmetrics ``cosine_similarity(preds, target, reduction="sum")``: (N, D) tensors of the same
  shape only; x1·x2 / (|x1|·|x2|) (NaN for a zero vector) summed over the pairs, computed in
  float32 (it calls ``.float()`` on both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.conventions import shared
from service.conventions.base import F64, KERAS_EPSILON, Row, mean_of
from service.conventions.records import Family, Request
from service.losses.cosine_embedding_loss import CosineEmbeddingParams

EMBEDDINGS = "embeddings"


@dataclass
class Case:
    x1: F64
    x2: F64
    y: F64
    margin: float
    request: Request

    @property
    def negatives(self) -> int:
        return int(np.count_nonzero(self.y == -1))

    @property
    def unbatched(self) -> bool:
        return self.x1.ndim == 1


def case_of(request: Request) -> Case:
    params: CosineEmbeddingParams = request.params  # type: ignore[assignment]
    return Case(
        x1=np.asarray(request.array("input1"), dtype=np.float64),
        x2=np.asarray(request.array("input2"), dtype=np.float64),
        y=np.asarray(request.array("target"), dtype=np.float64),
        margin=float(params.margin),
        request=request,
    )


FAMILY: Family[Case] = Family(
    "cosine_embedding_loss",
    case=case_of,
    shared=(shared.labels_zero_one, shared.sum_instead_of_mean),
)

_SAME = "Nothing to change: this is torch's convention."


def _torch_call(case: Case) -> str:
    margin = f", margin={case.margin:g}" if case.margin else ""
    return f"torch.nn.functional.cosine_embedding_loss(input1, input2, target{margin})"


@FAMILY.convention(
    "torch",
    "PyTorch",
    "torch.nn.functional.cosine_embedding_loss(input1, input2, target)",
    reads=EMBEDDINGS,
    fix=_SAME,
)
def torch_row(case: Case, row: Row) -> None:
    row.call = _torch_call(case)
    row.fill(case.request.torch_value, case.request.losses)
    row.same = (
        "The request itself: torch takes 1 - cos for the pairs with target 1 and "
        "max(0, cos - margin) for those with target -1, with 1e-12 added to each squared norm"
    )


def _no_labels(case: Case, row: Row, who: str, scale: str) -> None:
    """The clauses of a row that scores every pair by its cosine, without labels or margin."""
    n = case.negatives
    if n:
        pairs = "the pair with target -1 is" if n == 1 else f"the {n} pairs with target -1 are"
        row.differences.append(
            f"no labels in {who}: {pairs} scored like the others, as if similar"
            + (", and no margin" if case.margin else "")
        )
    row.reading = f"{who} {scale}, without labels or margin"


def _labels_fix(who: str) -> str:
    return (
        f"{who} has no labels or margin: take 1 - cos for the pairs with target 1 and "
        "max(0, cos - margin) for those with target -1, then the mean, to get torch's number."
    )


def _cosines(x1: F64, x2: F64, n1: F64, n2: F64) -> F64:
    """Σ (x1 / n1)·(x2 / n2) over the last axis, the norms given with a trailing axis of 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out: F64 = ((x1 / n1) * (x2 / n2)).sum(axis=-1)
    return out


def _norms(x: F64) -> F64:
    out: F64 = np.sqrt((x * x).sum(axis=-1, keepdims=True))
    return out


def _zero_vectors(case: Case) -> bool:
    return any(x.size and bool((np.abs(x).sum(axis=-1) == 0).any()) for x in (case.x1, case.x2))


@FAMILY.convention(
    "keras",
    "Keras 3",
    "keras.losses.CosineSimilarity(axis=-1)(input1, input2)",
    reads=EMBEDDINGS,
    fix=_labels_fix("Keras's CosineSimilarity"),
)
def keras(case: Case, row: Row) -> None:
    def unit(x: F64) -> F64:
        with np.errstate(divide="ignore"):
            inv = np.minimum(1.0 / np.sqrt((x * x).sum(axis=-1, keepdims=True)), 1 / KERAS_EPSILON)
        out: F64 = x * inv
        return out

    cos = (unit(case.x1) * unit(case.x2)).sum(axis=-1)
    per = -cos
    row.fill(mean_of(per, max(per.size, 1)) if per.ndim else float(per), per)
    _no_labels(case, row, "Keras's CosineSimilarity", "is -cos, between -1 and 1 (-1 at best)")
    row.differences.append(
        "-cos where torch takes 1 - cos, so similar pairs score 1 lower than in torch"
    )


@FAMILY.convention(
    "optax",
    "optax",
    "optax.losses.cosine_distance(input1, input2).mean()",
    reads=EMBEDDINGS,
    fix=_labels_fix("optax's cosine_distance"),
)
def optax(case: Case, row: Row) -> None:
    per = 1.0 - _cosines(case.x1, case.x2, _norms(case.x1), _norms(case.x2))
    row.fill(mean_of(per, max(per.size, 1)) if per.ndim else float(per), per)
    _no_labels(case, row, "optax's cosine_distance", "is 1 - cos for every pair")
    row.same = (
        "Same number as torch: every target is 1, where torch's loss is optax's cosine "
        "distance 1 - cos"
    )
    if _zero_vectors(case):
        row.differences.append(
            "optax's default epsilon 0 divides a zero vector by its norm 0, which gives NaN, "
            "where torch's 1e-12 makes its cosine 0"
        )


@FAMILY.convention(
    "torchmetrics",
    "torchmetrics",
    'torchmetrics.functional.cosine_similarity(input1, input2, reduction="sum")',
    reads=EMBEDDINGS,
    fix=_labels_fix("torchmetrics' cosine_similarity"),
)
def torchmetrics(case: Case, row: Row) -> None:
    if case.unbatched:
        row.call = (
            'torchmetrics.functional.cosine_similarity(input1[None], input2[None], reduction="sum")'
        )
    if case.x1.shape != case.x2.shape:
        row.refuse(
            f"torchmetrics requires input1 and input2 of the same shape; these are "
            f"{list(case.x1.shape)} and {list(case.x2.shape)}, which torch broadcasts"
        )
        return
    x1, x2 = (x[None] if case.unbatched else x for x in (case.x1, case.x2))
    per = _cosines(x1, x2, _norms(x1), _norms(x2))
    row.fill(float(np.float64(per.sum())), per.reshape(case.x1.shape[:-1]))
    row.reading = (
        "a metric, not a loss: torchmetrics' cosine_similarity sums the cosines over the pairs "
        "(higher is better), without labels or margin, in float32"
    )
    if _zero_vectors(case):
        row.differences.append(
            row.reading + "; it divides a zero vector by its norm 0, which gives NaN"
        )
