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
