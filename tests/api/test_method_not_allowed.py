"""405 answers carry ``Allow`` with every method served on the path (RFC 9110 §15.5.6), for
each route family, whatever router wraps the routes."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.anyio

CASES = [
    ("DELETE", "/v1/losses/cross_entropy", "GET, POST"),
    ("PUT", "/v1/losses/cross_entropy", "GET, POST"),
    ("DELETE", "/v1/losses/CrossEntropyLoss", "GET, POST"),
    ("PATCH", "/v1/losses/triplet_margin_with_distance_loss", "GET, POST"),
    ("POST", "/v1/losses", "GET"),
    ("DELETE", "/v1/losses", "GET"),
    ("GET", "/v1/losses:batch", "POST"),
    ("PUT", "/v1/losses:batch", "POST"),
    ("POST", "/v2", "GET"),
    ("POST", "/v2/models/cross_entropy", "GET"),
    ("POST", "/v2/models/cross_entropy/versions/1", "GET"),
    ("POST", "/v2/models/cross_entropy/ready", "GET"),
    ("GET", "/v2/models/cross_entropy/infer", "POST"),
    ("GET", "/v2/models/cross_entropy/versions/1/infer", "POST"),
    ("POST", "/v2/health/live", "GET"),
    ("DELETE", "/v2/health/ready", "GET"),
]


@pytest.mark.parametrize(("method", "path", "allow"), CASES, ids=[f"{m} {p}" for m, p, _ in CASES])
async def test_405_lists_the_methods_served(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    r = await client.request(method, path)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allow
    if path.startswith("/v2"):  # the Open Inference Protocol's envelope
        assert method in r.json()["error"]
        return
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"].endswith("/method-not-allowed")
    assert method in problem["detail"]


@pytest.mark.parametrize(("method", "path", "allow"), CASES, ids=[f"{m} {p}" for m, p, _ in CASES])
async def test_every_listed_method_is_served(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    """No method named in Allow answers 405 itself."""
    for listed in allow.split(", "):
        assert (await client.request(listed, path)).status_code != 405
