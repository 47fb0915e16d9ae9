"""Properties every loss must keep, on inputs Hypothesis picks (deterministic profile in CI).

Hypothesis draws a seed and one of the loss's sample bodies and a reduction; the properties:
``none`` has the documented shape, ``sum == mean * denominator``, non-negativity where the loss
declares it, and torch's value agreeing with the reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.dataplane import Dataplane
from service.losses import registry
from service.losses.base import Loss
from tests.losses.harness import SEED

LOSSES = list(registry.all_losses())


def _bodies(loss: Loss[Any]) -> list[dict[str, Any]]:
    rng = np.random.default_rng(SEED)
    return [s.body for s in loss.samples(rng)]


def _reduced(dataplane: Dataplane, loss: Loss[Any], body: dict[str, Any], reduction: str) -> Any:
    return dataplane.compute(loss, body | {"reduction": reduction, "dtype": "float64"})


@pytest.mark.parametrize("loss", LOSSES, ids=[loss.name for loss in LOSSES])
@given(data=st.data())
def test_reductions_are_consistent(dataplane: Dataplane, loss: Loss[Any], data: Any) -> None:
    bodies = [b for b in _bodies(loss) if "reduction" in loss.params_model.model_fields]
    if not bodies:
        pytest.skip("the loss has no reduction argument")
    body = data.draw(st.sampled_from(bodies))
    none = _reduced(dataplane, loss, body, "none")
    total = _reduced(dataplane, loss, body, "sum")
    mean = _reduced(dataplane, loss, body, "mean")
    for r in (none, total, mean):
        assert r["reference"]["agrees"], r["reference"]
    per_element = np.asarray(none["value"], dtype=np.float64)
    assert list(per_element.shape) == none["shape"] == list(np.shape(none["breakdown"]["loss"]))
    if loss.nonnegative:
        assert np.all(per_element >= -1e-12)
    assert np.isclose(float(total["value"]), per_element.sum(), rtol=1e-9, atol=1e-9)
    denominator = mean["denominator"]
    mean_value = float(np.asarray(mean["value"]))
    if np.isfinite(mean_value) and denominator:
        assert np.isclose(mean_value * denominator, float(total["value"]), rtol=1e-9, atol=1e-12)
    else:
        assert not denominator, "a mean over a non-zero denominator must be finite here"
