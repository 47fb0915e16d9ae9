"""The service as operators run it: a real uvicorn process on a loopback port."""

from __future__ import annotations

import httpx
import numpy as np
import torch

from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from tests.server import LiveServer


def test_article_case_over_a_socket(server: LiveServer) -> None:
    r = httpx.post(
        server.url + "/v1/losses/cross_entropy",
        json={"input": ARTICLE_INPUT, "target": ARTICLE_TARGET},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    expected = torch.nn.functional.cross_entropy(
        torch.tensor(ARTICLE_INPUT, dtype=torch.float32), torch.tensor(ARTICLE_TARGET)
    )
    # float32 results are written at float32's shortest round-trip precision
    assert np.float32(r.json()["value"]) == expected.numpy()
    assert httpx.get(server.url + "/v2/health/live").json() == {"live": True}
