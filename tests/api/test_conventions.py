"""POST /v1/conventions/{name} through the HTTP API: shape, refusals, same validation as losses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.conventions import names
from service.conventions import registry as conventions_registry
from service.losses import registry
from service.losses.base import ErrorSample
from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET

pytestmark = pytest.mark.anyio

ROW_FIELDS = {
    "id",
    "library",
    "call",
    "reads_input_as",
    "value",
    "per_sample",
    "agrees_with_torch",
    "why",
}
ERROR_FIELDS = {"id", "library", "call", "error"}
NAMES = names()
ERROR_CASES = [
    (name, sample) for name in NAMES for sample in registry.require(name).error_samples()
]


async def test_article(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/conventions/cross_entropy", json={"input": ARTICLE_INPUT, "target": ARTICLE_TARGET}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    out = r.json()
    assert out["name"] == "cross_entropy"
    assert set(out) == {"name", "conventions"}
    for row in out["conventions"]:
        assert set(row) in (ROW_FIELDS, ERROR_FIELDS), row
    values = {row["id"]: round(row["value"], 4) for row in out["conventions"]}
    assert values["torch"] == 1.1484
    assert values["textbook"] == 1.3157
    assert values["article_loop"] == 3.9470


REFUSED_REDUCTIONS = [
    (name, reduction)
    for name in NAMES
    for reduction in ("none", "sum", "mean", "batchmean")
    if reduction not in conventions_registry.require(name).reductions
    and reduction in str(registry.require(name).params_model.model_fields["reduction"].annotation)
]


@pytest.mark.parametrize(("name", "reduction"), REFUSED_REDUCTIONS)
async def test_reduction_the_rows_do_not_compare_is_refused(
    client: httpx.AsyncClient, name: str, reduction: str
) -> None:
    body = registry.require(name).example() | {"reduction": reduction}
    r = await client.post(f"/v1/conventions/{name}", json=body)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == "reduction"


@pytest.mark.parametrize("name", NAMES)
async def test_examples_answer(client: httpx.AsyncClient, name: str) -> None:
    r = await client.post(f"/v1/conventions/{name}", json=registry.require(name).example())
    assert r.status_code == 200, r.text
    rows = r.json()["conventions"]
    assert rows[0]["id"] == "torch"
    assert rows[0]["agrees_with_torch"] is True


@pytest.mark.parametrize(
    ("name", "sample"), ERROR_CASES, ids=[f"{n}-{s.note}" for n, s in ERROR_CASES]
)
async def test_validation_is_that_of_the_loss(
    client: httpx.AsyncClient, name: str, sample: ErrorSample
) -> None:
    """Every error sample of the loss is refused the same way by both endpoints."""
    a = await client.post(f"/v1/losses/{name}", json=sample.body)
    b = await client.post(f"/v1/conventions/{name}", json=sample.body)
    assert b.status_code == a.status_code == sample.status
    problem: dict[str, Any] = b.json()
    assert problem["field"] == a.json()["field"] == sample.field
    assert problem["detail"] == a.json()["detail"]


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("CrossEntropyLoss", "cross_entropy"),
        ("BCELoss", "binary_cross_entropy"),
        ("BCEWithLogitsLoss", "binary_cross_entropy_with_logits"),
    ],
)
async def test_module_names_answer_as_the_functional_name(
    client: httpx.AsyncClient, alias: str, name: str
) -> None:
    body = registry.require(name).example()
    a = await client.post(f"/v1/conventions/{name}", json=body)
    b = await client.post(f"/v1/conventions/{alias}", json=body)
    assert a.status_code == b.status_code == 200
    assert b.content == a.content
    assert b.json()["name"] == name


WITHOUT = [loss.name for loss in registry.all_losses() if loss.name not in NAMES]


@pytest.mark.parametrize("name", [*WITHOUT[:1], *(registry.require(n).module for n in WITHOUT[:1])])
async def test_a_loss_without_conventions_is_404_naming_those_with(
    client: httpx.AsyncClient, name: str
) -> None:
    r = await client.post(f"/v1/conventions/{name}", json={})
    assert r.status_code == 404
    assert "cross_entropy" in r.json()["detail"]


@pytest.mark.parametrize("name", ["crossentropy", "no_such_loss"])
async def test_an_unknown_loss_is_404_with_the_usual_suggestion(
    client: httpx.AsyncClient, name: str
) -> None:
    a = await client.post(f"/v1/losses/{name}", json={})
    b = await client.post(f"/v1/conventions/{name}", json={})
    assert a.status_code == b.status_code == 404
    assert b.json()["detail"] == a.json()["detail"]


async def test_list_conventions(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/conventions")
    assert r.status_code == 200
    listed = {entry["name"]: entry for entry in r.json()["losses"]}
    assert list(listed) == NAMES
    assert listed["cross_entropy"]["module"] == "CrossEntropyLoss"
    assert "article_loop" in listed["cross_entropy"]["rows"]
    for name, entry in listed.items():
        assert entry["rows"][0] == "torch"
        assert entry["rows"] == conventions_registry.require(name).row_ids
        assert entry["mistakes"] == conventions_registry.require(name).mistake_ids


@pytest.mark.parametrize("name", [loss.name for loss in registry.all_losses()])
async def test_the_description_says_whether_it_has_conventions(
    client: httpx.AsyncClient, name: str
) -> None:
    r = await client.get(f"/v1/losses/{name}")
    assert r.json()["conventions"] is (name in NAMES)


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/conventions/cross_entropy",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
