"""hinge_embedding_loss's and margin_ranking_loss's oracles: torch itself (their only row);
their mistakes are the shared ones (``shared.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.conventions.oracles import Body, cases, row
from tests.conventions.oracles.tools import assert_close, torch_loss

HINGE, RANKING = "hinge_embedding_loss", "margin_ranking_loss"
_rng = np.random.default_rng(41)
_labels = np.where(_rng.random(6) < 0.5, -1, 1)
_labels[:2] = [1, -1]
cases(
    HINGE,
    {
        "example": {"input": [0.3, 1.7, 0.2, 0.9], "target": [1, 1, -1, -1]},
        "distances": {"input": _rng.uniform(0, 2, 6).tolist(), "target": _labels.tolist()},
        "2-d, margin 2": {
            "input": _rng.uniform(0, 3, (2, 3)).tolist(),
            "target": _labels.reshape(2, 3).tolist(),
            "margin": 2.0,
        },
    },
)
cases(
    RANKING,
    {
        "example": {
            "input1": [0.8, 0.2, 0.5],
            "input2": [0.3, 0.6, 0.5],
            "target": [1, -1, 1],
            "margin": 0.1,
        },
        "scores": {
            "input1": _rng.standard_normal(6).tolist(),
            "input2": _rng.standard_normal(6).tolist(),
            "target": _labels.tolist(),
            "margin": 0.5,
        },
    },
)


@row((HINGE, RANKING), "torch")
def torch_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    assert_close(got["value"], torch_loss(loss, body))
