"""The request KServe's ingress forwards: tritonclient with the InferenceService's Host header
on ``/v2/models/<loss>/infer``. The ingress routes on the header and passes the path through,
so the service must answer it as it answers a direct call (the model is the loss)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import tritonclient.http as httpclient

from tests.server import LiveServer

pytestmark = pytest.mark.slow

HOST = {"Host": "losses.default.example.com"}


def test_tritonclient_through_the_ingress_host_header(server: LiveServer) -> None:
    rng = np.random.default_rng(12)
    logits = rng.standard_normal((8, 5)).astype(np.float32)
    target = rng.integers(0, 5, 8)
    inputs = [
        httpclient.InferInput("input", list(logits.shape), "FP32"),
        httpclient.InferInput("target", list(target.shape), "INT64"),
    ]
    inputs[0].set_data_from_numpy(logits)
    inputs[1].set_data_from_numpy(target)
    with httpclient.InferenceServerClient(f"{server.host}:{server.port}") as client:
        assert client.is_server_live(headers=HOST)
        assert client.is_model_ready("cross_entropy", headers=HOST)
        result = client.infer("cross_entropy", inputs, headers=HOST)
    want = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(target))
    np.testing.assert_allclose(result.as_numpy("loss"), want.numpy(), rtol=1e-6)
