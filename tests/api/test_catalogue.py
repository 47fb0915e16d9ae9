"""Discovery: the loss catalogue, health endpoints and the OpenAPI document."""

from __future__ import annotations

import httpx
import pytest

from service.losses import registry

pytestmark = pytest.mark.anyio


async def test_health(client: httpx.AsyncClient) -> None:
    live = await client.get("/v2/health/live")
    ready = await client.get("/v2/health/ready")
    assert (live.status_code, live.json()) == (200, {"live": True})
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


async def test_list_has_every_registered_loss(client: httpx.AsyncClient) -> None:
    out = (await client.get("/v1/losses")).json()
    names = [entry["name"] for entry in out["losses"]]
    assert names == registry.names()
    ce = next(e for e in out["losses"] if e["name"] == "cross_entropy")
    assert {i["name"] for i in ce["inputs"]} == {"input", "target", "weight"}
    assert ce["parameters"]["ignore_index"]["default"] == -100
    assert ce["parameters"]["reduction"]["enum"] == ["none", "mean", "sum"]
    assert ce["parameters"]["label_smoothing"]["maximum"] == 1.0


@pytest.mark.parametrize("name", registry.names())
async def test_each_loss_example_works_when_posted(client: httpx.AsyncClient, name: str) -> None:
    described = (await client.get(f"/v1/losses/{name}")).json()
    r = await client.post(f"/v1/losses/{name}", json=described["example"])
    assert r.status_code == 200, r.text
    assert r.json()["reference"]["agrees"] is True


async def test_unknown_loss_description_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/losses/nope")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


async def test_openapi_documents_the_article_example(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    op = doc["paths"]["/v1/losses/cross_entropy"]["post"]
    content = op["requestBody"]["content"]["application/json"]
    assert content["example"]["target"] == [0, 1, 2]
    assert content["schema"] == {"$ref": "#/components/schemas/CrossEntropyParams"}
    assert "input" in doc["components"]["schemas"]["CrossEntropyParams"]["properties"]
    assert {"422", "413", "400"} <= set(op["responses"])
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolves(document: dict[str, object], ref: str) -> bool:
    node: object = document
    for part in ref.removeprefix("#/").split("/"):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


async def test_every_schema_pointer_resolves(client: httpx.AsyncClient) -> None:
    """Nested request models (linear_cross_entropy's options, a distance function) are written
    in place: no '#/$defs/...' pointer dangles in the catalogue or in OpenAPI."""
    catalogue = (await client.get("/v1/losses")).json()
    assert not _refs(catalogue)
    openapi = (await client.get("/openapi.json")).json()
    assert all(_resolves(openapi, ref) for ref in _refs(openapi)), _refs(openapi)
