"""soft_margin_loss's oracles: torch's soft_margin_loss and binary_cross_entropy_with_logits
called here on the same scores."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tests.conventions.oracles import Body, cases, row
from tests.conventions.oracles.tools import assert_close

SM = "soft_margin_loss"
_rng = np.random.default_rng(47)
CASES: dict[str, Body] = {
    "example": {"input": [0.8, -1.2, 2.5, 0.1], "target": [1, -1, -1, 1]},
    "batch": {
        "input": (_rng.standard_normal((3, 4)) * 2).tolist(),
        "target": _rng.choice([-1, 1], (3, 4)).tolist(),
    },
    "broadcast target": {
        "input": (_rng.standard_normal((3, 4)) * 2).tolist(),
        "target": [[1, -1, -1, 1]],
    },
    "0/1 labels": {"input": _rng.standard_normal(5).tolist(), "target": [1, 0, 0, 1, 0]},
    "large margins": {"input": [40.0, -40.0, 30.0, -1e3], "target": [-1, 1, 1, -1]},
    "rank 3": {
        "input": _rng.standard_normal((2, 3, 2)).tolist(),
        "target": _rng.choice([-1, 1], (2, 3, 2)).tolist(),
    },
    "one element": {"input": 0.7, "target": -1},
}
cases(SM, CASES)


def _tensors(body: Body) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor(np.asarray(body["input"], dtype=np.float64))
    return x, torch.tensor(np.asarray(body["target"], dtype=np.float64)).expand_as(x)


@row(SM, "torch")
def torch_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, y = _tensors(body)
    assert_close(got["value"], F.soft_margin_loss(x, y))
    assert_close(got["per_sample"], F.soft_margin_loss(x, y, reduction="none"))


@row(SM, "bce_with_logits")
def bce_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, y = _tensors(body)
    assert_close(got["value"], F.binary_cross_entropy_with_logits(x, (y + 1) / 2))
    same = bool(((y == 1) | (y == -1)).all())
    assert got["agrees_with_torch"] is same
