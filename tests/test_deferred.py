"""Deferred rounding (``Prepared.deferred``): torch, the reference, the comparison and the
warnings see exactly what they saw when every floating array was rounded up front."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.dataplane import Dataplane
from service.jsonenc import dumps
from service.losses import registry

CASES: list[tuple[str, dict[str, Any]]] = [
    ("float32", {"input": [[0.1, 0.7, 0.2], [1e39, 0.0, -3.3]], "target": [1, 0]}),
    ("float32", {"input": [[0.1, 0.7, 0.2], [0.5, 0.25, 0.25]], "target": [1, 2]}),
    ("float64", {"input": [[1.0, 2.0], [3.0, -1e300]], "target": [[0.5, 0.5], [1.0, 0.0]]}),
    ("float32", {"input": [0.3, 0.3, 0.4], "target": 2, "include": ["grad", "softmax"]}),
    ("float16", {"input": [[7e4, 1.0]], "target": [0]}),  # not deferred: torch rounds twice
]


@pytest.mark.parametrize("reference", [True, False])
@pytest.mark.parametrize(("dtype", "body"), CASES)
def test_deferred_rounding_changes_nothing(
    dataplane: Dataplane,
    monkeypatch: pytest.MonkeyPatch,
    dtype: str,
    body: dict[str, Any],
    reference: bool,
) -> None:
    loss = registry.require("cross_entropy")
    request = body | {"dtype": dtype, "reference": reference}
    deferred = dataplane.compute(loss, request)
    monkeypatch.setattr("service.losses.cross_entropy.DEFERRABLE", frozenset())
    upfront = dataplane.compute(loss, request)
    assert dumps(deferred) == dumps(upfront)
    if dtype == "float32" and np.abs(np.asarray(body["input"])).max() > 3.5e38:
        assert "value_overflow" in {w["code"] for w in deferred["warnings"]}
