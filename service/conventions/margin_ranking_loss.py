"""margin_ranking_loss: torch's own row, and the 0/1 labels where torch expects -1/1.

No other library computes this loss under its name; the family exists so that
``POST /v1/diagnose/margin_ranking_loss`` can name ``labels_zero_one`` (the labels of a binary
problem sent as 0/1, where torch reads -1 as the negative class) and the reductions.
"""

from __future__ import annotations

from service.conventions import shared
from service.conventions.base import Row
from service.conventions.records import Family, Request, identity

FAMILY: Family[Request] = Family(
    "margin_ranking_loss",
    case=identity,
    shared=(shared.labels_zero_one, shared.sum_instead_of_mean),
)


@FAMILY.convention(
    "torch",
    "PyTorch",
    "torch.nn.functional.margin_ranking_loss(input1, input2, target)",
    reads="scores",
    fix="Nothing to change: this is torch's convention.",
)
def torch_row(request: Request, row: Row) -> None:
    row.fill(request.torch_value, request.losses)
    row.same = "The request itself, with labels -1 and 1"
