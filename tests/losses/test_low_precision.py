"""Generated from the registry: every sample computes through the data plane in float16 or
bfloat16 (alternately, to keep the run short) with gradients, or is refused naming ``dtype``
(torch has no kernel for it on this device). Inputs rounded to a narrow dtype can overflow to
infinities; that must give a value (and warnings), never an exception or a NumPy
RuntimeWarning."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.dataplane import Dataplane
from service.errors import InvalidInput
from service.losses import registry
from service.losses.base import Loss
from tests.losses.harness import SEED

LOSSES = list(registry.all_losses())


@pytest.mark.parametrize("loss", LOSSES, ids=[loss.name for loss in LOSSES])
def test_samples_compute_in_low_precision(dataplane: Dataplane, loss: Loss[Any]) -> None:
    refused: list[tuple[str, str | None]] = []
    for i, sample in enumerate(loss.samples(np.random.default_rng(SEED))):
        dtype = ("float16", "bfloat16")[i % 2]
        body = sample.body | {"dtype": dtype, "include": ["grad"]}
        try:
            got = dataplane.compute(loss, body)
        except InvalidInput as exc:
            refused.append((sample.note, exc.field))
            continue
        assert got["dtype"] == dtype
        assert "low_precision_dtype" in [w["code"] for w in got["warnings"]], sample.note
    assert all(field == "dtype" for _, field in refused), refused
