"""Every loss follows the configured ``LOSS_SERVICE_MAX_ELEMENTS``: a tensor over it, and a
result that broadcasting (or a loss's own work: pairs, a lattice, logits) would make larger than
it, is refused with ``limit-exceeded`` naming the field, through HTTP, before torch allocates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest

from service.app import create_app
from service.losses import registry
from tests.conftest import cpu_settings

pytestmark = pytest.mark.anyio

LIMIT = 64
LOSSES = list(registry.all_losses())


@pytest.fixture(scope="module")
async def small() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(cpu_settings(max_elements=LIMIT))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def _zeros(*shape: int) -> Any:
    return np.zeros(shape).tolist()


def _assert_limit(r: httpx.Response, field: str) -> None:
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"].endswith("/limit-exceeded"), problem
    assert problem["field"] == field, problem
    assert str(LIMIT) in problem["detail"]


@pytest.mark.parametrize("loss", LOSSES, ids=[loss.name for loss in LOSSES])
async def test_every_loss_refuses_a_tensor_over_the_limit(
    small: httpx.AsyncClient, loss: Any
) -> None:
    """Each tensor input in turn holds one element more than the limit."""
    for field in loss.tensor_inputs:
        body = loss.example() | {field: _zeros(LIMIT + 1)}
        _assert_limit(await small.post(f"/v1/losses/{loss.name}", json=body), field)


@pytest.mark.parametrize("loss", LOSSES, ids=[loss.name for loss in LOSSES])
async def test_every_example_is_within_the_limit(small: httpx.AsyncClient, loss: Any) -> None:
    r = await small.post(f"/v1/losses/{loss.name}", json=loss.example())
    assert r.status_code == 200, r.text


column, row = _zeros(9, 1), _zeros(9)
#: Bodies whose tensors are each within the limit, but whose broadcast (or the loss's own work)
#: is larger: (loss, body, the field named).
GROWING: list[tuple[str, dict[str, Any], str]] = [
    *(
        (name, {"input": column, "target": row}, "target")
        for name in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div")
    ),
    ("poisson_nll_loss", {"input": column, "target": row}, "target"),
    ("hinge_embedding_loss", {"input": column, "target": row}, "target"),
    ("gaussian_nll_loss", {"input": column, "target": row, "var": 1.0}, "target"),
    (
        "margin_ranking_loss",
        {"input1": column, "input2": _zeros(1, 9), "target": _zeros(1, 1)},
        "input2",
    ),
    (
        "cosine_embedding_loss",
        {"input1": _zeros(1, 40), "input2": _zeros(2, 1), "target": _zeros(1)},
        "input2",
    ),
    (
        "triplet_margin_loss",
        {"anchor": _zeros(5, 1, 4), "positive": _zeros(1, 5, 4), "negative": _zeros(1, 1, 4)},
        "positive",
    ),
    (
        "triplet_margin_with_distance_loss",
        {"anchor": _zeros(5, 1, 4), "positive": _zeros(1, 5, 4), "negative": _zeros(1, 1, 4)},
        "positive",
    ),
    (
        "triplet_margin_with_distance_loss",
        {
            "anchor": _zeros(5, 1, 4),
            "positive": _zeros(1, 1, 4),
            "negative": _zeros(1, 5, 4),
            "distance_function": "cosine_distance",
        },
        "negative",
    ),
    (
        "multilabel_margin_loss",
        {"input": _zeros(10), "target": [*range(9), -1]},
        "target",
    ),
    (
        "ctc_loss",
        {
            "log_probs": np.log(np.full((12, 1, 3), 1 / 3)).tolist(),  # 36 elements
            "targets": [[1, 2, 1]],
            "input_lengths": [12],
            "target_lengths": [3],  # 12 frames x 7 states: 84 cells
        },
        "target_lengths",
    ),
    (
        "linear_cross_entropy",
        {"input": column, "linear_weight": column, "target": row},
        "linear_weight",
    ),
]


@pytest.mark.parametrize(("name", "body", "field"), GROWING, ids=[g[0] for g in GROWING])
async def test_a_result_over_the_limit_is_refused(
    small: httpx.AsyncClient, name: str, body: dict[str, Any], field: str
) -> None:
    _assert_limit(await small.post(f"/v1/losses/{name}", json=body), field)


@pytest.mark.parametrize(("name", "body", "field"), GROWING, ids=[g[0] for g in GROWING])
async def test_the_default_limit_accepts_them(
    client: httpx.AsyncClient, name: str, body: dict[str, Any], field: str
) -> None:
    """The same bodies are fine under the default limit: the refusal came from the setting."""
    r = await client.post(f"/v1/losses/{name}", json=body)
    assert r.status_code == 200, r.text


async def test_chunked_linear_cross_entropy_is_not_capped_by_its_logits(
    small: httpx.AsyncClient,
) -> None:
    body = {"input": column, "linear_weight": column, "target": [0] * 9, "options": {}}
    assert (await small.post("/v1/losses/linear_cross_entropy", json=body)).status_code == 200
