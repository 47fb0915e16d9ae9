"""POST /v1/diagnose/{name} through the HTTP API: the answer's shape, the article's numbers, the
refusals (the loss's own, then observed and rtol), module names and limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import torch
import torch.nn.functional as F

from service.conventions import names
from service.conventions import registry as conventions_registry
from service.losses import registry
from service.losses.base import ErrorSample
from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from tests.conftest import cpu_settings

pytestmark = pytest.mark.anyio

NAMES = names()
ARTICLE = {"input": ARTICLE_INPUT, "target": ARTICLE_TARGET}
ANSWER_FIELDS = {"name", "observed", "torch", "matches", "candidates"}
CANDIDATE_FIELDS = {"id", "kind", "value", "relative_difference", "explanation", "fix"}
ERROR_CASES = [
    (name, sample) for name in NAMES for sample in registry.require(name).error_samples()
]


async def diagnosed(client: httpx.AsyncClient, name: str, body: dict[str, Any]) -> Any:
    r = await client.post(f"/v1/diagnose/{name}", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


@pytest.mark.parametrize(
    ("observed", "first", "also"),
    [
        (3.947, "article_loop", set()),
        (1.3157, None, {"textbook", "sklearn_log_loss", "keras_from_probs"}),
        (1.1484, "torch", set()),
    ],
)
async def test_the_articles_numbers(
    client: httpx.AsyncClient, observed: float, first: str | None, also: set[str]
) -> None:
    out = await diagnosed(client, "cross_entropy", ARTICLE | {"observed": observed})
    assert set(out) == ANSWER_FIELDS
    assert out["name"] == "cross_entropy"
    assert out["observed"] == observed
    torch_value = F.cross_entropy(torch.tensor(ARTICLE_INPUT), torch.tensor(ARTICLE_TARGET))
    assert out["torch"] == pytest.approx(float(torch_value), rel=1e-7)
    ids = [m["id"] for m in out["matches"]]
    if first is not None:
        assert ids[0] == first
    assert also <= set(ids)
    for c in out["candidates"]:
        assert set(c) == CANDIDATE_FIELDS
        assert c["kind"] in ("convention", "mistake")
        assert c["explanation"].endswith(".")
        assert c["fix"].endswith(".")
    rd = [c["relative_difference"] for c in out["candidates"]]
    assert rd == sorted(rd)
    assert out["matches"] == [c for c in out["candidates"] if c["relative_difference"] <= 1e-4]


async def test_torch_is_what_the_loss_endpoint_computes(client: httpx.AsyncClient) -> None:
    """The same bytes as POST /v1/losses's value, in the request's dtype."""
    for dtype in ("float32", "float64", "float16"):
        body = ARTICLE | {"dtype": dtype}
        loss = await client.post("/v1/losses/cross_entropy", json=body)
        out = await diagnosed(client, "cross_entropy", body | {"observed": 1.0})
        assert out["torch"] == loss.json()["value"]


async def test_nothing_matches_says_so(client: httpx.AsyncClient) -> None:
    out = await diagnosed(client, "cross_entropy", ARTICLE | {"observed": 123.0})
    assert out["matches"] == []
    assert set(out) == ANSWER_FIELDS | {"message"}
    assert "123.0" in out["message"]
    assert out["candidates"]


async def test_rtol_widens_the_matches(client: httpx.AsyncClient) -> None:
    narrow = await diagnosed(client, "cross_entropy", ARTICLE | {"observed": 1.2})
    wide = await diagnosed(client, "cross_entropy", ARTICLE | {"observed": 1.2, "rtol": 0.1})
    assert narrow["matches"] == []
    assert {"torch", "textbook"} <= {m["id"] for m in wide["matches"]}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({}, "observed"),
        ({"observed": "NaN"}, "observed"),
        ({"observed": "Infinity"}, "observed"),
        ({"observed": "1.5"}, "observed"),
        ({"observed": None}, "observed"),
        ({"observed": True}, "observed"),
        ({"observed": [1.0]}, "observed"),
        ({"observed": 1.0, "rtol": -1e-3}, "rtol"),
        ({"observed": 1.0, "rtol": "0.1"}, "rtol"),
        ({"observed": 1.0, "rtol": False}, "rtol"),
        ({"observed": 1.0, "rtol": None}, "rtol"),
    ],
)
async def test_bad_observed_or_rtol_is_422_naming_it(
    client: httpx.AsyncClient, extra: dict[str, Any], field: str
) -> None:
    r = await client.post("/v1/diagnose/cross_entropy", json=ARTICLE | extra)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field
    assert field in r.json()["detail"]


async def test_non_finite_json_tokens_are_400(client: httpx.AsyncClient) -> None:
    for token in (b"NaN", b"Infinity", b"1e999"):
        body = b'{"input": [[1.0, 2.0]], "target": [0], "observed": ' + token + b"}"
        r = await client.post(
            "/v1/diagnose/cross_entropy", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == 400, (token, r.text)


@pytest.mark.parametrize(
    ("name", "sample"), ERROR_CASES, ids=[f"{n}-{s.note}" for n, s in ERROR_CASES]
)
async def test_refusals_are_the_losses_own(
    client: httpx.AsyncClient, name: str, sample: ErrorSample
) -> None:
    """Every error sample of the loss is refused identically, with or without 'observed'."""
    a = await client.post(f"/v1/losses/{name}", json=sample.body)
    for body in (sample.body, sample.body | {"observed": 1.0}):
        b = await client.post(f"/v1/diagnose/{name}", json=body)
        assert b.status_code == a.status_code == sample.status
        assert b.json()["field"] == a.json()["field"] == sample.field
        assert b.json()["detail"] == a.json()["detail"]


@pytest.mark.parametrize("name", NAMES)
async def test_examples_are_diagnosed(client: httpx.AsyncClient, name: str) -> None:
    body = registry.require(name).example()
    loss = await client.post(f"/v1/losses/{name}", json=body)
    value = loss.json()["value"]
    out = await diagnosed(client, name, body | {"observed": value})
    assert out["matches"][0]["id"] == "torch"
    ids = [c["id"] for c in out["candidates"]]
    assert len(ids) == len(set(ids))
    entry = conventions_registry.require(name)
    assert set(ids) <= set(entry.row_ids) | set(entry.mistake_ids)


@pytest.mark.parametrize("name", NAMES)
async def test_module_names_answer_as_the_functional_name(
    client: httpx.AsyncClient, name: str
) -> None:
    body = registry.require(name).example() | {"observed": 1.0}
    a = await client.post(f"/v1/diagnose/{name}", json=body)
    b = await client.post(f"/v1/diagnose/{registry.require(name).module}", json=body)
    assert a.status_code == b.status_code == 200
    assert b.content == a.content


@pytest.mark.parametrize("name", ["crossentropy", "no_such_loss"])
async def test_an_unknown_loss_is_404_with_the_usual_suggestion(
    client: httpx.AsyncClient, name: str
) -> None:
    a = await client.post(f"/v1/losses/{name}", json={})
    b = await client.post(f"/v1/diagnose/{name}", json={"observed": 1.0})
    assert a.status_code == b.status_code == 404
    assert b.json()["detail"] == a.json()["detail"]


async def test_limits_bind_as_they_bind_the_loss() -> None:
    from service.app import create_app

    app = create_app(cpu_settings(max_elements=12, max_body_bytes=400))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            big = {"input": [[0.1] * 3] * 5, "target": [0] * 5}
            a = await c.post("/v1/losses/cross_entropy", json=big)
            b = await c.post("/v1/diagnose/cross_entropy", json=big | {"observed": 1.0})
            assert a.status_code == b.status_code == 422
            assert b.json()["detail"] == a.json()["detail"]
            huge = ARTICLE | {"observed": 1.0, "pad": "x" * 500}
            r = await c.post("/v1/diagnose/cross_entropy", json=huge)
            assert r.status_code == 413


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/diagnose/cross_entropy",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
