"""API keys, CORS and request ids: off unless configured, and exact when configured."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from service.api.problems import PROBLEM_MEDIA_TYPE
from service.settings import Settings
from tests.robustness.conftest import ARTICLE, asgi_client, assert_article_ok, small_app

pytestmark = pytest.mark.anyio

CE = "/v1/losses/cross_entropy"
KEYS = ["k1-0123456789abcdef", "second-key"]
ORIGIN = "https://ui.example"


@pytest.fixture(scope="module")
async def keyed() -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(small_app(api_keys=KEYS)) as c:
        yield c


@pytest.fixture(scope="module")
async def plain() -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(small_app()) as c:
        yield c


OPEN = 200
CLOSED = 401

AUTH_CASES = [
    # (id, method, path, headers, status)
    ("no-key", "POST", CE, {}, CLOSED),
    ("wrong-bearer", "POST", CE, {"Authorization": "Bearer nope"}, CLOSED),
    ("prefix-of-a-key", "POST", CE, {"Authorization": f"Bearer {KEYS[0][:-1]}"}, CLOSED),
    ("key-plus-a-byte", "POST", CE, {"Authorization": f"Bearer {KEYS[0]}x"}, CLOSED),
    ("basic-scheme", "POST", CE, {"Authorization": f"Basic {KEYS[0]}"}, CLOSED),
    ("empty-bearer", "POST", CE, {"Authorization": "Bearer "}, CLOSED),
    ("wrong-x-api-key", "POST", CE, {"X-API-Key": "nope"}, CLOSED),
    ("bearer", "POST", CE, {"Authorization": f"Bearer {KEYS[0]}"}, OPEN),
    ("bearer-lowercase", "POST", CE, {"Authorization": f"bearer {KEYS[1]}"}, OPEN),
    ("x-api-key", "POST", CE, {"X-API-Key": KEYS[1]}, OPEN),
    ("list-without-key", "GET", "/v1/losses", {}, CLOSED),
    ("list-with-key", "GET", "/v1/losses", {"X-API-Key": KEYS[0]}, OPEN),
    ("unknown-route-without-key", "GET", "/v1/secret", {}, CLOSED),
    ("liveness-open", "GET", "/v2/health/live", {}, OPEN),
    ("readiness-open", "GET", "/v2/health/ready", {}, OPEN),
    ("openapi-open", "GET", "/openapi.json", {}, OPEN),
    ("docs-open", "GET", "/docs", {}, OPEN),
]


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [case[1:] for case in AUTH_CASES],
    ids=[case[0] for case in AUTH_CASES],
)
async def test_api_keys(
    keyed: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    body = ARTICLE if method == "POST" else None
    response = await keyed.request(method, path, headers=headers, json=body)
    assert response.status_code == status, response.text
    if status == CLOSED:
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["type"].endswith("/unauthorized")
        assert KEYS[0] not in response.text
    elif path == CE:
        assert_article_ok(response)


async def test_without_keys_everything_is_open(plain: httpx.AsyncClient) -> None:
    assert_article_ok(await plain.post(CE, json=ARTICLE))
    assert (await plain.get("/v1/losses")).status_code == 200


async def test_docs_can_be_closed_too() -> None:
    async with asgi_client(small_app(api_keys=KEYS, open_docs=False)) as client:
        assert (await client.get("/openapi.json")).status_code == 401
        assert (await client.get("/docs")).status_code == 401
        assert (await client.get("/openapi.json", headers={"X-API-Key": KEYS[0]})).is_success
        assert (await client.get("/v2/health/ready")).status_code == 200


async def test_the_openapi_document_declares_the_keys(keyed: httpx.AsyncClient) -> None:
    doc = (await keyed.get("/openapi.json")).json()
    assert set(doc["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert "401" in doc["paths"][CE]["post"]["responses"]
    assert doc["paths"]["/v2/health/ready"]["get"]["security"] == []


def test_keys_and_origins_come_comma_separated_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOSS_SERVICE_API_KEYS", f" {KEYS[0]} , {KEYS[1]},")
    monkeypatch.setenv("LOSS_SERVICE_CORS_ORIGINS", f"{ORIGIN},https://other.example")
    settings = Settings()
    assert [k.get_secret_value() for k in settings.api_keys] == KEYS
    assert settings.cors_origins == [ORIGIN, "https://other.example"]
    assert KEYS[0] not in repr(settings)


# -- CORS ----------------------------------------------------------------------------------------

PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type, x-api-key",
}


async def test_cors_is_off_by_default(plain: httpx.AsyncClient) -> None:
    preflight = await plain.options(CE, headers=PREFLIGHT)
    assert "access-control-allow-origin" not in preflight.headers
    response = await plain.post(CE, json=ARTICLE, headers={"Origin": ORIGIN})
    assert_article_ok(response)
    assert "access-control-allow-origin" not in response.headers


@pytest.fixture(scope="module")
async def cors_app() -> FastAPI:
    return small_app(cors_origins=[ORIGIN], api_keys=KEYS)


async def test_cors_allows_configured_origins_only(cors_app: FastAPI) -> None:
    async with asgi_client(cors_app) as client:
        preflight = await client.options(CE, headers=PREFLIGHT)  # no key: preflights carry none
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        other = await client.options(CE, headers={**PREFLIGHT, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        response = await client.post(
            CE, json=ARTICLE, headers={"Origin": ORIGIN, "X-API-Key": KEYS[0]}
        )
        assert_article_ok(response)
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert "x-request-id" in response.headers["access-control-expose-headers"].lower()
        refused = await client.post(CE, json=ARTICLE, headers={"Origin": ORIGIN})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == ORIGIN  # readable by the page


# -- request ids ---------------------------------------------------------------------------------

GENERATED = re.compile(r"[0-9a-f]{16}-[0-9a-f]{8,}")


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        (None, False),
        ("req-42", True),
        ("trace:abc/def=1", True),
        ("has spaces", False),
        ("x" * 129, False),
        ("ünïcode", False),
    ],
    ids=["absent", "plain", "trace-like", "spaces", "too-long", "non-ascii"],
)
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("POST", CE, ARTICLE), ("POST", CE, {"input": "x"}), ("GET", "/nowhere", None)],
    ids=["ok", "invalid", "not-found"],
)
async def test_request_id_on_every_response(
    plain: httpx.AsyncClient,
    sent: str | None,
    echoed: bool,
    method: str,
    path: str,
    body: object,
) -> None:
    headers = {b"X-Request-ID": sent.encode()} if sent is not None else {}
    response = await plain.request(method, path, json=body, headers=headers)
    got = response.headers.get_list("x-request-id")
    assert len(got) == 1
    if echoed:
        assert got[0] == sent
    else:
        assert GENERATED.fullmatch(got[0])


async def test_request_id_on_a_refusal_before_the_app(keyed: httpx.AsyncClient) -> None:
    response = await keyed.post(CE, json=ARTICLE, headers={"X-Request-ID": "r-401"})
    assert response.status_code == 401
    assert response.headers["x-request-id"] == "r-401"


async def test_made_request_ids_differ(plain: httpx.AsyncClient) -> None:
    ids = {(await plain.get("/v2/health/live")).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5
