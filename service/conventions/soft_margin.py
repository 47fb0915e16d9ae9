"""soft_margin_loss as each library reads the same scores and labels.

Rows, in this order: ``torch`` (the service's reference for the request) and
``bce_with_logits``. soft_margin_loss is the logistic loss of the margin, log(1 + exp(-y·x)) for
labels y ∈ {-1, 1}: the binary cross-entropy of the logits x against the 0/1 labels (y + 1)/2,
which is how ``F.binary_cross_entropy_with_logits`` (and every library's sigmoid cross-entropy
from logits) computes it: (1 - z)·x + log(1 + exp(-x)). The two part only where the labels are
not -1 or 1, and its mistake ``labels_zero_one`` (shared) is the commonest way to get there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.conventions import shared
from service.conventions.base import F64, LOGITS, Row, mean_of, softplus
from service.conventions.records import Family, Request

SCORES = "scores"


@dataclass
class Case:
    x: F64
    y: F64
    """The labels, broadcast to the input's shape."""
    request: Request

    @property
    def odd_labels(self) -> int:
        return int(np.count_nonzero((self.y != 1) & (self.y != -1)))


def case_of(request: Request) -> Case:
    x = np.asarray(request.array("input"), dtype=np.float64)
    y = np.asarray(request.array("target"), dtype=np.float64)
    return Case(x=x, y=np.broadcast_to(y, x.shape), request=request)


FAMILY: Family[Case] = Family(
    "soft_margin_loss",
    case=case_of,
    shared=(
        shared.labels_zero_one,
        shared.sum_instead_of_mean,
        shared.mean_over_batch_not_elements,
    ),
)


@FAMILY.convention(
    "torch",
    "PyTorch",
    "torch.nn.functional.soft_margin_loss(input, target)",
    reads=SCORES,
    fix="Nothing to change: this is torch's convention.",
)
def torch_row(case: Case, row: Row) -> None:
    row.fill(case.request.torch_value, case.request.losses)
    row.same = "The request itself: torch takes log(1 + exp(-target·input)) for labels -1 and 1"


@FAMILY.convention(
    "bce_with_logits",
    "PyTorch",
    "torch.nn.functional.binary_cross_entropy_with_logits(input, (target + 1) / 2)",
    reads=LOGITS,
    fix="Send the labels as -1 and 1 to soft_margin_loss (2·z - 1 from 0/1 labels z), or as 0 "
    "and 1 to binary_cross_entropy_with_logits: the two are then the same loss.",
)
def bce_with_logits(case: Case, row: Row) -> None:
    z = (case.y + 1) / 2
    per = (1 - z) * case.x + softplus(-case.x)
    row.fill(mean_of(per, per.size), per)
    row.same = (
        "The same loss: with z = (target + 1)/2 in {0, 1}, the binary cross-entropy of the logits "
        "(1 - z)·x + log(1 + exp(-x)) is log(1 + exp(-target·x))"
    )
    row.reading = (
        f"(target + 1)/2 maps only the labels -1 and 1 to 0 and 1: the {case.odd_labels} other "
        "targets become soft labels, where soft_margin_loss takes log(1 + exp(-target·input))"
    )
