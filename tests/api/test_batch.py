"""``POST /v1/losses:batch``: each item answered as its own request would be, bad items failing
alone, and only a bad envelope failing the batch."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from service import losses
from service.dataplane import Dataplane
from service.losses import registry
from service.settings import Settings
from tests.losses.harness import oracle, prepared, torch_inputs

losses.load()
pytestmark = pytest.mark.anyio

BATCH = "/v1/losses:batch"
#: Every loss the installed torch computes (``make compat`` runs these on older torches too; a
#: loss it lacks answers its batch items 501, which tests/api/test_torch_compat.py checks).
ALL = [loss for loss in registry.all_losses() if loss.available]


async def test_items_are_answered_like_single_requests(
    client: httpx.AsyncClient, dataplane: Dataplane
) -> None:
    items: list[dict[str, Any]] = [{"loss": loss.name, "args": loss.example()} for loss in ALL]
    r = await client.post(BATCH, json={"items": items})
    assert r.status_code == 200, r.text
    batch = r.json()
    assert batch["succeeded"] == len(items)
    assert batch["failed"] == 0
    for item, result in zip(items, batch["results"], strict=True):
        assert result["status"] == 200
        single = await client.post(f"/v1/losses/{item['loss']}", json=item["args"])
        assert result["result"] == single.json()
        loss = registry.get(item["loss"])
        assert loss is not None
        params, prep = prepared(dataplane, loss, item["args"], "float32")
        expected = oracle(loss, params, torch_inputs(prep, "float32")).detach().numpy()
        got = np.asarray(result["result"]["value"], dtype=np.float32)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


BAD_ITEMS: list[tuple[Any, int, str]] = [
    ({"loss": "no_such_loss", "args": {}}, 404, "loss"),
    ({"args": {}}, 422, "loss"),
    ({"loss": 3, "args": {}}, 422, "loss"),
    ({"loss": "cross_entropy", "args": [1, 2]}, 422, "args"),
    ({"loss": "cross_entropy", "args": {}, "extra": 1}, 422, "extra"),
    ([1, 2], 422, ""),
    ({"loss": "cross_entropy", "args": {"input": [[0.1, 0.9]], "target": [2]}}, 422, "args.target"),
    (
        {"loss": "cross_entropy", "args": {"input": [[0.1, 0.9], [1]], "target": [0]}},
        422,
        "args.input",
    ),
    ({"loss": "cross_entropy", "args": {"input": [[0.1, True]], "target": [0]}}, 422, "args.input"),
    ({"loss": "cross_entropy", "args": {"target": [0]}}, 422, "args.input"),
    ({"loss": "cross_entropy", "args": {"input": [[1.0]], "target": [0], "x": 1}}, 422, "args.x"),
]


@pytest.mark.parametrize(
    ("item", "status", "field"), BAD_ITEMS, ids=[f"{s}-{f or 'item'}" for _, s, f in BAD_ITEMS]
)
async def test_a_bad_item_fails_alone(
    client: httpx.AsyncClient, item: Any, status: int, field: str
) -> None:
    good = {"loss": "cross_entropy", "args": registry.get("cross_entropy").example()}  # type: ignore[union-attr]
    r = await client.post(BATCH, json={"items": [good, item, good]})
    assert r.status_code == 200, r.text
    batch = r.json()
    assert (batch["succeeded"], batch["failed"]) == (2, 1)
    first, bad, last = batch["results"]
    assert first["status"] == last["status"] == 200
    assert first["result"] == last["result"]
    assert bad["status"] == status
    problem = bad["problem"]
    assert problem["status"] == status
    assert problem["field"] == field, problem
    assert problem["instance"] == f"{BATCH}#/items/1"
    assert problem["detail"]


BAD_ENVELOPES: list[tuple[bytes, int, str | None]] = [
    (b"not json", 400, None),
    (b"[]", 422, ""),
    (b"{}", 422, "items"),
    (b'{"items": {}}', 422, "items"),
    (b'{"items": [], "more": 1}', 422, "more"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_ENVELOPES)
async def test_a_bad_envelope_fails_the_batch(
    client: httpx.AsyncClient, body: bytes, status: int, field: str | None
) -> None:
    r = await client.post(BATCH, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json().get("field") == field


async def test_empty_batch(client: httpx.AsyncClient) -> None:
    r = await client.post(BATCH, json={"items": []})
    assert r.json() == {"results": [], "succeeded": 0, "failed": 0}


async def test_item_count_is_bounded(client: httpx.AsyncClient) -> None:
    limit = Settings().max_batch_items
    item = {"loss": "cross_entropy", "args": {"input": [[0.0, 1.0]], "target": [1]}}
    r = await client.post(BATCH, json={"items": [item] * (limit + 1)})
    assert r.status_code == 422
    assert r.json()["field"] == "items"
    ok = await client.post(BATCH, json={"items": [item] * limit})
    assert ok.status_code == 200
    assert ok.json()["succeeded"] == limit


async def test_documented_in_openapi(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    post = spec["paths"][BATCH]["post"]
    ref = post["requestBody"]["content"]["application/json"]["schema"]
    assert ref == {"$ref": "#/components/schemas/BatchRequest"}
    schema = spec["components"]["schemas"]["BatchRequest"]
    assert "items" in schema["properties"]
    assert "$defs" not in str(schema)
    assert post["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BatchResponse"
    }
