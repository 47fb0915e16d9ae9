"""``/v2`` through the ASGI app: hand-built JSON and binary bodies, torch in-process as oracle."""

from __future__ import annotations

import gzip
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import torch

from service import losses
from service.api.v2 import InferenceResponse, ModelMetadata, ModelReady, ServerMetadata
from service.app import create_app
from service.dataplane import Dataplane
from service.losses import registry
from service.losses.base import Loss
from tests.conftest import cpu_settings
from tests.protocol.wire import NP_DTYPES, Request, Tensor, split_response

losses.load()
pytestmark = pytest.mark.anyio

CE = "/v2/models/cross_entropy"
RNG = np.random.default_rng(4)
X = RNG.standard_normal((5, 7)).astype(np.float32) * 3
Y = RNG.integers(0, 7, 5)
TORCH_DTYPES = {
    "FP16": torch.float16,
    "BF16": torch.bfloat16,
    "FP32": torch.float32,
    "FP64": torch.float64,
}
ALL_BINARY = [
    {"name": n, "parameters": {"binary_data": True}} for n in ("loss", "per_sample", "reference")
]


def as_datatype(x: np.ndarray[Any, Any], datatype: str) -> np.ndarray[Any, Any]:
    """``x`` holding only values ``datatype`` represents (BF16 as float32), as torch rounds."""
    if datatype == "BF16":
        return torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    return x.astype(NP_DTYPES[datatype])


def oracle(x: np.ndarray[Any, Any], datatype: str, y: Any = Y, **kwargs: Any) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(x)).to(TORCH_DTYPES[datatype])
    return torch.nn.functional.cross_entropy(t, torch.as_tensor(y), **kwargs)


def as_numpy(t: torch.Tensor) -> np.ndarray[Any, Any]:
    return (t.float() if t.dtype == torch.bfloat16 else t).detach().numpy()


async def infer(
    client: httpx.AsyncClient, req: Request, path: str = CE, **headers: str
) -> tuple[httpx.Response, dict[str, np.ndarray[Any, Any]]]:
    body, framing = req.encode()
    r = await client.post(f"{path}/infer", content=body, headers={**framing, **headers})
    assert r.status_code == 200, r.text
    assert "content-type" not in r.request.headers
    return r, split_response(r.content, r.headers.get("inference-header-content-length"))


# -- metadata and health -------------------------------------------------------------------


async def test_server_metadata(client: httpx.AsyncClient) -> None:
    r = await client.get("/v2")
    assert r.status_code == 200
    meta = r.json()
    assert meta["name"] == "loss-service"
    assert meta["version"]
    assert "binary_tensor_data" in meta["extensions"]


@pytest.mark.parametrize("loss", list(registry.all_losses()), ids=registry.names())
@pytest.mark.parametrize("suffix", ["", "/versions/1"])
async def test_every_loss_is_a_ready_model(
    client: httpx.AsyncClient, loss: Loss[Any], suffix: str
) -> None:
    r = await client.get(f"/v2/models/{loss.name}{suffix}")
    assert r.status_code == 200
    meta = r.json()
    assert meta["name"] == loss.name
    assert [i["name"] for i in meta["inputs"]] == list(loss.tensor_inputs)
    ready = await client.get(f"/v2/models/{loss.name}{suffix}/ready")
    assert ready.status_code == 200
    assert ready.json() == {"name": loss.name, "ready": True}


@pytest.mark.parametrize(
    ("method", "path", "status", "words"),
    [
        ("GET", "/v2/models/nope", 404, "no model named 'nope'"),
        ("GET", "/v2/models/nope/ready", 404, "no model named"),
        ("POST", "/v2/models/nope/infer", 404, "no model named"),
        ("GET", f"{CE}/versions/2", 404, "no version '2'"),
        ("GET", f"{CE}/versions/2/ready", 404, "no version"),
        ("POST", f"{CE}/versions/0/infer", 404, "no version"),
        ("GET", "/v2/nothing/here", 404, "no route"),
        ("GET", f"{CE}/infer", 405, "GET is not allowed"),
        ("DELETE", "/v2", 405, "DELETE is not allowed"),
    ],
)
async def test_unknown_models_and_routes(
    client: httpx.AsyncClient, method: str, path: str, status: int, words: str
) -> None:
    r = await client.request(method, path, content=b"{}")
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    assert words in r.json()["error"]


async def test_answers_match_the_documented_schemas(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path in ("/v2", f"{CE}", f"{CE}/ready", f"{CE}/infer", f"{CE}/versions/{{version}}/infer"):
        assert path.replace("cross_entropy", "{name}") in spec["paths"]
    ServerMetadata.model_validate((await client.get("/v2")).json())
    ModelMetadata.model_validate((await client.get(CE)).json())
    ModelReady.model_validate((await client.get(f"{CE}/ready")).json())
    req = Request([Tensor("input", "FP32", X, False), Tensor("target", "INT64", Y, False)])
    r = await client.post(f"{CE}/infer", content=req.encode()[0])
    InferenceResponse.model_validate(r.json())


# -- inference -----------------------------------------------------------------------------


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
async def test_json_infer_matches_torch(
    client: httpx.AsyncClient, nested: bool, reduction: str
) -> None:
    req = Request(
        [Tensor("input", "FP32", X, False, nested), Tensor("target", "INT64", Y, False, nested)],
        parameters={"reduction": reduction},
        id="json-1",
    )
    r, out = await infer(client, req)
    assert r.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in r.headers
    doc = r.json()
    assert doc["id"] == "json-1"
    assert doc["model_name"] == "cross_entropy"
    assert doc["parameters"]["agrees"] is True
    want = oracle(X, "FP32", reduction=reduction)
    np.testing.assert_array_equal(out["loss"], want.numpy())
    per_element = oracle(X, "FP64", reduction="none").numpy()
    np.testing.assert_allclose(out["per_sample"], per_element, rtol=1e-12)
    np.testing.assert_allclose(out["reference"], want.double().numpy(), rtol=1e-6)


@pytest.mark.parametrize("datatype", ["FP32", "FP64", "FP16", "BF16"])
@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
async def test_binary_infer_matches_torch(
    client: httpx.AsyncClient, datatype: str, binary_out: bool
) -> None:
    x = as_datatype(X, datatype)
    req = Request(
        [Tensor("input", datatype, x), Tensor("target", "INT32", Y.astype(np.int32))],
        outputs=[
            {"name": n, "parameters": {"binary_data": binary_out}}
            for n in ("loss", "per_sample", "reference")
        ],
    )
    r, out = await infer(client, req)
    doc = orjson.loads(
        r.content[: int(r.headers.get("inference-header-content-length", "0")) or None]
    )
    loss_meta = doc["outputs"][0]
    assert loss_meta["datatype"] == datatype  # computed in the input's precision
    assert doc["parameters"]["dtype"] == str(TORCH_DTYPES[datatype]).removeprefix("torch.")
    assert ("binary_data_size" in loss_meta.get("parameters", {})) == (
        binary_out or datatype in ("FP16", "BF16")
    )
    want = oracle(x, datatype)
    np.testing.assert_array_equal(out["loss"], as_numpy(want))
    exact = oracle(x.astype(np.float64), "FP64")
    np.testing.assert_allclose(out["reference"], exact.numpy(), rtol=1e-12)


async def test_options_weight_and_grad(client: httpx.AsyncClient) -> None:
    w = RNG.uniform(0.5, 2.0, 7)
    y = Y.copy()
    y[1] = -1
    req = Request(
        [
            Tensor("input", "FP64", X.astype(np.float64)),
            Tensor("target", "INT64", y, binary=False),
            Tensor("weight", "FP64", w),
        ],
        outputs=[{"name": "loss"}, {"name": "grad_input", "parameters": {"binary_data": True}}],
        parameters={"ignore_index": -1, "label_smoothing": 0.25, "reduction": "mean"},
    )
    _, out = await infer(client, req)
    x = torch.from_numpy(X.astype(np.float64)).requires_grad_(True)
    want = torch.nn.functional.cross_entropy(
        x, torch.from_numpy(y), torch.from_numpy(w), ignore_index=-1, label_smoothing=0.25
    )
    (grad,) = torch.autograd.grad(want, [x])
    np.testing.assert_array_equal(out["loss"], want.detach().numpy())
    np.testing.assert_array_equal(out["grad_input"], grad.numpy())


async def test_all_outputs_follow_binary_data_output(client: httpx.AsyncClient) -> None:
    req = Request(
        [Tensor("input", "FP32", X), Tensor("target", "INT64", Y)],
        parameters={"binary_data_output": True, "sequence_id": 7, "priority": 2, "timeout": 10},
    )
    r, out = await infer(client, req)
    assert r.headers["content-type"] == "application/octet-stream"
    assert set(out) == {"loss", "per_sample", "reference"}
    assert (
        "ignored_parameters"
        not in orjson.loads(r.content[: int(r.headers["inference-header-content-length"])])[
            "parameters"
        ]
    )


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/octet-stream", "text/plain"]
)
async def test_content_type_is_ignored(client: httpx.AsyncClient, content_type: str) -> None:
    for binary in (True, False):
        req = Request([Tensor("input", "FP32", X, binary), Tensor("target", "INT64", Y, binary)])
        body, framing = req.encode()
        r = await client.post(
            f"{CE}/infer", content=body, headers={**framing, "Content-Type": content_type}
        )
        assert r.status_code == 200, r.text


async def test_versioned_infer_echoes_the_version(client: httpx.AsyncClient) -> None:
    req = Request([Tensor("input", "FP32", X), Tensor("target", "INT64", Y)])
    r, _ = await infer(client, req, path=f"{CE}/versions/1")
    assert orjson.loads(r.content)["model_version"] == "1"


async def test_gzip_request(client: httpx.AsyncClient) -> None:
    body, framing = Request([Tensor("input", "FP32", X), Tensor("target", "INT64", Y)]).encode()
    r = await client.post(
        f"{CE}/infer", content=gzip.compress(body), headers={**framing, "Content-Encoding": "gzip"}
    )
    assert r.status_code == 200, r.text
    out = split_response(r.content, r.headers.get("inference-header-content-length"))
    np.testing.assert_array_equal(out["loss"], oracle(X, "FP32").numpy())


@pytest.mark.parametrize("loss", list(registry.all_losses()), ids=registry.names())
async def test_every_example_agrees_with_v1(
    client: httpx.AsyncClient, dataplane: Dataplane, loss: Loss[Any]
) -> None:
    """The registry's examples as protocol requests: same value as the in-process data plane."""
    example = loss.example()
    tensors = [
        Tensor(k, "INT64" if a.dtype.kind == "i" else "FP32", a.astype(a.dtype), binary=False)
        for k, v in example.items()
        if k in loss.tensor_inputs
        for a in [np.asarray(v)]
    ]
    params = {k: v for k, v in example.items() if k not in loss.tensor_inputs}
    _, out = await infer(
        client, Request(tensors, parameters=params), path=f"/v2/models/{loss.name}"
    )
    want = dataplane.compute(loss, example)
    np.testing.assert_array_equal(out["loss"], np.asarray(want["value"]).astype(np.float32))


# -- errors --------------------------------------------------------------------------------

GOOD_BODY, GOOD_HEADERS = Request(
    [Tensor("input", "FP32", X), Tensor("target", "INT64", Y)]
).encode()


def _json(y: Any = Y, name: str = "input", **request: Any) -> bytes:
    """A JSON-only request for cross_entropy with one thing changed."""
    inputs = [Tensor(name, "FP32", X, binary=False), Tensor("target", "INT64", y, binary=False)]
    return Request(inputs, **request).encode()[0]


@pytest.mark.parametrize(
    ("body", "headers", "words"),
    [
        (GOOD_BODY, {}, "Inference-Header-Content-Length"),
        (GOOD_BODY + b"\0", GOOD_HEADERS, "1 bytes follow"),
        (GOOD_BODY[:-3], GOOD_HEADERS, "past the end"),
        (GOOD_BODY, {"Inference-Header-Content-Length": "x"}, "not a byte count"),
        (GOOD_BODY, {**GOOD_HEADERS, "Content-Encoding": "br"}, "Content-Encoding"),
        (b"", {}, "not valid JSON"),
        (b"[]", {}, "JSON object"),
        (_json(y=Y + 7), {}, "out of range"),
        (_json(name="logits"), {}, "no input 'logits'"),
        (_json(outputs=[{"name": "probs"}]), {}, "no output 'probs'"),
        (_json(outputs=[{"name": "reference"}], parameters={"reference": False}), {}, "needs the"),
        (_json(parameters={"reduction": "avg"}), {}, "reduction"),
        (_json(outputs=[{"name": "grad_target"}]), {}, "no gradient with respect to 'target'"),
        (_json(parameters={"dtype": "int8"}), {}, "dtype"),
        (_json(parameters={"label_smoothing": 2}), {}, "label_smoothing"),
    ],
)
async def test_bad_requests_are_400_with_an_error(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str], words: str
) -> None:
    r = await client.post(f"{CE}/infer", content=body, headers=headers)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json"
    assert words in r.json()["error"]
    ok = await client.post(f"{CE}/infer", content=GOOD_BODY, headers=GOOD_HEADERS)
    assert ok.status_code == 200


async def test_body_over_the_limit_is_413() -> None:
    app = create_app(cpu_settings(max_body_bytes=len(GOOD_BODY) - 1))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.post(f"{CE}/infer", content=GOOD_BODY, headers=GOOD_HEADERS)
        assert r.status_code == 413
        assert "limit" in r.json()["error"]
        small = gzip.compress(b" " * 10_000 + GOOD_BODY)
        r = await c.post(f"{CE}/infer", content=small, headers={"Content-Encoding": "gzip"})
        assert r.status_code == 413
