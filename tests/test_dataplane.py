"""Data-plane behaviour that no single loss owns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch

from service.dataplane import Dataplane
from service.errors import InvalidInput
from service.losses import registry


def test_missing_kernel_names_the_dtype(
    dataplane: Dataplane, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Torch without a kernel for a dtype is the client's choice of dtype, not a server fault."""
    loss = registry.require("cross_entropy")

    def no_kernel(params: Any, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError("\"nll_loss\" not implemented for 'Half'")

    monkeypatch.setattr(loss, "torch_loss", no_kernel)
    with pytest.raises(InvalidInput) as info:
        dataplane.compute(loss, loss.example() | {"dtype": "float16"})
    assert info.value.field == "dtype"
    assert "float16" in info.value.detail


@pytest.mark.parametrize(("dtype", "value"), [("float32", 1e39), ("float16", 7e4)])
def test_numbers_beyond_the_dtype_range_warn(
    dataplane: Dataplane, dtype: str, value: float
) -> None:
    loss = registry.require("mse_loss")
    out = dataplane.compute(loss, {"input": [value, 1.0], "target": [0.0, 0.0], "dtype": dtype})
    expected = torch.nn.functional.mse_loss(
        torch.tensor([value, 1.0], dtype=torch.float64).to(getattr(torch, dtype)),
        torch.zeros(2, dtype=getattr(torch, dtype)),
    )
    assert float(out["value"]) == float(expected)
    (warning,) = [w for w in out["warnings"] if w["code"] == "value_overflow"]
    assert warning["fields"] == ["input"]


@pytest.mark.parametrize("name", ["kl_div", "poisson_nll_loss", "gaussian_nll_loss"])
def test_a_small_body_cannot_ask_for_a_huge_broadcast(name: str) -> None:
    """(N, 1) against (N) is N² elements: refused against the configured element limit."""
    from tests.conftest import cpu_settings

    dataplane = Dataplane(cpu_settings(max_elements=10_000), torch.device("cpu"))
    body: dict[str, Any] = {"input": [[0.1]] * 200, "target": [0.2] * 200}
    if name == "gaussian_nll_loss":
        body["var"] = [[1.0]] * 200
    with pytest.raises(InvalidInput) as info:
        dataplane.compute(registry.require(name), body)
    assert info.value.field == "target"
    assert "10000" in info.value.detail
