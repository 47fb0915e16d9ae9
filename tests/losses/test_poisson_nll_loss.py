"""poisson_nll_loss specifics: the Stirling term's mask, eps at zero rates, broadcasting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from service.dataplane import Dataplane
from service.losses import registry
from tests.losses.parity import codes, f64, service_refuses, torch_refuses

POISSON = registry.require("poisson_nll_loss")


def test_stirling_term_only_where_the_count_exceeds_one(dataplane: Dataplane) -> None:
    x, k = [0.2, 0.2, 0.2, 0.2], [0.0, 1.0, 1.5, 40.0]
    body = {"input": x, "target": k, "full": True, "reduction": "none", "dtype": "float64"}
    out = dataplane.compute(POISSON, body)
    expected = F.poisson_nll_loss(f64(x), f64(k), full=True, reduction="none")
    np.testing.assert_allclose(out["value"], expected.numpy(), rtol=1e-12)
    stirling = out["breakdown"]["stirling_term"]
    assert stirling[0] == stirling[1] == 0.0
    assert stirling[2] > 0
    assert stirling[3] > 0


@pytest.mark.parametrize("eps", [1e-8, 0.0])
def test_zero_rates_with_and_without_eps(dataplane: Dataplane, eps: float) -> None:
    x, k = [0.0, 0.0], [0.0, 2.0]
    body = {"input": x, "target": k, "log_input": False, "eps": eps, "reduction": "none"}
    out = dataplane.compute(POISSON, body | {"dtype": "float64"})
    expected = F.poisson_nll_loss(f64(x), f64(k), log_input=False, eps=eps, reduction="none")
    np.testing.assert_array_equal(np.asarray(out["value"], dtype=np.float64), expected.numpy())
    assert out["reference"]["agrees"]
    assert ("rate_not_positive" in codes(out)) == (eps == 0.0)


def test_negative_rates_are_nan_as_in_torch_with_a_warning(dataplane: Dataplane) -> None:
    body = {"input": [-1.0, 2.0], "target": [1.0, 2.0], "log_input": False}
    out = dataplane.compute(POISSON, body)
    assert torch.isnan(F.poisson_nll_loss(f64([-1.0, 2.0]), f64([1.0, 2.0]), log_input=False))
    assert np.isnan(float(out["value"]))
    assert "rate_not_positive" in codes(out)


def test_rates_given_as_log_rates_warn(dataplane: Dataplane) -> None:
    out = dataplane.compute(POISSON, {"input": [150.0, 40.0], "target": [150.0, 40.0]})
    assert "input_large_for_log_rate" in codes(out)


def test_negative_counts_warn(dataplane: Dataplane) -> None:
    out = dataplane.compute(POISSON, {"input": [0.5], "target": [-2.0]})
    assert "target_negative" in codes(out)


def test_example_does_not_warn(dataplane: Dataplane) -> None:
    assert dataplane.compute(POISSON, POISSON.example())["warnings"] == []


@pytest.mark.parametrize(
    ("shape", "other"),
    [
        ((2, 3), (3,)),
        ((2, 1), (3,)),
        ((3,), (2, 3)),
        ((2, 3), (2,)),
        ((), (4,)),
        ((2, 3), (3, 2)),
        ((4, 1), (4,)),
    ],
)
def test_shape_rules_are_torchs(
    dataplane: Dataplane, shape: tuple[int, ...], other: tuple[int, ...]
) -> None:
    x = torch.randn(shape, dtype=torch.float64)
    k = torch.randint(0, 5, other).to(torch.float64)
    body = {"input": x.tolist(), "target": k.tolist(), "reduction": "none"}
    refused = service_refuses(dataplane, POISSON, body)
    assert (refused is not None) == torch_refuses(lambda: F.poisson_nll_loss(x, k))
    assert refused in (None, "target")
    if refused is None:
        out = dataplane.compute(POISSON, body)
        assert "shape_mismatch_broadcast" in codes(out)
        assert out["shape"] == list(F.poisson_nll_loss(x, k, reduction="none").shape)
