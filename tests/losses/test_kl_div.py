"""kl_div specifics: torch's deprecated 'mean' without its Python warning, batchmean's divisor,
broadcasting, and the warnings about the usual mix-ups."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from service.dataplane import Dataplane
from service.losses import registry
from tests.losses.parity import codes, f64, service_refuses, torch_refuses, warning

KL = registry.require("kl_div")


def torch_kl(x: Any, t: Any, **kwargs: Any) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out: torch.Tensor = F.kl_div(f64(x), f64(t), **kwargs)
    return out


@pytest.mark.parametrize("log_target", [False, True])
def test_mean_is_torchs_mean_without_a_python_warning(
    dataplane: Dataplane, log_target: bool
) -> None:
    x = torch.randn(3, 4, dtype=torch.float64).log_softmax(1)
    t = torch.randn(3, 4, dtype=torch.float64).softmax(1)
    t = t.log() if log_target else t
    body = {"input": x.tolist(), "target": t.tolist(), "log_target": log_target}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = dataplane.compute(KL, body | {"dtype": "float64"})
    assert caught == []
    assert float(out["value"]) == float(torch_kl(x, t, log_target=log_target))
    w = warning(out, "mean_is_not_kl_divergence")
    batchmean = float(torch_kl(x, t, reduction="batchmean", log_target=log_target))
    assert float(out["value"]) * w["elements"] / w["batch_size"] == pytest.approx(batchmean)


def test_batchmean_divides_by_the_inputs_first_dimension(dataplane: Dataplane) -> None:
    x = torch.randn(4, 3, dtype=torch.float64).log_softmax(1)
    t = torch.randn(2, 4, 3, dtype=torch.float64).softmax(-1)
    body = {"input": x.tolist(), "target": t.tolist(), "reduction": "batchmean"}
    out = dataplane.compute(KL, body | {"dtype": "float64"})
    assert out["denominator"] == 4.0
    assert float(out["value"]) == pytest.approx(float(torch_kl(x, t, reduction="batchmean")))
    assert "shape_mismatch_broadcast" in codes(out)
    assert "mean_is_not_kl_divergence" not in codes(out)


def test_batchmean_of_a_0d_input_is_the_sum(dataplane: Dataplane) -> None:
    out = dataplane.compute(
        KL, {"input": -0.5, "target": 0.3, "reduction": "batchmean", "dtype": "float64"}
    )
    assert float(out["value"]) == float(torch_kl(-0.5, 0.3, reduction="batchmean"))
    assert out["denominator"] == 1.0


def test_probabilities_as_input_warn(dataplane: Dataplane) -> None:
    out = dataplane.compute(KL, {"input": [[0.2, 0.8]], "target": [[0.5, 0.5]]})
    assert "input_not_log_probabilities" in codes(out)


def test_negative_target_is_nan_as_in_torch_with_a_warning(dataplane: Dataplane) -> None:
    x, t = [[-0.7, -0.7]], [[-0.5, -0.9]]
    out = dataplane.compute(KL, {"input": x, "target": t, "reduction": "sum"})
    assert torch.isnan(torch_kl(x, t, reduction="sum"))
    assert np.isnan(float(out["value"]))
    assert out["reference"]["agrees"]
    assert "target_negative" in codes(out)


def test_probabilities_with_log_target_warn(dataplane: Dataplane) -> None:
    body = {"input": [[-0.7, -0.7]], "target": [[0.5, 0.5]], "log_target": True}
    out = dataplane.compute(KL, body | {"reduction": "batchmean"})
    assert "target_not_log_probabilities" in codes(out)


def test_log_probabilities_do_not_warn(dataplane: Dataplane) -> None:
    out = dataplane.compute(KL, KL.example())
    assert out["warnings"] == []


@pytest.mark.parametrize(
    ("shape", "other"),
    [
        ((2, 3), (3,)),
        ((2, 3), (2, 1)),
        ((2, 3), (2,)),
        ((3,), (2, 3)),
        ((2, 1), (3,)),
        ((), (2,)),
        ((2, 3), (1, 2, 3)),
        ((2, 3), (3, 2)),
        ((2, 0), (1,)),
    ],
)
def test_shape_rules_are_torchs(
    dataplane: Dataplane, shape: tuple[int, ...], other: tuple[int, ...]
) -> None:
    x = torch.randn(shape, dtype=torch.float64)
    t = torch.rand(other, dtype=torch.float64)
    body = {"input": x.tolist(), "target": t.tolist(), "reduction": "sum"}
    refused = service_refuses(dataplane, KL, body)
    assert (refused is not None) == torch_refuses(lambda: F.kl_div(x, t, reduction="sum"))
    assert refused in (None, "target")
