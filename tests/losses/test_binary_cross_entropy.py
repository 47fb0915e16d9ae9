"""binary_cross_entropy specifics: torch's clamp, its refusals, and the warnings about both."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from service.dataplane import Dataplane
from service.losses import registry
from tests.losses.parity import (
    SHAPE_PAIRS,
    assert_refuses_as_torch_does,
    codes,
    f64,
    service_refuses,
    torch_refuses,
)

BCE = registry.require("binary_cross_entropy")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_clamp_gives_100_per_element_as_in_torch(dataplane: Dataplane, dtype: str) -> None:
    x, t = [0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0]
    out = dataplane.compute(BCE, {"input": x, "target": t, "reduction": "none", "dtype": dtype})
    expected = F.binary_cross_entropy(f64(x), f64(t), reduction="none")
    np.testing.assert_array_equal(np.asarray(out["value"], dtype=np.float64), expected.numpy())
    assert expected.tolist() == [100.0, 100.0, 0.0, 0.0]
    assert out["reference"]["agrees"]
    assert out["breakdown"]["clamped"].tolist() == [True, True, False, False]
    assert "log_clamped" in codes(out)


def test_agreeing_extremes_do_not_warn(dataplane: Dataplane) -> None:
    out = dataplane.compute(BCE, {"input": [0.0, 1.0, 0.3], "target": [0.0, 1.0, 0.5]})
    assert out["warnings"] == []


def test_saturated_inputs_warn(dataplane: Dataplane) -> None:
    out = dataplane.compute(BCE, {"input": [1e-9, 1 - 1e-9], "target": [1.0, 0.0]})
    assert "input_saturated" in codes(out)


def test_gradients_match_autograd_at_the_clamp(dataplane: Dataplane) -> None:
    x, t = [0.0, 1.0, 1e-30, 0.5], [1.0, 0.0, 0.5, 0.25]
    body = {"input": x, "target": t, "dtype": "float64", "include": ["grad"]}
    out = dataplane.compute(BCE, body)
    xs, ts = f64(x).requires_grad_(), f64(t).requires_grad_()
    gx, gt = torch.autograd.grad(F.binary_cross_entropy(xs, ts), [xs, ts])
    np.testing.assert_allclose(out["extras"]["grad"]["input"], gx.numpy(), rtol=1e-12)
    assert out["reference"]["grad"]["input"]["agrees"]
    assert out["reference"]["grad"]["target"]["agrees"]
    assert bool(torch.isinf(gt[:2]).all())


@pytest.mark.parametrize(
    ("x", "t", "field"),
    [
        ([1.5, 0.2], [1.0, 0.0], "input"),
        ([-0.1, 0.2], [1.0, 0.0], "input"),
        ([0.5, 0.2], [1.5, 0.0], "target"),
        ([0.5, 0.2], [-1.0, 0.0], "target"),
    ],
)
def test_values_outside_the_unit_interval_are_refused_as_torch_refuses(
    dataplane: Dataplane, x: list[float], t: list[float], field: str
) -> None:
    assert torch_refuses(lambda: F.binary_cross_entropy(f64(x), f64(t)))
    assert service_refuses(dataplane, BCE, {"input": x, "target": t}) == field


def test_logits_are_refused_with_a_pointer_to_the_logits_loss(dataplane: Dataplane) -> None:
    with pytest.raises(Exception, match="binary_cross_entropy_with_logits"):
        dataplane.compute(BCE, {"input": [2.3, -1.0], "target": [1.0, 0.0]})


@pytest.mark.parametrize(("shape", "other"), SHAPE_PAIRS)
@pytest.mark.parametrize("name", ["weight", "target"])
def test_shape_rules_are_torchs(
    dataplane: Dataplane, shape: tuple[int, ...], other: tuple[int, ...], name: str
) -> None:
    x = torch.rand(shape, dtype=torch.float64)
    t = torch.rand(shape, dtype=torch.float64)
    tensors = {"input": x, "target": t, name: torch.rand(other, dtype=torch.float64)}
    assert_refuses_as_torch_does(dataplane, BCE, tensors, name)
