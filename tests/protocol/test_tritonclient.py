"""The real Python client, ``tritonclient.http``, against a real uvicorn process on loopback.

tritonclient is gevent-based. It is imported here only (never at collection of other modules'
tests), it does not monkeypatch the standard library on import, and each client is closed
(its connection pool and greenlets) before the session moves on. Results are compared with
torch called in this process.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.server import LiveServer

MODEL = "cross_entropy"
RNG = np.random.default_rng(11)
X = (RNG.standard_normal((6, 10)) * 2).astype(np.float32)
Y = RNG.integers(0, 10, 6)
NUMPY = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "BF16": ml_dtypes.bfloat16}
TORCH = {
    "FP32": torch.float32,
    "FP64": torch.float64,
    "FP16": torch.float16,
    "BF16": torch.bfloat16,
}
OUTPUTS = ("loss", "per_sample", "reference")


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(f"{server.host}:{server.port}", network_timeout=60.0)
    try:
        yield c
    finally:
        c.close()


def torch_loss(x: np.ndarray[Any, Any], datatype: str, y: Any = Y, **kw: Any) -> torch.Tensor:
    """The oracle: torch on the very values sent (BF16 arrays are widened to float32 first)."""
    t = torch.from_numpy(np.asarray(x, dtype=np.float32 if datatype == "BF16" else None))
    return torch.nn.functional.cross_entropy(t.to(TORCH[datatype]), torch.as_tensor(y), **kw)


def inputs(x: np.ndarray[Any, Any], datatype: str, binary: bool) -> list[triton.InferInput]:
    logits = triton.InferInput("input", list(x.shape), datatype)
    logits.set_data_from_numpy(x, binary_data=binary)
    target = triton.InferInput("target", list(Y.shape), "INT64")
    target.set_data_from_numpy(Y, binary_data=binary)
    return [logits, target]


def test_health(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(MODEL)
    assert client.is_model_ready(MODEL, "1")
    assert not client.is_model_ready("no_such_loss")


@pytest.mark.parametrize("version", ["", "1"])
def test_metadata(client: triton.InferenceServerClient, version: str) -> None:
    server = client.get_server_metadata()
    assert "binary_tensor_data" in server["extensions"]
    model = client.get_model_metadata(MODEL, version)
    assert model["name"] == MODEL
    assert [i["name"] for i in model["inputs"]] == ["input", "target", "weight"]
    assert [o["name"] for o in model["outputs"]][:3] == list(OUTPUTS)


CASES = [
    (dt, bin_in, bin_out)
    for dt in NUMPY
    for bin_in in (True, False)
    for bin_out in (True, False)
    if bin_in or dt != "BF16"  # tritonclient cannot send BF16 as JSON
]


@pytest.mark.parametrize(
    ("datatype", "binary_in", "binary_out"),
    CASES,
    ids=[f"{d}-{'bin' if i else 'json'}-in-{'bin' if o else 'json'}-out" for d, i, o in CASES],
)
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_infer(
    client: triton.InferenceServerClient,
    datatype: str,
    binary_in: bool,
    binary_out: bool,
    reduction: str,
) -> None:
    x = X.astype(NUMPY[datatype])
    result = client.infer(
        MODEL,
        inputs(x, datatype, binary_in),
        outputs=[triton.InferRequestedOutput(n, binary_data=binary_out) for n in OUTPUTS],
        request_id=f"{datatype}-{binary_in}-{binary_out}",
        parameters={"reduction": reduction},
    )
    response = result.get_response()
    assert response["id"] == f"{datatype}-{binary_in}-{binary_out}"
    assert response["parameters"]["agrees"] is True
    loss = result.as_numpy("loss")
    assert loss is not None
    assert loss.dtype == NUMPY[datatype]
    want = torch_loss(x, datatype, reduction=reduction)
    np.testing.assert_array_equal(np.asarray(loss, np.float64), want.double().numpy())
    exact = torch_loss(np.asarray(x, np.float64), "FP64", reduction=reduction).numpy()
    np.testing.assert_allclose(result.as_numpy("reference"), exact, rtol=1e-12)
    per_sample = torch_loss(np.asarray(x, np.float64), "FP64", reduction="none").numpy()
    np.testing.assert_allclose(result.as_numpy("per_sample"), per_sample, rtol=1e-12)


def test_infer_with_default_outputs_and_compression(client: triton.InferenceServerClient) -> None:
    result = client.infer(
        MODEL,
        inputs(X, "FP32", True),
        parameters={"reduction": "sum", "label_smoothing": 0.1},
        request_compression_algorithm="gzip",
    )
    assert {o["name"] for o in result.get_response()["outputs"]} == set(OUTPUTS)
    want = torch_loss(X, "FP32", reduction="sum", label_smoothing=0.1)
    np.testing.assert_array_equal(result.as_numpy("loss"), want.numpy())


def test_gradient_output(client: triton.InferenceServerClient) -> None:
    result = client.infer(
        MODEL, inputs(X, "FP32", True), outputs=[triton.InferRequestedOutput("grad_input")]
    )
    x = torch.from_numpy(X).requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(x, torch.from_numpy(Y)), [x])
    np.testing.assert_array_equal(result.as_numpy("grad_input"), grad.numpy())


@pytest.mark.parametrize(
    ("model", "target", "status", "words"),
    [
        ("no_such_loss", Y, "404", "no model named"),
        (MODEL, Y + 10, "400", "out of range"),
    ],
)
def test_errors_reach_the_client(
    client: triton.InferenceServerClient,
    model: str,
    target: np.ndarray[Any, Any],
    status: str,
    words: str,
) -> None:
    bad = triton.InferInput("target", list(target.shape), "INT64")
    bad.set_data_from_numpy(target)
    with pytest.raises(InferenceServerException) as info:
        client.infer(model, [inputs(X, "FP32", True)[0], bad])
    assert info.value.status() == status
    assert words in str(info.value.message())
    assert client.is_server_ready()
