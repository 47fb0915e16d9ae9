"""nll_loss specifics beyond the generated tests: the article's reading, warnings, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from service.dataplane import Dataplane
from service.losses import registry
from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from tests.losses.parity import codes, f64, service_refuses, torch_refuses, warning

NLL = registry.require("nll_loss")
P = np.array(ARTICLE_INPUT)
Y = torch.tensor(ARTICLE_TARGET)


def test_example_is_the_articles_probability_reading(dataplane: Dataplane) -> None:
    out = dataplane.compute(NLL, NLL.example() | {"dtype": "float64"})
    assert float(out["value"]) == pytest.approx(float(F.nll_loss(f64(np.log(P)), Y)), rel=1e-12)
    assert round(float(out["value"]), 4) == 1.3157
    assert out["warnings"] == []


def test_probabilities_warn_with_the_log_reading(dataplane: Dataplane) -> None:
    out = dataplane.compute(NLL, {"input": P.tolist(), "target": ARTICLE_TARGET})
    w = warning(out, "input_looks_like_probabilities")
    assert w["log_input_reading"] == pytest.approx(float(F.nll_loss(f64(np.log(P)), Y)))
    assert float(out["value"]) == pytest.approx(float(F.nll_loss(f64(P), Y)), rel=1e-6)


@pytest.mark.parametrize("weight", [None, [0.5, 2.0, 1.0]])
def test_logits_warn_with_the_cross_entropy_reading(
    dataplane: Dataplane, weight: list[float] | None
) -> None:
    x = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0], [-1.0, -2.0, -0.5]])
    body = {"input": x.tolist(), "target": ARTICLE_TARGET, "weight": weight}
    out = dataplane.compute(NLL, body)
    w = warning(out, "input_not_log_probabilities")
    tw = None if weight is None else f64(weight)
    assert w["cross_entropy_reading"] == pytest.approx(float(F.cross_entropy(f64(x), Y, tw)))
    assert w["rows_not_normalised"] == 3


def test_log_softmax_output_does_not_warn(dataplane: Dataplane) -> None:
    x = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(0)).log_softmax(1)
    y = torch.tensor([[0, 4, 2], [1, 1, 1], [3, 0, 4], [2, 2, 0]])
    out = dataplane.compute(NLL, {"input": x.tolist(), "target": y.tolist()})
    assert out["warnings"] == []


def test_all_ignored_is_nan_with_a_warning(dataplane: Dataplane) -> None:
    out = dataplane.compute(NLL, {"input": [[-0.1, -2.4]], "target": [5], "ignore_index": 5})
    assert torch.isnan(F.nll_loss(f64([[-0.1, -2.4]]), torch.tensor([5]), ignore_index=5))
    assert np.isnan(float(out["value"]))
    assert out["denominator"] == 0.0
    assert "all_targets_ignored" in codes(out)


def test_weights_summing_to_zero_warn_and_match_torch(dataplane: Dataplane) -> None:
    x, y, w = [[-1.0, -0.5], [-0.3, -2.0]], [0, 1], [1.0, -1.0]
    out = dataplane.compute(NLL, {"input": x, "target": y, "weight": w, "dtype": "float64"})
    expected = float(F.nll_loss(f64(x), torch.tensor(y), f64(w)))
    assert float(out["value"]) == expected
    assert "zero_weight_total" in codes(out)


def test_mean_divides_by_the_weights_of_kept_targets(dataplane: Dataplane) -> None:
    x = np.log(P)
    body = {"input": x.tolist(), "target": [0, -100, 2], "weight": [2.0, 5.0, 0.5]}
    out = dataplane.compute(NLL, body | {"dtype": "float64"})
    assert out["denominator"] == 2.5
    assert out["breakdown"]["ignored"].tolist() == [False, True, False]


@pytest.mark.parametrize(
    ("input_shape", "target_shape"),
    [
        ((3,), ()),
        ((3,), (1,)),
        ((3,), (2,)),
        ((3,), (1, 1)),
        ((2, 3), (2,)),
        ((2, 3), (3,)),
        ((2, 3, 4), (2, 4)),
        ((2, 3, 4), (2, 3)),
        ((2, 3, 4, 5), (2, 4, 5)),
        ((2, 3, 4, 5), (2, 5, 4)),
        ((), ()),
    ],
)
def test_shape_rules_are_torchs(
    dataplane: Dataplane, input_shape: tuple[int, ...], target_shape: tuple[int, ...]
) -> None:
    x = (
        torch.randn(input_shape, dtype=torch.float64).log_softmax(-1 if input_shape else 0)
        if input_shape
        else torch.tensor(-0.5, dtype=torch.float64)
    )
    y = torch.zeros(target_shape, dtype=torch.long)
    refused = service_refuses(dataplane, NLL, {"input": x.tolist(), "target": y.tolist()})
    assert (refused is not None) == torch_refuses(lambda: F.nll_loss(x, y))
    assert refused in (None, "input", "target")


def test_out_of_range_class_is_refused_where_torch_raises(dataplane: Dataplane) -> None:
    assert torch_refuses(lambda: F.nll_loss(f64([[-1.0, -0.5]]), torch.tensor([2])))
    assert service_refuses(dataplane, NLL, {"input": [[-1.0, -0.5]], "target": [2]}) == "target"


@pytest.mark.parametrize(
    ("target", "weight"),
    [([1, 1], None), ([0, 1], [0.0, 0.0, 1.0]), ([0, 2], [0.0, 1.0, 1.0])],
    ids=["all ignored", "kept weights sum to 0", "one zero weight"],
)
def test_gradient_where_mean_divides_by_zero_is_torchs(
    dataplane: Dataplane, target: list[int], weight: list[float] | None
) -> None:
    x = [[-1.0, -0.5, -2.0], [-0.3, -2.0, -1.5]]
    body = {"input": x, "target": target, "weight": weight, "ignore_index": 1}
    out = dataplane.compute(NLL, body | {"include": ["grad"], "dtype": "float64"})
    xs = f64(x).requires_grad_()
    tw = None if weight is None else f64(weight)
    (g,) = torch.autograd.grad(F.nll_loss(xs, torch.tensor(target), tw, ignore_index=1), [xs])
    np.testing.assert_array_equal(out["extras"]["grad"]["input"], g.numpy())
    assert out["reference"]["grad"]["input"]["agrees"]  # NaN only where torch has NaN
