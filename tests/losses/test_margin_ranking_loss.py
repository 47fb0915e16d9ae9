"""margin_ranking_loss beyond the generated cases: the target warning, and the gradient with
respect to the target (torch differentiates it too), checked by the data plane against torch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.dataplane import Dataplane
from service.losses.margin_ranking_loss import MarginRankingLoss

LOSS = MarginRankingLoss()

BASE = {"input1": [0.5, -1.0, 2.0, 0.1], "input2": [0.2, 0.3, 2.5, 0.1], "margin": 0.25}


@pytest.mark.parametrize(
    ("target", "expect"),
    [([1, -1, -1, 1], None), ([1, 0, 0, 1], "2·y - 1"), ([0.5, -1, 1, 3], "scales")],
    ids=["plus-minus one", "0/1 labels", "real values"],
)
def test_target_warning(dataplane: Dataplane, target: list[Any], expect: str | None) -> None:
    got = dataplane.compute(LOSS, BASE | {"target": target})
    warnings = {w["code"]: w for w in got["warnings"]}
    if expect is None:
        assert not warnings
    else:
        assert expect in warnings["target_values"]["message"]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gradients_agree_with_torch(dataplane: Dataplane, reduction: str) -> None:
    body = {
        "input1": [[0.4, 0.1, -0.3, 1.2]],
        "input2": [[0.2], [0.9]],
        "target": [[1, -1, 0.5, 1]],
        "reduction": reduction,
        "include": ["grad"],
        "dtype": "float64",
    }
    got = dataplane.compute(LOSS, body)
    assert set(got["extras"]["grad"]) == {"input1", "input2", "target"}
    assert all(g["agrees"] for g in got["reference"]["grad"].values()), got["reference"]["grad"]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gradient_of_an_empty_batch(dataplane: Dataplane, reduction: str) -> None:
    """The mean over nothing is NaN; its gradient is empty, not a division by zero."""
    body = {"input1": [], "input2": [], "target": [], "reduction": reduction, "include": ["grad"]}
    got = dataplane.compute(LOSS, body)
    assert got["reference"]["agrees"]
    assert all(np.shape(g) == (0,) for g in got["extras"]["grad"].values())
