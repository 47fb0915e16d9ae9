"""Every valid request the catalogue holds is answered by the conventions and the diagnoser:
each sample of each loss with conventions (those whose reduction the rows compare) gives rows
and candidates, never an exception or a warning (warnings are errors under pytest)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.conventions import conventions, diagnose, registry
from service.dataplane import Dataplane
from service.losses import registry as losses

SAMPLES = [
    (name, sample)
    for name in registry.names()
    for sample in losses.require(name).samples(np.random.default_rng(0))
    if sample.body.get("reduction", "mean") in registry.require(name).reductions
]


@pytest.mark.parametrize(
    ("name", "body"),
    [(n, s.body) for n, s in SAMPLES],
    ids=[f"{n}-{i}-{s.note}" for i, (n, s) in enumerate(SAMPLES)],
)
def test_every_sample_is_answered(dataplane: Dataplane, name: str, body: dict[str, object]) -> None:
    rows = conventions(dataplane, name, body)["conventions"]
    assert rows[0]["id"] == "torch"
    assert [r["id"] for r in rows] == [
        i for i in registry.require(name).row_ids if i in {r["id"] for r in rows}
    ]
    for r in rows:
        assert ("error" in r) or r["why"].endswith("."), r
    out = diagnose(dataplane, name, body | {"observed": 1.0})
    for c in out["candidates"]:
        assert c["explanation"].endswith("."), c
        assert c["fix"].endswith("."), c
        assert math.isfinite(c["value"]) or c["kind"] == "convention", c
