"""Oracles of the mistakes that span families (``service.conventions.shared``), for every loss
that takes them: torch's own loss on the body, reduced or reshaped the way the mistake does."""

from __future__ import annotations

import numpy as np

from tests.conventions.oracles import Body, shared_mistake
from tests.conventions.oracles.tools import torch_loss


@shared_mistake("sum_instead_of_mean")
def sum_instead_of_mean(loss: str, body: Body) -> float:
    return torch_loss(loss, body, reduction="sum")


def _elements(loss: str, body: Body) -> tuple[float, int, int]:
    """torch's sum, the number of element losses and the batch size N."""
    total = torch_loss(loss, body, reduction="sum")
    x = np.asarray(body["input"])
    t = np.asarray(body["target"])
    if loss == "cross_entropy" and t.shape != x.shape:
        shape = t.shape  # one loss per class index
    elif loss == "cross_entropy":
        shape = x.shape[:1] + x.shape[2:]
    else:
        shape = np.broadcast_shapes(x.shape, t.shape)
    return total, int(np.prod(shape)), int(shape[0])


@shared_mistake("mean_over_batch_not_elements")
def mean_over_batch_not_elements(loss: str, body: Body) -> float:
    """The per-sample sum averaged over the batch: .sum() / N."""
    total, _, n = _elements(loss, body)
    return total / n


@shared_mistake("weights_not_in_denominator")
def weights_not_in_denominator(loss: str, body: Body) -> float:
    """(loss * w).mean(): the weighted losses averaged over their number."""
    total, count, _ = _elements(loss, body)
    return total / count


@shared_mistake("broadcast_n1_vs_n")
def broadcast_n1_vs_n(loss: str, body: Body) -> float:
    """What a library that lines up (N, 1) and (N,) gives: the loss on both flattened."""
    flat = {
        k: np.asarray(body[k], dtype=np.float64).reshape(-1)
        for k in ("input", "target", "weight")
        if body.get(k) is not None
    }
    return torch_loss(loss, body, **flat)


@shared_mistake("labels_zero_one")
def labels_zero_one(loss: str, body: Body) -> float:
    """The loss with the negative class sent as 0, as 0/1 labels are."""
    t = np.asarray(body["target"])
    return torch_loss(loss, body, target=np.where(t == -1, 0, t))
