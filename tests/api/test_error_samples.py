"""Generated from the registry: every loss's error samples are refused through the API with a
problem+json body naming the offending field, and the service answers correctly right after."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service import losses
from service.losses import registry
from service.losses.base import ErrorSample, Loss

losses.load()
pytestmark = pytest.mark.anyio

CASES = [(loss, e) for loss in registry.all_losses() for e in loss.error_samples()]
IDS = [f"{loss.name}-{e.field}-{e.note}".replace(" ", "_") for loss, e in CASES]


@pytest.mark.parametrize(("loss", "case"), CASES, ids=IDS)
async def test_error_sample_is_refused(
    client: httpx.AsyncClient, loss: Loss[Any], case: ErrorSample
) -> None:
    r = await client.post(f"/v1/losses/{loss.name}", json=case.body)
    assert r.status_code == case.status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == case.status
    assert problem["field"] == case.field, problem
    assert case.field in problem["detail"]
    ok = await client.post(f"/v1/losses/{loss.name}", json=loss.example())
    assert ok.status_code == 200, ok.text
