"""A loss the installed torch lacks: listed with ``available: false``, and a 501 problem on every
route that would compute it, never a 500.

On the pinned torch every loss is available, so the tests make ``linear_cross_entropy``
unavailable the way the start-up probe would (its ``available`` flag); ``make compat`` runs the
same tests on a torch that really lacks it, where ``test_the_probe_asks_torch_itself`` and
``test_unpatched_answer_follows_the_probe`` see the real thing."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
import torch

from service import conventions
from service.losses import registry
from service.losses.base import Loss, TorchFeature
from tests.protocol.wire import Request, Tensor

pytestmark = [pytest.mark.anyio, pytest.mark.torch_compat]

NAME = "linear_cross_entropy"
MODULE = "LinearCrossEntropyLoss"
NEEDED = "2.13"
NOT_IMPLEMENTED = "https://loss-service.dev/problems/not-implemented"


def torch_has_it() -> bool:
    """Asked of torch directly, not through the service's probe."""
    return hasattr(torch.nn.functional, NAME) and hasattr(torch.nn, "LinearCrossEntropyOptions")


@pytest.fixture
def lacking(monkeypatch: pytest.MonkeyPatch) -> Loss[Any]:
    """linear_cross_entropy as a torch without it leaves it after the start-up probe."""
    loss = registry.require(NAME)
    monkeypatch.setattr(loss, "available", False)
    return loss


def assert_names_versions(text: str) -> None:
    assert NAME in text
    assert f">= {NEEDED}" in text
    assert torch.__version__ in text


def test_the_probe_asks_torch_itself() -> None:
    loss = registry.require(NAME)
    assert loss.requires is not None
    assert loss.requires.present() is torch_has_it()
    assert loss.available is torch_has_it()
    assert TorchFeature(("nn.functional.no_such_loss",), "9.9").present() is False
    assert TorchFeature(("nn.functional.cross_entropy", "nn.CrossEntropyLoss"), "1.0").present()
    assert [loss.name for loss in registry.all_losses() if loss.requires is not None] == [NAME]


async def test_unpatched_answer_follows_the_probe(client: httpx.AsyncClient) -> None:
    """Whatever torch runs the tests: 200 where it has the loss, the 501 problem where not."""
    example = registry.require(NAME).example()
    r = await client.post(f"/v1/losses/{NAME}", json=example)
    if torch_has_it():
        assert r.status_code == 200, r.text
    else:
        assert r.status_code == 501, r.text
        assert r.json()["type"] == NOT_IMPLEMENTED


async def test_the_catalogue_lists_it_as_unavailable(
    client: httpx.AsyncClient, lacking: Loss[Any]
) -> None:
    listed = {entry["name"]: entry for entry in (await client.get("/v1/losses")).json()["losses"]}
    assert listed[NAME]["available"] is False
    assert listed[NAME]["torch_required"] == NEEDED
    others = [entry for name, entry in listed.items() if name != NAME]
    assert others
    assert all(e["available"] is True and e["torch_required"] is None for e in others)
    for path in (f"/v1/losses/{NAME}", f"/v1/losses/{MODULE}"):
        one = await client.get(path)
        assert one.status_code == 200
        assert one.json()["available"] is False
        assert one.json()["torch_required"] == NEEDED


async def test_available_when_torch_has_it(client: httpx.AsyncClient) -> None:
    entry = (await client.get(f"/v1/losses/{NAME}")).json()
    assert entry["available"] is torch_has_it()
    assert entry["torch_required"] == NEEDED


@pytest.mark.parametrize("name", [NAME, MODULE])
@pytest.mark.parametrize("padding", [0, 8000], ids=["small", "routed"])
async def test_post_is_a_501_problem(
    client: httpx.AsyncClient, lacking: Loss[Any], name: str, padding: int
) -> None:
    """Small bodies (answered before routing where a loss is inline) and routed ones alike."""
    body = httpx.Request("POST", "/", json=lacking.example()).content
    body = body[:-1] + b" " * padding + b"}"
    r = await client.post(f"/v1/losses/{name}", content=body)
    assert r.status_code == 501, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"] == NOT_IMPLEMENTED
    assert problem["status"] == 501
    assert_names_versions(problem["detail"])


async def test_a_batch_item_fails_alone(client: httpx.AsyncClient, lacking: Loss[Any]) -> None:
    ce = registry.require("cross_entropy")
    items = [
        {"loss": ce.name, "args": ce.example()},
        {"loss": NAME, "args": lacking.example()},
        {"loss": MODULE, "args": lacking.example()},
    ]
    r = await client.post("/v1/losses:batch", json={"items": items})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert [item["status"] for item in answer["results"]] == [200, 501, 501]
    assert (answer["succeeded"], answer["failed"]) == (1, 2)
    for item in answer["results"][1:]:
        assert item["problem"]["type"] == NOT_IMPLEMENTED
        assert item["problem"]["field"] == "loss"
        assert_names_versions(item["problem"]["detail"])


@pytest.mark.parametrize(("route", "extra"), [("conventions", {}), ("diagnose", {"observed": 1.0})])
async def test_conventions_and_diagnose_refuse_it(
    client: httpx.AsyncClient, lacking: Loss[Any], route: str, extra: dict[str, Any]
) -> None:
    """A documented refusal: 501 where conventions exist for it, else the 404 of a loss
    without conventions; never a 500."""
    r = await client.post(f"/v1/{route}/{NAME}", json=lacking.example() | extra)
    assert r.headers["content-type"] == "application/problem+json"
    if conventions.has(NAME):
        assert r.status_code == 501, r.text
        assert_names_versions(r.json()["detail"])
    else:
        assert r.status_code == 404, r.text


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("GET", "/ready"),
        ("POST", "/infer"),
        ("GET", "/versions/1"),
        ("GET", "/versions/1/ready"),
        ("POST", "/versions/1/infer"),
    ],
)
@pytest.mark.parametrize("name", [NAME, MODULE])
async def test_v2_says_the_model_is_not_implemented(
    client: httpx.AsyncClient, lacking: Loss[Any], method: str, suffix: str, name: str
) -> None:
    """Metadata, readiness and inference: 501 in the protocol's error envelope (readiness is
    then false for tritonclient's is_model_ready, which reads the status)."""
    body = None
    if method == "POST":
        x = np.array([[0.1, 0.2], [0.3, 0.4]], dtype=np.float32)
        w = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=np.float32)
        tensors = [
            Tensor("input", "FP32", x, False),
            Tensor("linear_weight", "FP32", w, False),
            Tensor("target", "INT64", np.array([0, 2]), False),
        ]
        body = Request(tensors).encode()[0]
    r = await client.request(method, f"/v2/models/{name}{suffix}", content=body)
    assert r.status_code == 501, r.text
    assert r.headers["content-type"] == "application/json"
    assert_names_versions(r.json()["error"])


async def test_other_models_stay_ready(client: httpx.AsyncClient, lacking: Loss[Any]) -> None:
    assert (await client.get("/v2/health/ready")).status_code == 200
    assert (await client.get("/v2/models/cross_entropy/ready")).status_code == 200
