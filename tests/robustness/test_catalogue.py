"""The bad-input catalogue: each kind of bad request, on each endpoint family, gets its documented
4xx with the documented media type and names the offending field, and the service answers a
good request correctly right after.

The catalogue is a table; an endpoint family added later (``/v2/models/*/infer``, the batch
endpoint) appends its rows (``envelope="oip"`` for the protocol's ``{"error": ...}`` body).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI

from service.api.problems import PROBLEM_MEDIA_TYPE
from tests.robustness.conftest import (
    ARTICLE,
    SMALL_LIMITS,
    asgi_client,
    assert_article_ok,
    small_app,
)

pytestmark = pytest.mark.anyio

CE = "/v1/losses/cross_entropy"
OK_INPUT = [[1.0, 2.0, 3.0], [0.5, 0.1, -1.0]]
OK_TARGET = [2, 0]
OK = {"input": OK_INPUT, "target": OK_TARGET}
_ABSENT = object()


def ce(**changes: Any) -> dict[str, Any]:
    """A valid cross-entropy body with ``changes`` applied (``_ABSENT`` removes a field)."""
    body = {**OK, **changes}
    return {k: v for k, v in body.items() if v is not _ABSENT}


BATCH = "/v1/losses:batch"
V2 = "/v2/models/cross_entropy/infer"
V2_VERSIONED = "/v2/models/cross_entropy/versions/9/infer"
V2_INPUT: dict[str, Any] = {
    "name": "input",
    "shape": [2, 3],
    "datatype": "FP32",
    "data": [x for row in OK_INPUT for x in row],
}
V2_TARGET: dict[str, Any] = {"name": "target", "shape": [2], "datatype": "INT64", "data": OK_TARGET}


def infer(*inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An inference request; ``data: None`` in an input removes the key."""
    cleaned = [{k: v for k, v in i.items() if v is not None} for i in inputs]
    return {"inputs": cleaned, **extra}


def nested(depth: int) -> Any:
    value: Any = 1.0
    for _ in range(depth):
        value = [value]
    return value


@dataclass(frozen=True)
class Bad:
    """One bad request and what the service must answer."""

    id: str
    status: int
    field: str | None = None
    """The field the answer names (``""`` is the body as a whole); None: no field applies."""
    json: Any = _ABSENT
    content: bytes | None = None
    method: str = "POST"
    path: str = CE
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    envelope: Literal["problem", "oip"] = "problem"
    code: str | None = None
    """The problem type's last segment, where it is more specific than the status."""


MAX_BODY = SMALL_LIMITS["max_body_bytes"]
TOO_LARGE = b'{"input": [' + b"0.0," * (MAX_BODY // 4) + b'0.0], "target": 0}'

CATALOGUE: list[Bad] = [
    # -- the body is not JSON (400) --------------------------------------------------------
    Bad("empty-body", 400, content=b""),
    Bad("not-json", 400, content=b"input=1&target=2"),
    Bad("truncated-json", 400, content=b'{"input": [[1.0, 2.0], [3.0'),
    Bad("trailing-garbage", 400, content=b'{"input": [[1.0]], "target": [0]} x'),
    Bad("invalid-utf8", 400, content=b'{"input": [[1.0]], "target": [0], "dtype": "\xff\xfe"}'),
    Bad("bare-nan-token", 400, content=b'{"input": [[NaN, 1.0]], "target": [0]}'),
    Bad("bare-infinity-token", 400, content=b'{"input": [[Infinity, 1.0]], "target": [0]}'),
    Bad("single-quotes", 400, content=b"{'input': [[1.0]], 'target': [0]}"),
    Bad("content-length-not-a-number", 400, content=b"{}", headers={"content-length": "ten"}),
    # -- the body is JSON of the wrong shape (422) ------------------------------------------
    Bad("body-is-array", 422, "", json=[OK_INPUT, OK_TARGET]),
    Bad("body-is-number", 422, "", json=3.5),
    Bad("body-is-null", 422, "", content=b"null"),
    Bad("missing-input", 422, "input", json=ce(input=_ABSENT)),
    Bad("missing-target", 422, "target", json=ce(target=_ABSENT)),
    Bad("unknown-field", 422, "logits", json=ce(logits=OK_INPUT)),
    # -- tensors that are not numeric tensors (422) -----------------------------------------
    Bad("input-string", 422, "input", json=ce(input="[[1, 2]]")),
    Bad("input-null", 422, "input", json=ce(input=None)),
    Bad("input-object", 422, "input", json=ce(input={"data": OK_INPUT})),
    Bad("input-bool", 422, "input", json=ce(input=True)),
    Bad("input-ragged", 422, "input", json=ce(input=[[1.0, 2.0, 3.0], [1.0]])),
    Bad("input-bool-element", 422, "input", json=ce(input=[[1.0, True, 3.0], [0.5, 0.1, -1.0]])),
    Bad("input-null-element", 422, "input", json=ce(input=[[1.0, None, 3.0], [0.5, 0.1, 1.0]])),
    Bad("input-nan-string", 422, "input", json=ce(input=[["NaN", 1.0, 3.0], [0.5, 0.1, 1.0]])),
    Bad("number-overflows-to-inf", 400, content=b'{"input": [[1e999, 1.0]], "target": [0]}'),
    Bad("target-beyond-int64", 422, "target", json=ce(target=[2**70, 0])),
    Bad("input-mixed-depth", 422, "input", json=ce(input=[[1.0, [2.0], 3.0], [1.0, 1.0, 1.0]])),
    Bad("input-empty-class-dim", 422, "input", json=ce(input=[[], []])),
    # -- shapes and values torch would refuse (422) -----------------------------------------
    Bad("target-fractional", 422, "target", json=ce(target=[2.5, 0])),
    Bad("target-out-of-range", 422, "target", json=ce(target=[3, 0])),
    Bad("target-negative", 422, "target", json=ce(target=[-3, 0])),
    Bad("target-wrong-batch", 422, "target", json=ce(target=[0, 1, 2])),
    Bad("target-probabilities-wrong-shape", 422, "target", json=ce(target=[[0.5, 0.5]] * 2)),
    Bad("weight-wrong-length", 422, "weight", json=ce(weight=[1.0, 2.0])),
    Bad("weight-rank-2", 422, "weight", json=ce(weight=[[1.0, 1.0, 1.0]])),
    Bad("input-rank-0", 422, "input", json=ce(input=1.0, target=0)),
    # -- options (422) ----------------------------------------------------------------------
    Bad("reduction-unknown", 422, "reduction", json=ce(reduction="average")),
    Bad("reduction-null", 422, "reduction", json=ce(reduction=None)),
    Bad("dtype-unknown", 422, "dtype", json=ce(dtype="float128")),
    Bad("dtype-number", 422, "dtype", json=ce(dtype=32)),
    Bad("label-smoothing-above-one", 422, "label_smoothing", json=ce(label_smoothing=1.5)),
    Bad("label-smoothing-string", 422, "label_smoothing", json=ce(label_smoothing="0.1")),
    Bad("ignore-index-fractional", 422, "ignore_index", json=ce(ignore_index=1.5)),
    Bad("reference-string", 422, "reference", json=ce(reference="yes")),
    Bad("include-unknown", 422, "include", json=ce(include=["hessian"])),
    Bad("include-not-a-list", 422, "include", json=ce(include="grad")),
    Bad("include-too-long", 422, "include", json=ce(include=["grad"] * 17)),
    # -- limits (422 limit-exceeded, 413) ---------------------------------------------------
    Bad("rank-above-limit", 422, "input", json=ce(input=nested(5)), code="limit-exceeded"),
    Bad(
        "dimension-above-limit",
        422,
        "input",
        json=ce(input=[[0.0] * 513], target=[0]),
        code="limit-exceeded",
    ),
    Bad(
        "elements-above-limit",
        422,
        "input",
        json=ce(input=[[0.0] * 500] * 9, target=[0] * 9),
        code="limit-exceeded",
    ),
    Bad("nesting-above-limit", 422, "extra", json=ce(extra=nested(8)), code="limit-exceeded"),
    Bad(
        "nesting-100k-deep",
        422,
        "input",
        content=b'{"input": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        code="limit-exceeded",
    ),
    Bad(
        "nesting-unclosed",
        422,
        "input",
        content=b'{"input": ' + b"[" * 1000,
        code="limit-exceeded",
    ),
    Bad("body-above-limit", 413, content=TOO_LARGE, code="payload-too-large"),
    Bad(
        "content-length-above-limit",
        413,
        content=b"{}",
        headers={"content-length": str(MAX_BODY + 1)},
        code="payload-too-large",
    ),
    # -- routes and methods (404, 405) ------------------------------------------------------
    Bad("unknown-loss", 404, json=OK, path="/v1/losses/crossentropy"),
    Bad("unknown-loss-get", 404, method="GET", path="/v1/losses/crossentropy"),
    Bad("unknown-route", 404, method="GET", path="/v1/nothing"),
    Bad("loss-put", 405, json=OK, method="PUT"),
    Bad("losses-delete", 405, method="DELETE", path="/v1/losses"),
    Bad("health-unknown", 404, method="GET", path="/v2/health/dead", envelope="oip"),
    Bad("health-post", 405, json={}, path="/v2/health/live", envelope="oip"),
    Bad("ready-post", 405, json={}, path="/v2/health/ready", envelope="oip"),
    # -- the Open Inference Protocol: {"error": ...} with the protocol's 400/404 -----------------
    Bad("v2-not-json", 400, content=b'{"inputs": [', path=V2, envelope="oip"),
    Bad("v2-no-inputs", 400, "inputs", json={}, path=V2, envelope="oip"),
    Bad("v2-inputs-not-a-list", 400, "inputs", json={"inputs": {}}, path=V2, envelope="oip"),
    Bad("v2-missing-target", 400, "target", json=infer(V2_INPUT), path=V2, envelope="oip"),
    Bad(
        "v2-unknown-input",
        400,
        "logits",
        json=infer(V2_INPUT, V2_TARGET, {**V2_INPUT, "name": "logits"}),
        path=V2,
        envelope="oip",
    ),
    Bad(
        "v2-data-shape-mismatch",
        400,
        "input",
        json=infer({**V2_INPUT, "data": [1.0] * 5}, V2_TARGET),
        path=V2,
        envelope="oip",
    ),
    Bad(
        "v2-unknown-datatype",
        400,
        "FP8",
        json=infer({**V2_INPUT, "datatype": "FP8"}, V2_TARGET),
        path=V2,
        envelope="oip",
    ),
    Bad(
        "v2-binary-without-header",
        400,
        json=infer({**V2_INPUT, "data": None, "parameters": {"binary_data_size": 24}}, V2_TARGET),
        path=V2,
        envelope="oip",
    ),
    Bad(
        "v2-header-past-the-body",
        400,
        content=b'{"inputs": []}',
        headers={"inference-header-content-length": "999"},
        path=V2,
        envelope="oip",
    ),
    Bad(
        "v2-target-out-of-range",
        400,
        "target",
        json=infer(V2_INPUT, {**V2_TARGET, "data": [5, 0]}),
        path=V2,
        envelope="oip",
    ),
    Bad(
        "v2-unknown-reduction",
        400,
        "reduction",
        json=infer(V2_INPUT, V2_TARGET, parameters={"reduction": "avg"}),
        path=V2,
        envelope="oip",
    ),
    Bad(
        "v2-unknown-output",
        400,
        "nope",
        json=infer(V2_INPUT, V2_TARGET, outputs=[{"name": "nope"}]),
        path=V2,
        envelope="oip",
    ),
    Bad(
        "v2-unknown-model", 404, "nope", json=infer(), path="/v2/models/nope/infer", envelope="oip"
    ),
    Bad("v2-unknown-version", 404, json=infer(), path=V2_VERSIONED, envelope="oip"),
    # -- the batch envelope (an item's own errors are answered inside a 200) ------------------
    Bad("batch-not-json", 400, content=b'{"items": [', path=BATCH),
    Bad("batch-body-is-array", 422, "", json=[], path=BATCH),
    Bad("batch-items-missing", 422, "items", json={}, path=BATCH),
    Bad("batch-items-not-a-list", 422, "items", json={"items": 3}, path=BATCH),
    Bad("batch-unknown-field", 422, "extra", json={"items": [], "extra": 1}, path=BATCH),
    Bad(
        "batch-too-many-items",
        422,
        "items",
        json={"items": [{"loss": "cross_entropy", "args": OK}] * 9},
        path=BATCH,
    ),
    Bad("batch-get", 405, method="GET", path=BATCH),
]


def chunked(content: bytes) -> AsyncIterator[bytes]:
    async def parts() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 8192):
            yield content[start : start + 8192]

    return parts()


CHUNKED = [
    Bad("chunked-body-above-limit", 413, content=TOO_LARGE, code="payload-too-large"),
]


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return small_app()


@pytest.fixture(scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(app) as c:
        yield c


def test_the_catalogue_is_broad() -> None:
    assert len({case.id for case in CATALOGUE + CHUNKED}) == len(CATALOGUE + CHUNKED) >= 40


async def send(client: httpx.AsyncClient, case: Bad, *, stream: bool = False) -> httpx.Response:
    kwargs: dict[str, Any] = {"headers": dict(case.headers)}
    if case.json is not _ABSENT:
        kwargs["json"] = case.json
    elif case.content is not None:
        kwargs["content"] = chunked(case.content) if stream else case.content
    return await client.request(case.method, case.path, **kwargs)


def check(response: httpx.Response, case: Bad) -> None:
    assert response.status_code == case.status, response.text[:500]
    if case.envelope == "oip":
        assert response.headers["content-type"] == "application/json"
        error = response.json()["error"]
        assert isinstance(error, str)
        if case.field:
            assert case.field in error
        return
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem = response.json()
    assert problem["status"] == case.status
    assert problem["title"]
    assert problem["detail"]
    assert problem.get("field") == case.field, problem
    if case.field:
        assert f"'{case.field}'" in problem["detail"]
    if case.code:
        assert problem["type"].endswith("/" + case.code)


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.id for c in CATALOGUE])
async def test_bad_input_is_refused_then_service_answers(
    client: httpx.AsyncClient, case: Bad
) -> None:
    check(await send(client, case), case)
    assert_article_ok(await client.post(CE, json=ARTICLE))


@pytest.mark.parametrize("case", CHUNKED, ids=[c.id for c in CHUNKED])
async def test_streamed_bad_input_is_refused(client: httpx.AsyncClient, case: Bad) -> None:
    """Without a Content-Length the limit applies as the chunks arrive."""
    response = await send(client, case, stream=True)
    check(response, case)
    assert_article_ok(await client.post(CE, json=ARTICLE))
