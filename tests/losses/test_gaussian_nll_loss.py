"""gaussian_nll_loss specifics: torch's size rule for var, the number form, the clamp."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from service.dataplane import Dataplane
from service.losses import registry
from tests.losses.parity import codes, f64, service_refuses, torch_refuses

GAUSS = registry.require("gaussian_nll_loss")

VAR_SHAPES = [
    ((2, 3), (2, 3)),
    ((2, 3), (2,)),
    ((2, 3), (2, 1)),
    ((2, 3), (1, 3)),
    ((2, 3), (1, 1)),
    ((2, 3), (3,)),
    ((2, 3), (2, 3, 1)),
    ((2, 3), (1,)),
    ((4, 3, 2), (4, 1, 2)),
    ((4, 3, 2), (4, 3)),
    ((4, 3, 2), (1, 3, 2)),
    ((4, 3, 2), (4, 3, 1)),
    ((4, 3, 2), (4, 1, 1)),
    ((3,), (1,)),
    ((3,), (3,)),
    ((1,), (3,)),
    ((2, 3), (2, 2)),
    ((2, 1), (2, 0)),
]


@pytest.mark.parametrize(("shape", "var_shape"), VAR_SHAPES)
def test_var_size_rules_are_torchs(
    dataplane: Dataplane, shape: tuple[int, ...], var_shape: tuple[int, ...]
) -> None:
    x = torch.randn(shape, dtype=torch.float64)
    y = torch.randn(shape, dtype=torch.float64)
    var = torch.rand(var_shape, dtype=torch.float64) + 0.1
    body = {"input": x.tolist(), "target": y.tolist(), "var": var.tolist(), "reduction": "none"}
    refused = service_refuses(dataplane, GAUSS, body)
    assert (refused is not None) == torch_refuses(lambda: F.gaussian_nll_loss(x, y, var))
    assert refused in (None, "var")
    if refused is None:
        out = dataplane.compute(GAUSS, body | {"dtype": "float64"})
        expected = F.gaussian_nll_loss(x, y, var, reduction="none")
        np.testing.assert_allclose(out["value"], expected.numpy(), rtol=1e-12)


@pytest.mark.parametrize("var", [0.5, 2, 0])
def test_a_number_is_torchs_float_form(dataplane: Dataplane, var: float) -> None:
    x, y = [[0.5, 1.0], [2.0, -1.0]], [[0.0, 1.5], [2.5, 0.0]]
    out = dataplane.compute(GAUSS, {"input": x, "target": y, "var": var, "dtype": "float64"})
    assert float(out["value"]) == pytest.approx(
        float(F.gaussian_nll_loss(f64(x), f64(y), float(var))), rel=1e-12
    )
    assert out["var_form"] == "scalar"
    assert ("var_clamped" in codes(out)) == (var == 0)


def test_negative_variances_are_refused_as_torch_refuses(dataplane: Dataplane) -> None:
    for var in (-1.0, [-1.0, 1.0]):
        tvar = var if isinstance(var, float) else f64(var)
        assert torch_refuses(lambda: F.gaussian_nll_loss(f64([1.0, 2.0]), f64([1.0, 2.0]), tvar))  # noqa: B023
        body = {"input": [1.0, 2.0], "target": [1.0, 2.0], "var": var}
        assert service_refuses(dataplane, GAUSS, body) == "var"


def test_var_gradient_flows_through_the_clamp(dataplane: Dataplane) -> None:
    x, y, v = [0.5, 1.0, -1.0], [0.0, 1.0, 1.0], [0.0, 1e-9, 0.5]
    body = {"input": x, "target": y, "var": v, "include": ["grad"], "dtype": "float64"}
    out = dataplane.compute(GAUSS, body)
    tv = f64(v).requires_grad_()
    (gv,) = torch.autograd.grad(F.gaussian_nll_loss(f64(x), f64(y), tv), [tv])
    np.testing.assert_allclose(out["extras"]["grad"]["var"], gv.numpy(), rtol=1e-12)
    assert out["reference"]["grad"]["var"]["agrees"]
    assert "var_clamped" in codes(out)


def test_a_target_that_broadcasts_warns_and_matches_torch(dataplane: Dataplane) -> None:
    x, y, v = [[0.5], [1.0], [-1.0]], [0.0, 1.0], [[0.1], [0.2], [0.3]]
    out = dataplane.compute(
        GAUSS, {"input": x, "target": y, "var": v, "reduction": "none", "dtype": "float64"}
    )
    expected = F.gaussian_nll_loss(f64(x), f64(y), f64(v), reduction="none")
    assert out["shape"] == [3, 2]
    np.testing.assert_allclose(out["value"], expected.numpy(), rtol=1e-12)
    assert "shape_mismatch_broadcast" in codes(out)


def test_example_does_not_warn(dataplane: Dataplane) -> None:
    out = dataplane.compute(GAUSS, GAUSS.example())
    assert out["warnings"] == []
    assert out["var_form"] == "per_row"
