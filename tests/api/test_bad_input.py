"""Every kind of bad request the cross-entropy issue lists: a 4xx problem+json naming the field.

Each row is (name, raw body, expected status, field named). The service must answer the next
good request correctly.
"""

from __future__ import annotations

import json

import httpx
import pytest

from service.app import create_app
from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from tests.conftest import cpu_settings

pytestmark = pytest.mark.anyio

URL = "/v1/losses/cross_entropy"
GOOD = {"input": [[0.2, 1.5, -0.3], [1.0, 0.0, 2.0]], "target": [1, 2]}


def body(**changes: object) -> bytes:
    merged = {**GOOD, **changes}
    return json.dumps({k: v for k, v in merged.items() if v is not ...}).encode()


def nested(depth: int) -> str:
    return "[" * depth + "1.0" + "]" * depth


CASES: list[tuple[str, bytes, int, str | None]] = [
    ("malformed json", b'{"input": [[1, 2', 400, None),
    ("empty body", b"", 400, None),
    ("not json at all", b"\x00\xff\xfe", 400, None),
    ("bare NaN token", b'{"input": [[NaN, 1.0]], "target": [0]}', 400, None),
    ("body is a list", b"[1, 2, 3]", 422, ""),
    ("ragged input", body(input=[[0.1, 0.2, 0.3], [0.1, 0.2]]), 422, "input"),
    ("string in input", body(input=[["a", 0.2, 0.3], [0.1, 0.2, 0.3]]), 422, "input"),
    ("NaN as a string", body(input=[["NaN", 0.2, 0.3], [0.1, 0.2, 0.3]]), 422, "input"),
    ("null in input", body(input=[[None, 0.2, 0.3], [0.1, 0.2, 0.3]]), 422, "input"),
    ("boolean in input", body(input=[[True, 0.2, 0.3], [0.1, 0.2, 0.3]]), 422, "input"),
    ("object as input", body(input={"a": 1}), 422, "input"),
    ("scalar input (no class dim)", body(input=1.5, target=0), 422, "input"),
    ("empty class dimension", body(input=[[], []], target=[0, 0]), 422, "input"),
    ("target rank mismatch", body(target=[[1], [2]]), 422, "target"),
    ("target batch mismatch", body(target=[1, 2, 0]), 422, "target"),
    ("index out of range", body(target=[1, 3]), 422, "target"),
    ("negative index", body(target=[1, -1]), 422, "target"),
    ("fractional index", body(target=[1, 0.5]), 422, "target"),
    ("string target", body(target=["1", "2"]), 422, "target"),
    ("weight wrong length", body(weight=[1.0, 2.0]), 422, "weight"),
    ("weight wrong rank", body(weight=[[1.0, 2.0, 3.0]]), 422, "weight"),
    ("unknown reduction", body(reduction="avg"), 422, "reduction"),
    ("reduction not a string", body(reduction=1), 422, "reduction"),
    ("unknown dtype", body(dtype="int8"), 422, "dtype"),
    ("label_smoothing above 1", body(label_smoothing=1.5), 422, "label_smoothing"),
    ("label_smoothing below 0", body(label_smoothing=-0.1), 422, "label_smoothing"),
    ("label_smoothing a string", body(label_smoothing="0.1"), 422, "label_smoothing"),
    ("ignore_index fractional", body(ignore_index=1.5), 422, "ignore_index"),
    ("missing input", body(input=...), 422, "input"),
    ("missing target", body(target=...), 422, "target"),
    ("unknown field", body(temperature=2.0), 422, "temperature"),
    ("deprecated size_average", body(size_average=True), 422, "size_average"),
    ("unknown include", body(include=["hessian"]), 422, "include"),
    ("reference not a boolean", body(reference="yes"), 422, "reference"),
    (
        "absurd nesting depth",
        b'{"input": ' + nested(40).encode() + b', "target": [0]}',
        422,
        "input",
    ),
    ("nesting past the parser's limit", b'{"input": ' + nested(5000).encode() + b"}", 422, "input"),
    ("huge integer", body(target=[10**30, 1]), 422, "target"),
]


@pytest.mark.parametrize(
    ("raw", "status", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_request_is_a_problem(
    client: httpx.AsyncClient, raw: bytes, status: int, field: str | None
) -> None:
    r = await client.post(URL, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    assert problem["type"].startswith("https://")
    assert problem.get("field") == field, problem
    if field:
        assert field in problem["detail"]
    after = await client.post(URL, json={"input": ARTICLE_INPUT, "target": ARTICLE_TARGET})
    assert after.status_code == 200


async def test_unknown_loss_is_404(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/losses/no_such_loss", json=GOOD)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert "no_such_loss" in r.json()["detail"]


async def test_body_over_the_limit_is_413() -> None:
    app = create_app(cpu_settings(max_body_bytes=1024))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        big = {"input": [[0.5] * 3] * 200, "target": [0] * 200}
        r = await c.post(URL, json=big)
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"
        small = await c.post(URL, json=GOOD)
        assert small.status_code == 200, small.text
