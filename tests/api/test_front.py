"""The small-request front (``service.api.inline.SmallFront``, called by ``ServiceApp`` before
FastAPI's middleware stack) answers exactly as the stack does: same bytes, request ids, API
keys, admission, body-time limit, and unexpected errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from service.app import ServiceApp, create_app
from service.settings import Settings

pytestmark = pytest.mark.anyio

CE = "/v1/losses/cross_entropy"
BODY = orjson.dumps({"input": [[0.2, 0.3, 0.5], [1.0, 2.0, 3.0]], "target": [2, 0]})
KEY = "k" * 32


def make(**overrides: Any) -> FastAPI:
    return create_app(Settings(device="cpu", **overrides))


async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


@pytest.fixture(scope="module")
async def keyed() -> AsyncIterator[httpx.AsyncClient]:
    async for c in client_of(make(api_keys=[KEY])):
        yield c


@pytest.fixture(scope="module")
async def routed() -> AsyncIterator[httpx.AsyncClient]:
    """No front and no inline answers: every request through the stack and the route."""
    app = make(inline_max_bytes=0)
    assert isinstance(app, ServiceApp)
    assert app.front is not None
    assert not app.front.enabled
    async for c in client_of(app):
        yield c


def scope(**headers: str) -> dict[str, Any]:
    raw = [(k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "method": "POST", "path": CE, "headers": raw}


def test_what_the_front_takes(app: FastAPI) -> None:
    front = app.front  # type: ignore[attr-defined]
    assert front.takes(scope(content_length="100")) == "cross_entropy"
    assert front.takes(scope(content_length="100000")) is None  # the stack's inline limit
    assert front.takes(scope()) is None  # chunked or no body
    assert front.takes(scope(content_length="10", transfer_encoding="chunked")) is None
    assert front.takes(scope(content_length="x")) is None  # the stack refuses it
    assert front.takes(scope(content_length="10") | {"method": "GET"}) is None
    assert front.takes(scope(content_length="10") | {"path": "/v1/losses/ctc_loss"}) is None
    assert front.takes(scope(content_length="10") | {"path": "/v1/losses/nope"}) is None
    assert front.takes(scope(content_length="10") | {"type": "websocket"}) is None


def test_cors_sends_everything_through_the_stack() -> None:
    app = make(cors_origins=["https://example.com"])
    assert not app.front.enabled  # type: ignore[attr-defined]


async def test_same_bytes_as_the_route(
    client: httpx.AsyncClient, routed: httpx.AsyncClient
) -> None:
    front, route = await client.post(CE, content=BODY), await routed.post(CE, content=BODY)
    assert (
        (front.status_code, front.content)
        == (route.status_code, route.content)
        == (
            200,
            route.content,
        )
    )
    assert front.headers["content-type"] == route.headers["content-type"]
    bad = orjson.dumps({"input": [[0.2, 0.3]], "target": [5]})
    front, route = await client.post(CE, content=bad), await routed.post(CE, content=bad)
    assert (front.status_code, front.content) == (route.status_code, route.content)
    assert front.headers["content-type"] == "application/problem+json"


async def test_request_ids_are_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.post(CE, content=BODY, headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = [(await client.post(CE, content=BODY)).headers["x-request-id"] for _ in range(2)]
    assert made[0] != made[1]
    refused = await client.post(CE, content=b"{", headers={"X-Request-ID": "err-1"})
    assert (refused.status_code, refused.headers["x-request-id"]) == (400, "err-1")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-API-Key": "wrong"}, 401),
        ({"X-API-Key": KEY}, 200),
        ({"Authorization": f"Bearer {KEY}"}, 200),
    ],
)
async def test_api_keys(keyed: httpx.AsyncClient, headers: dict[str, str], status: int) -> None:
    r = await keyed.post(CE, content=BODY, headers=headers)
    assert r.status_code == status
    assert "x-request-id" in r.headers


async def test_a_full_service_refuses(app: FastAPI, client: httpx.AsyncClient) -> None:
    admission = app.state.service.admission
    held = admission.capacity
    admission.admitted += held
    try:
        r = await client.post(CE, content=BODY)
    finally:
        admission.admitted -= held
    assert r.status_code == 503
    assert "retry-after" in r.headers
    assert admission.admitted == 0


async def test_an_unexpected_error_is_the_stacks_500(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(app.state.service.dataplane, "compute_json", boom)
    r = await client.post(CE, content=BODY)
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert "boom" not in r.text


async def test_a_body_that_never_arrives_is_408() -> None:
    app = make(body_timeout=0.05)
    sent: list[dict[str, Any]] = []
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": BODY[:5], "more_body": True}
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    full = scope(content_length=str(len(BODY))) | {
        "http_version": "1.1",
        "scheme": "http",
        "query_string": b"",
        "root_path": "",
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
    }
    async with app.router.lifespan_context(app):
        await asyncio.wait_for(app(full, receive, send), 5)  # type: ignore[arg-type]
    assert sent[0]["status"] == 408
    assert app.state.service.admission.admitted == 0
