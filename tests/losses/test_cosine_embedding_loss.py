"""cosine_embedding_loss beyond the generated cases: the warnings, and the values torch gives
to targets other than ±1 and to broadcast feature dimensions, checked against torch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch.nn.functional import cosine_embedding_loss

from service.dataplane import Dataplane
from service.losses.cosine_embedding_loss import CosineEmbeddingLoss

LOSS = CosineEmbeddingLoss()

X1 = [[1.0, 0.5, -0.2], [0.3, 0.8, 0.1], [-0.4, 0.2, 0.9]]
X2 = [[0.9, 0.4, 0.0], [-0.5, 0.2, 0.7], [0.1, -0.3, 0.2]]

CASES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "plus-minus one": ({"target": [1, -1, 1]}, set()),
    "0/1 labels": ({"target": [1, 0, 0]}, {"target_values"}),
    "real-valued target": ({"target": [0.5, -1, 2]}, {"target_values"}),
    "margin above 1": ({"target": [1, -1, -1], "margin": 1.5}, {"margin_outside_cosine_range"}),
    "margin below -1": ({"target": [-1, -1, 1], "margin": -2.0}, {"margin_outside_cosine_range"}),
    "zero vector": (
        {"input2": [[0.0, 0.0, 0.0], *X2[1:]], "target": [1, -1, 1]},
        {"zero_vector"},
    ),
    "feature broadcast": (
        {"input1": [[1.0], [-2.0], [0.5]], "target": [1, 1, -1]},
        {"feature_dim_broadcast"},
    ),
}


@pytest.mark.parametrize(("changes", "codes"), CASES.values(), ids=list(CASES))
def test_warnings_and_values(
    dataplane: Dataplane, changes: dict[str, Any], codes: set[str]
) -> None:
    body = {"input1": X1, "input2": X2, "reduction": "none"} | changes
    got = dataplane.compute(LOSS, body | {"dtype": "float64"})
    assert {w["code"] for w in got["warnings"]} == codes
    x1, x2, y = (torch.tensor(body[k], dtype=torch.float64) for k in ("input1", "input2", "target"))
    want = cosine_embedding_loss(x1, x2, y, margin=body.get("margin", 0.0), reduction="none")
    np.testing.assert_allclose(got["value"], want.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got["breakdown"]["loss"], want.numpy(), rtol=1e-12, atol=1e-15)


def test_feature_broadcast_can_give_a_negative_loss(dataplane: Dataplane) -> None:
    """x1 stretched in the dot product but not in its norm: 'cos' exceeds 1, as in torch."""
    body = {"input1": [[3.0]], "input2": [[1.0, 1.0, 1.0]], "target": [1], "dtype": "float64"}
    got = dataplane.compute(LOSS, body)
    assert got["breakdown"]["cosine"][0] == pytest.approx(np.sqrt(3), rel=1e-9)
    assert float(got["value"]) < 0
    assert got["reference"]["agrees"]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gradient_of_an_empty_batch(dataplane: Dataplane, reduction: str) -> None:
    """(0, D) inputs cannot be written in JSON but arrive as binary tensors: the mean over
    nothing is NaN and its gradient empty, not a division by zero."""
    empty = np.zeros((0, 3))
    body = {"input1": empty, "input2": empty, "target": np.zeros(0), "reduction": reduction}
    got = dataplane.compute(LOSS, body | {"include": ["grad"]})
    assert got["reference"]["agrees"]
    assert all(np.shape(g) == (0, 3) for g in got["extras"]["grad"].values())
