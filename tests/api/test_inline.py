"""Small bodies are answered before routing (``service.api.inline``), larger ones by the route:
the two answer the same bytes, the same problems and the same statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from service import losses
from service.api.inline import InlineSmallLosses, asks_precision
from service.app import create_app
from service.losses import registry
from service.losses.base import Loss
from service.settings import Settings

losses.load()
pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def routed_app() -> FastAPI:
    """The same service with inline answers switched off: every body goes through the route."""
    return create_app(Settings(device="cpu", inline_max_bytes=0))


@pytest.fixture(scope="module")
async def routed(routed_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with routed_app.router.lifespan_context(routed_app):
        transport = httpx.ASGITransport(app=routed_app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


BODIES = [(loss, loss.example()) for loss in registry.all_losses()] + [
    (loss, e.body) for loss in registry.all_losses() for e in loss.error_samples()
]


@pytest.mark.parametrize(
    ("loss", "body"), BODIES, ids=[f"{loss.name}-{i}" for i, (loss, _) in enumerate(BODIES)]
)
async def test_inline_and_routed_answers_are_identical(
    client: httpx.AsyncClient, routed: httpx.AsyncClient, loss: Loss[Any], body: dict[str, Any]
) -> None:
    raw = orjson.dumps(body)
    # (a few error samples exceed inline_max_bytes: both apps route those alike)
    inline = await client.post(f"/v1/losses/{loss.name}", content=raw)
    route = await routed.post(f"/v1/losses/{loss.name}", content=raw)
    assert (inline.status_code, inline.headers["content-type"]) == (
        route.status_code,
        route.headers["content-type"],
    )
    assert inline.content == route.content


async def test_malformed_small_body_is_400_problem(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/losses/cross_entropy", content=b'{"input": [1,')
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["instance"] == "/v1/losses/cross_entropy"


async def test_bodies_past_the_threshold_take_the_route(client: httpx.AsyncClient) -> None:
    limit = Settings().inline_max_bytes
    row = [0.5] * (limit // 8)
    body = {"input": [row, row], "target": [0, 1]}
    raw = orjson.dumps(body)
    assert len(raw) > limit
    r = await client.post("/v1/losses/cross_entropy", content=raw)
    assert r.status_code == 200, r.text
    small = await client.post(
        "/v1/losses/cross_entropy", content=orjson.dumps(body | {"input": [[0.5, 0.5]] * 2})
    )
    assert small.status_code == 200
    assert r.json().keys() == small.json().keys()


async def test_unknown_loss_still_404(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/losses/no_such_loss", content=b"{}")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("loss", list(registry.all_losses()), ids=lambda loss: loss.name)
def test_only_losses_declared_linear_are_computed_inline(app: FastAPI, loss: Loss[Any]) -> None:
    """A loss with a Python loop over its elements (CTC's lattice) is never computed on the
    event loop, however small its body."""
    middleware = InlineSmallLosses(app, app.state.service)
    scope = {
        "type": "http",
        "method": "POST",
        "path": f"/v1/losses/{loss.name}",
        "headers": [(b"content-length", b"100")],
    }
    assert (middleware._small_loss_request(scope) == loss.name) is loss.inline
    assert (
        middleware._small_loss_request(scope | {"headers": [(b"content-length", b"5000")]}) is None
    )
    assert middleware._small_loss_request(scope | {"method": "GET"}) is None
    assert middleware._small_loss_request(scope | {"headers": []}) is None  # chunked


def test_ctc_is_not_inline() -> None:
    ctc = registry.get("ctc_loss")
    assert ctc is not None
    assert not ctc.inline


PRECISION_BODY = {"input": [[0.2, 0.3, 0.5], [1.0, 2.0, 3.0]], "target": [2, 0]}
MSE_BODY = {"input": [1.0, 2.0], "target": [1.5, 2.5]}


@pytest.mark.parametrize(
    ("raw", "asks"),
    [
        (orjson.dumps(PRECISION_BODY), False),
        (orjson.dumps(PRECISION_BODY | {"include": ["precision"]}), True),
        (orjson.dumps(PRECISION_BODY | {"include": ["grad", "precision"]}), True),
        (orjson.dumps(PRECISION_BODY | {"include": ["grad"]}), False),
        (b'{"input": [[1.0, 2.0]], "target": [0], "include": ["\\u0070recision"]}', True),
        (b'{"input": [[1.0, 2.0]], "target": [0], "include": ["\\u0067rad"]}', False),
        (b'{"input": [[1.0, 2.0]], "target": [0], "precision": true}', False),
        (b'{"include": "precision"}', False),  # not a list: the data plane refuses it
        (b'["precision"]', False),  # not an object: refused as well
        (b'{"include": ["precision"', False),  # not JSON: the data plane's 400
    ],
)
def test_asks_precision(raw: bytes, asks: bool) -> None:
    assert asks_precision(raw) is asks
    assert asks_precision(bytearray(raw)) is asks


@pytest.mark.parametrize("front", [True, False], ids=["front", "inline-middleware"])
async def test_precision_goes_to_the_worker_pool(
    routed: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, front: bool
) -> None:
    """A small body asking for the precision extra (torch in four dtypes beside the reference)
    is computed by the route in the worker pool, never on the event loop, by the front and by
    the inline middleware alike (CORS switches the front off, not the middleware); the answer
    is the route's, byte for byte. A small body without it is still computed inline."""
    app = create_app(Settings(device="cpu", cors_origins=[] if front else ["https://a.example"]))
    assert app.front.enabled is front  # type: ignore[attr-defined]
    state = app.state.service
    calls: list[str] = []
    run_inline, run = state.run_inline, state.run

    def spy_inline(fn: Any) -> Any:
        calls.append("inline")
        return run_inline(fn)

    async def spy_run(fn: Any) -> Any:
        calls.append("pool")
        return await run(fn)

    monkeypatch.setattr(state, "run_inline", spy_inline)
    monkeypatch.setattr(state, "run", spy_run)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            for include, where in ((["precision"], "pool"), (["grad"], "inline")):
                for name, body in (("cross_entropy", PRECISION_BODY), ("mse_loss", MSE_BODY)):
                    raw = orjson.dumps(body | {"include": include})
                    calls.clear()
                    got = await c.post(f"/v1/losses/{name}", content=raw)
                    assert calls == [where], name
                    want = await routed.post(f"/v1/losses/{name}", content=raw)
                    assert got.status_code == 200, got.text
                    assert got.content == want.content
                    assert ("precision" in got.json()["extras"]) is (where == "pool")
