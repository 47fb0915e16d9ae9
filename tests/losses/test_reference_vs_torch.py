"""Generated from the registry: every loss's reference against torch, in float32 and float64."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from service.dataplane import Dataplane
from service.losses.base import Loss, Sample
from tests.losses.harness import (
    all_samples,
    as_f64,
    assert_agrees,
    oracle,
    prepared,
    sample_id,
    torch_inputs,
)

CASES = list(all_samples())
IDS = [sample_id(*case) for case in CASES]
DTYPES = ["float32", "float64"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("loss", "index", "sample"), CASES, ids=IDS)
def test_reference_matches_torch(
    dataplane: Dataplane, loss: Loss[Any], index: int, sample: Sample, dtype: str
) -> None:
    params, prep = prepared(dataplane, loss, sample.body, dtype)
    expected = oracle(loss, params, torch_inputs(prep, dtype))
    ref = loss.reference(params, prep, frozenset())
    assert_agrees(ref.value, as_f64(expected), loss.tolerance(dtype), prep.scale, "value")
    assert np.all(np.isfinite(ref.losses) | np.isnan(as_f64(expected)).any()), "losses finite"


@pytest.mark.parametrize(("loss", "index", "sample"), CASES, ids=IDS)
def test_reference_gradient_matches_autograd(
    dataplane: Dataplane, loss: Loss[Any], index: int, sample: Sample
) -> None:
    dtype = "float64"
    params, prep = prepared(dataplane, loss, sample.body, dtype)
    tensors = torch_inputs(prep, dtype, grad=loss.differentiable)
    leaves = {k: t for k, t in tensors.items() if t.requires_grad}
    out = oracle(loss, params, tensors)
    if not leaves or not out.requires_grad:
        pytest.skip("no differentiable input")
    got = torch.autograd.grad(out.sum(), list(leaves.values()), allow_unused=True)
    ref = loss.reference(params, prep, frozenset({"grad"}))
    for (name, leaf), g in zip(leaves.items(), got, strict=True):
        want = ref.grads.get(name)
        assert want is not None, f"reference has no gradient for {name}"
        autograd = as_f64(g) if g is not None else np.zeros(leaf.shape)
        assert_agrees(want, autograd, loss.tolerance(dtype), prep.scale, f"grad {name}")
