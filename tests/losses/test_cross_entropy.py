"""cross_entropy specifics beyond the generated tests: overflow safety and warnings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from service.dataplane import Dataplane
from service.losses import registry
from tests.losses.parity import codes

CE = registry.require("cross_entropy")


@pytest.mark.parametrize("scale", [1e2, 1e3, 1e5])
def test_reference_stays_finite_where_naive_exp_overflows(
    dataplane: Dataplane, scale: float
) -> None:
    x = np.random.default_rng(1).standard_normal((4, 6)) * scale
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.exp(x)).all() or scale < 1e3
    y = [0, 5, 2, 3]
    out = dataplane.compute(CE, {"input": x.tolist(), "target": y, "dtype": "float64"})
    expected = F.cross_entropy(torch.from_numpy(x), torch.tensor(y))
    assert np.isfinite(out["reference"]["value"])
    assert np.all(np.isfinite(out["breakdown"]["loss"]))
    assert float(out["reference"]["value"]) == pytest.approx(float(expected), rel=1e-12)
    assert out["reference"]["agrees"]


def test_logits_do_not_warn(dataplane: Dataplane) -> None:
    out = dataplane.compute(CE, {"input": [[2.0, -1.0, 0.3]], "target": [0]})
    assert out["warnings"] == []


def test_probability_rows_warn_with_the_textbook_reading(dataplane: Dataplane) -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    out = dataplane.compute(CE, {"input": p.tolist(), "target": [0, 2]})
    (w,) = [w for w in out["warnings"] if w["code"] == "input_looks_like_probabilities"]
    assert w["probability_reading"] == pytest.approx(-np.log([0.7, 0.8]).mean())


def test_probability_reading_of_probability_targets(dataplane: Dataplane) -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    t = np.array([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    out = dataplane.compute(CE, {"input": p.tolist(), "target": t.tolist()})
    (w,) = [w for w in out["warnings"] if w["code"] == "input_looks_like_probabilities"]
    assert w["probability_reading"] == pytest.approx(-(t * np.log(p)).sum(axis=1).mean())


def test_target_rows_that_are_not_distributions_warn(dataplane: Dataplane) -> None:
    out = dataplane.compute(CE, {"input": [[1.0, 2.0]], "target": [[0.5, 0.9]]})
    assert "target_not_a_distribution" in codes(out)


def test_one_hot_integer_targets_are_probabilities(dataplane: Dataplane) -> None:
    x = torch.tensor([[1.0, 2.0, 0.0]], dtype=torch.float64)
    out = dataplane.compute(CE, {"input": x.tolist(), "target": [[0, 1, 0]], "dtype": "float64"})
    assert out["target_form"] == "class_probabilities"
    expected = F.cross_entropy(x, torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64))
    assert float(out["value"]) == pytest.approx(float(expected), rel=1e-12)


def test_integral_floats_are_accepted_as_indices(dataplane: Dataplane) -> None:
    out = dataplane.compute(CE, {"input": [[1.0, 2.0, 0.0]], "target": [1.0]})
    assert out["target_form"] == "class_indices"
