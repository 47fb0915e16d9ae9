"""The small-request front also answers small ``/v2`` infer requests on the loop: the bytes,
status and headers are the route's (an app with the front off computes them in its worker
pool), for every loss's example, JSON and binary, good and bad; a compressed body, another
version or a body over a loss's own inline cap goes to the route."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from fastapi import FastAPI

from service import losses
from service.api.inline import inline_limit
from service.app import create_app
from service.losses import registry
from service.losses.base import Loss
from service.settings import Settings
from tests.protocol.wire import Request, Tensor

losses.load()
pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def routed() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(device="cpu", inline_max_bytes=0))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


def v2_request(example: dict[str, Any], tensor_inputs: tuple[str, ...], binary: bool) -> Request:
    """A loss's ``/v1`` body as an inference request (FP32 floats, INT64 integers)."""
    inputs = []
    for name in tensor_inputs:
        if example.get(name) is None:
            continue
        arr = np.asarray(example[name])
        arr = arr.astype(np.int64) if arr.dtype.kind in "iub" else arr.astype(np.float32)
        datatype = "INT64" if arr.dtype.kind == "i" else "FP32"
        inputs.append(Tensor(name, datatype, arr, binary=binary))
    parameters = {k: v for k, v in example.items() if k not in tensor_inputs}
    return Request(inputs, parameters=parameters)


def same(front: httpx.Response, route: httpx.Response) -> None:
    assert (front.status_code, front.content) == (route.status_code, route.content)
    for name in ("content-type", "content-length", "inference-header-content-length"):
        assert front.headers.get(name) == route.headers.get(name), name
    assert "x-request-id" in front.headers


CASES = [
    (loss, binary) for loss in registry.all_losses() if loss.inline for binary in (False, True)
]


@pytest.mark.parametrize(
    ("loss", "binary"),
    CASES,
    ids=[f"{loss.name}-{'binary' if b else 'json'}" for loss, b in CASES],
)
async def test_every_example_is_answered_as_the_route_answers_it(
    client: httpx.AsyncClient, routed: httpx.AsyncClient, loss: Loss[Any], binary: bool
) -> None:
    body, headers = v2_request(loss.example(), loss.tensor_inputs, binary).encode()
    path = f"/v2/models/{loss.name}/infer"
    front, route = (
        await client.post(path, content=body, headers=headers),
        await routed.post(path, content=body, headers=headers),
    )
    assert front.status_code == 200, front.text
    same(front, route)


BAD = [
    b"{",  # not JSON
    b"[]",  # not an object
    orjson.dumps({"inputs": []}),
    orjson.dumps({"inputs": [{"name": "input", "shape": [2], "datatype": "FP32", "data": [1]}]}),
    orjson.dumps({"inputs": [{"name": "nope", "shape": [1], "datatype": "FP32", "data": [1.0]}]}),
    orjson.dumps(
        {
            "inputs": [
                {"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]},
                {"name": "target", "shape": [1], "datatype": "INT64", "data": [5]},
            ]
        }
    ),
    orjson.dumps(
        {
            "inputs": [
                {"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]},
                {"name": "target", "shape": [1], "datatype": "INT64", "data": [1]},
            ],
            "outputs": [{"name": "nope"}],
        }
    ),
]


@pytest.mark.parametrize("body", BAD, ids=range(len(BAD)))
@pytest.mark.parametrize(
    "path", ["/v2/models/cross_entropy/infer", "/v2/models/CrossEntropyLoss/versions/1/infer"]
)
async def test_refusals_are_the_routes(
    client: httpx.AsyncClient, routed: httpx.AsyncClient, body: bytes, path: str
) -> None:
    front, route = await client.post(path, content=body), await routed.post(path, content=body)
    assert front.status_code in (400, 404)
    same(front, route)


def test_what_the_front_takes_on_v2(app: FastAPI) -> None:
    front = app.front  # type: ignore[attr-defined]

    def takes(path: str, **headers: str) -> str | None:
        raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
        scope = {"type": "http", "method": "POST", "path": path, "headers": raw}
        return front.takes(scope)  # type: ignore[no-any-return]

    small = {"content_length": "200"}
    assert takes("/v2/models/cross_entropy/infer", **small) == "cross_entropy"
    assert takes("/v2/models/CrossEntropyLoss/infer", **small) == "CrossEntropyLoss"
    assert takes("/v2/models/cross_entropy/versions/1/infer", **small) == "cross_entropy"
    assert takes("/v2/models/cross_entropy/versions/2/infer", **small) is None  # the route's 404
    assert takes("/v2/models/nope/infer", **small) is None
    assert takes("/v2/models/ctc_loss/infer", **small) is None  # not inline
    assert takes("/v2/models/cross_entropy/infer", content_length="100000") is None
    assert takes("/v2/models/cross_entropy/infer", content_encoding="gzip", **small) is None
    assert takes("/v2/models/cross_entropy/infer", content_encoding="identity", **small) == (
        "cross_entropy"
    )
    assert takes("/v2/models/cross_entropy", **small) is None
    assert takes("/v2/models//infer", **small) is None


@pytest.mark.parametrize("prefix", ["/v1/losses/", "/v2/models/"])
def test_a_loss_with_its_own_inline_cap_is_taken_only_below_it(app: FastAPI, prefix: str) -> None:
    """``multilabel_margin_loss`` compares every label with every class (quadratic in the
    classes): its record caps its inline bodies lower than the service does."""
    front = app.front  # type: ignore[attr-defined]
    loss = registry.require("multilabel_margin_loss")
    cap = inline_limit(loss, front.limit)
    assert cap == loss.inline_max_bytes < front.limit
    suffix = "/infer" if prefix.startswith("/v2") else ""

    def takes(size: int) -> str | None:
        scope = {
            "type": "http",
            "method": "POST",
            "path": f"{prefix}{loss.name}{suffix}",
            "headers": [(b"content-length", str(size).encode())],
        }
        return front.takes(scope)  # type: ignore[no-any-return]

    assert takes(cap) == loss.name
    assert takes(cap + 1) is None


async def test_a_compressed_body_is_the_routes(
    client: httpx.AsyncClient, routed: httpx.AsyncClient
) -> None:
    loss = registry.require("cross_entropy")
    body, _ = v2_request(loss.example(), loss.tensor_inputs, False).encode()
    packed = gzip.compress(body)
    headers = {"Content-Encoding": "gzip"}
    path = "/v2/models/cross_entropy/infer"
    front = await client.post(path, content=packed, headers=headers)
    route = await routed.post(path, content=packed, headers=headers)
    assert front.status_code == 200
    same(front, route)
