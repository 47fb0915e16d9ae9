"""binary_cross_entropy_with_logits specifics: extreme logits, pos_weight shapes, warnings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from service.dataplane import Dataplane
from service.losses import registry
from tests.losses.parity import SHAPE_PAIRS, assert_refuses_as_torch_does, codes, f64, warning

BCEL = registry.require("binary_cross_entropy_with_logits")


@pytest.mark.parametrize("scale", [1e2, 1e4, 1e30])
def test_extreme_logits_stay_finite_and_match_torch(dataplane: Dataplane, scale: float) -> None:
    x = (np.array([-1.0, 1.0, -1.0, 1.0, 0.5]) * scale).tolist()
    t, pw = [1.0, 0.0, 0.0, 1.0, 0.5], [3.0]
    body = {"input": x, "target": t, "pos_weight": pw, "reduction": "none", "dtype": "float64"}
    out = dataplane.compute(BCEL, body)
    expected = F.binary_cross_entropy_with_logits(
        f64(x), f64(t), pos_weight=f64(pw), reduction="none"
    )
    assert np.all(np.isfinite(out["breakdown"]["loss"]))
    np.testing.assert_allclose(out["value"], expected.numpy(), rtol=1e-12)
    assert out["reference"]["agrees"]


def test_probabilities_warn_with_the_bce_reading(dataplane: Dataplane) -> None:
    p, t = [0.9, 0.2, 0.6], [1.0, 0.0, 1.0]
    out = dataplane.compute(BCEL, {"input": p, "target": t})
    w = warning(out, "input_looks_like_probabilities")
    assert w["probability_reading"] == pytest.approx(float(F.binary_cross_entropy(f64(p), f64(t))))


def test_logits_do_not_warn(dataplane: Dataplane) -> None:
    out = dataplane.compute(BCEL, BCEL.example())
    assert out["warnings"] == []


def test_targets_outside_the_unit_interval_warn_but_compute_as_torch(dataplane: Dataplane) -> None:
    x, t = [0.3, -2.0], [3.0, -1.0]
    out = dataplane.compute(BCEL, {"input": x, "target": t, "dtype": "float64"})
    expected = float(F.binary_cross_entropy_with_logits(f64(x), f64(t)))
    assert float(out["value"]) == pytest.approx(expected, rel=1e-12)
    assert expected < 0
    assert "target_outside_unit_interval" in codes(out)


def test_negative_pos_weight_warns(dataplane: Dataplane) -> None:
    out = dataplane.compute(BCEL, {"input": [0.3], "target": [1.0], "pos_weight": [-1.0]})
    assert "negative_pos_weight" in codes(out)


def test_sigmoid_extra(dataplane: Dataplane) -> None:
    x = [-800.0, 0.0, 2.0]
    out = dataplane.compute(BCEL, {"input": x, "target": [0, 1, 1], "include": ["sigmoid"]})
    np.testing.assert_allclose(out["extras"]["sigmoid"], torch.sigmoid(f64(x)).numpy())


@pytest.mark.parametrize(("shape", "other"), SHAPE_PAIRS)
@pytest.mark.parametrize("name", ["weight", "pos_weight", "target"])
def test_shape_rules_are_torchs(
    dataplane: Dataplane, shape: tuple[int, ...], other: tuple[int, ...], name: str
) -> None:
    tensors = {
        "input": torch.randn(shape, dtype=torch.float64),
        "target": torch.rand(shape, dtype=torch.float64),
        name: torch.rand(other, dtype=torch.float64),
    }
    assert_refuses_as_torch_does(dataplane, BCEL, tensors, name)
