"""cross_entropy's small path also takes the arrays ``/v2`` decodes its tensors into (float32 or
float64 logits and weights, integer class indices): its answer is the general path's, byte for
byte, in the data plane and through ``/v2`` (JSON and binary); it leaves probability targets and
other arrays to the general path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from service.app import create_app
from service.dataplane import Dataplane
from service.jsonenc import dumps
from service.losses import cross_entropy_small, registry
from service.settings import Settings
from tests.conftest import cpu_settings
from tests.protocol.wire import Request, Tensor

CE = registry.require("cross_entropy")
pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def general() -> Dataplane:
    plane = Dataplane(cpu_settings(), torch.device("cpu"))
    plane.small_paths = ()
    return plane


def array_body(rng: np.random.Generator) -> dict[str, Any]:
    """A body as ``service.protocol.models.to_loss_call`` makes it from an inference request."""
    n, c = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    floating = np.float32 if rng.random() < 0.7 else np.float64
    kind = rng.integers(3)
    if kind == 0:  # probability rows: the article's mistake
        x = rng.dirichlet(np.ones(c), size=n)
    elif kind == 1:
        x = rng.integers(-3, 4, (n, c)).astype(np.float64)
    else:
        x = rng.standard_normal((n, c)) * float(10.0 ** rng.integers(-2, 4))
    body: dict[str, Any] = {
        "input": x.astype(floating),
        "target": rng.integers(0, c, n).astype(np.int64),
        "dtype": "float32" if floating is np.float32 else str(rng.choice(["float32", "float64"])),
    }
    if rng.random() < 0.3:
        body["weight"] = rng.uniform(0.1, 2.0, c).astype(floating)
    if rng.random() < 0.5:
        body["reduction"] = str(rng.choice(["none", "mean", "sum"]))
    if rng.random() < 0.3:
        body["label_smoothing"] = float(rng.choice([0.1, 0.5]))
    if rng.random() < 0.3:
        body["ignore_index"] = int(rng.integers(0, c))
    return body


def small(body: dict[str, Any]) -> dict[str, Any] | None:
    return cross_entropy_small.compute(
        CE,
        body,
        default_dtype="float32",
        default_reference=True,
        device="cpu",
        limits=Dataplane(cpu_settings(), torch.device("cpu")).limits,
    )


@pytest.mark.parametrize("seed", range(10))
def test_array_bodies_answer_the_general_paths_bytes(
    dataplane: Dataplane, general: Dataplane, seed: int
) -> None:
    rng = np.random.default_rng(1000 + seed)
    handled = 0
    for _ in range(60):
        body = array_body(rng)
        if all(body["target"] == body.get("ignore_index", -100)):
            continue
        want = dumps(general.compute(CE, dict(body), may_hold_bools=False))
        handled += small(dict(body)) is not None
        assert dumps(dataplane.compute(CE, dict(body), may_hold_bools=False)) == want, body
    assert handled >= 40


@pytest.mark.parametrize(
    "body",
    [
        {"input": np.ones((2, 3), np.float32), "target": np.ones((2, 3), np.float32) / 3},
        {"input": np.ones((2, 3), np.float16), "target": np.array([0, 1])},
        {"input": np.ones(3, np.float32), "target": np.array(1)},
        {"input": np.ones((2, 3), np.float32), "target": np.array([0.0, 1.0])},
        {"input": np.ones((2, 3), np.float32), "target": [0, 1]},
        {"input": np.ones((2, 200), np.float32), "target": np.array([0, 1])},
    ],
)
def test_other_arrays_are_left_to_the_general_path(body: dict[str, Any]) -> None:
    assert small(body) is None


@pytest.fixture(scope="module")
async def both() -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """The service, and the same service with no small path (the general path for all)."""
    fast, slow = create_app(Settings(device="cpu")), create_app(Settings(device="cpu"))
    slow.state.service.dataplane.small_paths = ()
    async with fast.router.lifespan_context(fast), slow.router.lifespan_context(slow):
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                base_url="http://test",
            )
            for app in (fast, slow)
        ]
        async with clients[0] as a, clients[1] as b:
            yield a, b


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("seed", range(4))
async def test_v2_answers_are_the_general_paths(
    both: tuple[httpx.AsyncClient, httpx.AsyncClient], binary: bool, seed: int
) -> None:
    rng = np.random.default_rng(2000 + seed)
    for _ in range(25):
        body = array_body(rng)
        x = body.pop("input")
        y = body.pop("target")
        inputs = [Tensor("input", "FP32" if x.dtype == np.float32 else "FP64", x, binary)]
        inputs.append(Tensor("target", "INT64", y, binary))
        w = body.pop("weight", None)
        if w is not None:
            inputs.append(Tensor("weight", "FP32" if w.dtype == np.float32 else "FP64", w, binary))
        raw, headers = Request(inputs, parameters=body).encode()
        path = "/v2/models/cross_entropy/infer"
        answers = [await c.post(path, content=raw, headers=headers) for c in both]
        assert answers[0].status_code == answers[1].status_code == 200, answers[1].text
        assert answers[0].content == answers[1].content, (body, x, y, w)
