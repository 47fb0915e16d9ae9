"""The names people use: every ``torch.nn`` loss module's class name works wherever a functional
name does (``/v1``, ``/v2``, batch items), answers under the functional name, adds no route to
OpenAPI; any other name is a 404 suggesting the closest known names."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import torch

from service.losses import registry
from tests.protocol.wire import Request, Tensor

pytestmark = pytest.mark.anyio

#: Every loss module of torch.nn, as the issue lists them (AdaptiveLogSoftmaxWithLoss is a
#: layer with a loss, not a loss of torch.nn.functional).
MODULES = {
    "CrossEntropyLoss": "cross_entropy",
    "NLLLoss": "nll_loss",
    "BCELoss": "binary_cross_entropy",
    "BCEWithLogitsLoss": "binary_cross_entropy_with_logits",
    "KLDivLoss": "kl_div",
    "MSELoss": "mse_loss",
    "L1Loss": "l1_loss",
    "SmoothL1Loss": "smooth_l1_loss",
    "HuberLoss": "huber_loss",
    "SoftMarginLoss": "soft_margin_loss",
    "MultiLabelSoftMarginLoss": "multilabel_soft_margin_loss",
    "MultiLabelMarginLoss": "multilabel_margin_loss",
    "MultiMarginLoss": "multi_margin_loss",
    "HingeEmbeddingLoss": "hinge_embedding_loss",
    "MarginRankingLoss": "margin_ranking_loss",
    "CosineEmbeddingLoss": "cosine_embedding_loss",
    "TripletMarginLoss": "triplet_margin_loss",
    "TripletMarginWithDistanceLoss": "triplet_margin_with_distance_loss",
    "LinearCrossEntropyLoss": "linear_cross_entropy",
    "PoissonNLLLoss": "poisson_nll_loss",
    "GaussianNLLLoss": "gaussian_nll_loss",
    "CTCLoss": "ctc_loss",
}
ALIASES = sorted(MODULES.items())
MISSPELT = ["crossentropy", "CrossEntropy", "cross-entropy", "ce_loss"]


def test_every_torch_nn_loss_module_is_an_alias() -> None:
    assert registry.aliases() == dict(sorted(MODULES.items()))
    torch_losses = {n for n in dir(torch.nn) if n.endswith("Loss") and n != "_Loss"}
    assert torch_losses - set(MODULES) == {"AdaptiveLogSoftmaxWithLoss"}


@pytest.mark.parametrize(("module", "name"), ALIASES)
async def test_post_under_the_module_name(
    client: httpx.AsyncClient, module: str, name: str
) -> None:
    body = orjson.dumps(registry.require(name).example())
    by_alias = await client.post(f"/v1/losses/{module}", content=body)
    by_name = await client.post(f"/v1/losses/{name}", content=body)
    assert by_alias.status_code == 200, by_alias.text
    assert by_alias.json()["name"] == name
    assert by_alias.json() == by_name.json()


@pytest.mark.parametrize(("module", "name"), ALIASES)
async def test_large_body_under_the_module_name(
    client: httpx.AsyncClient, module: str, name: str
) -> None:
    """Padded past the inline path's size: the routed path resolves the alias too."""
    body = orjson.dumps(registry.require(name).example()) + b" " * 70_000
    r = await client.post(f"/v1/losses/{module}", content=body)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == name


@pytest.mark.parametrize(("module", "name"), ALIASES)
async def test_get_under_the_module_name(client: httpx.AsyncClient, module: str, name: str) -> None:
    r = await client.get(f"/v1/losses/{module}")
    assert r.status_code == 200
    assert r.json()["name"] == name
    assert r.json()["module"] == module


async def test_the_catalogue_lists_each_module_name(client: httpx.AsyncClient) -> None:
    listed = {e["name"]: e["module"] for e in (await client.get("/v1/losses")).json()["losses"]}
    assert listed == {name: module for module, name in MODULES.items()}


@pytest.mark.parametrize(("module", "name"), ALIASES)
async def test_v2_under_the_module_name(client: httpx.AsyncClient, module: str, name: str) -> None:
    meta = await client.get(f"/v2/models/{module}")
    assert meta.status_code == 200
    assert meta.json()["name"] == name
    ready = await client.get(f"/v2/models/{module}/versions/1/ready")
    assert ready.status_code == 200
    assert ready.json()["name"] == name
    loss = registry.require(name)
    example = loss.example()
    tensors = [
        Tensor(k, "INT64" if a.dtype.kind == "i" else "FP32", a, binary=False)
        for k, v in example.items()
        if k in loss.tensor_inputs
        for a in [np.asarray(v)]
    ]
    params = {k: v for k, v in example.items() if k not in loss.tensor_inputs}
    body, framing = Request(tensors, parameters=params).encode()
    r = await client.post(f"/v2/models/{module}/infer", content=body, headers=framing)
    assert r.status_code == 200, r.text
    assert r.json()["model_name"] == name


async def test_batch_items_under_module_names(client: httpx.AsyncClient) -> None:
    computed = [(m, n) for m, n in ALIASES if registry.require(n).available]
    items = [
        {"loss": module, "args": registry.require(name).example()} for module, name in computed
    ]
    r = await client.post("/v1/losses:batch", json={"items": items})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [res["status"] for res in results] == [200] * len(computed)
    assert [res["result"]["name"] for res in results] == [name for _, name in computed]


async def test_openapi_has_one_route_per_loss(client: httpx.AsyncClient) -> None:
    paths = set((await client.get("/openapi.json")).json()["paths"])
    assert not {p for p in paths if any(m in p for m in MODULES)}
    loss_routes = {p for p in paths if p.startswith("/v1/losses/")}
    assert loss_routes == {f"/v1/losses/{n}" for n in registry.names()} | {"/v1/losses/{name}"}


@pytest.mark.parametrize("name", MISSPELT)
def test_suggestions(name: str) -> None:
    assert registry.suggestions(name)[0] == "cross_entropy"


@pytest.mark.parametrize(
    ("name", "closest"),
    [
        ("nn.CrossEntropyLoss", "cross_entropy"),
        ("MSE", "mse_loss"),
        ("bce", "binary_cross_entropy"),
        ("BCEWithLogits", "binary_cross_entropy_with_logits"),
        ("kl_divergence", "kl_div"),
        ("tripletmarginloss", "triplet_margin_loss"),
        ("ctc", "ctc_loss"),
        ("cross_entropi", "cross_entropy"),
        ("nll", "nll_loss"),
    ],
)
def test_more_suggestions(name: str, closest: str) -> None:
    assert registry.suggestions(name)[0] == closest


def test_no_suggestion_for_nonsense() -> None:
    assert registry.suggestions("zzzzzz") == []
    with pytest.raises(registry.UnknownLoss) as info:
        registry.resolve("zzzzzz")
    assert "did you mean" not in info.value.detail


def _suggests(problem: dict[str, Any], name: str) -> None:
    assert "did you mean 'cross_entropy'" in problem["detail"], problem
    assert repr(name) in problem["detail"]


@pytest.mark.parametrize("name", MISSPELT)
async def test_v1_404_suggests(client: httpx.AsyncClient, name: str) -> None:
    body = orjson.dumps(registry.require("cross_entropy").example())
    for r in (
        await client.post(f"/v1/losses/{name}", content=body),
        await client.post(f"/v1/losses/{name}", content=body + b" " * 70_000),
        await client.get(f"/v1/losses/{name}"),
    ):
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"
        _suggests(r.json(), name)


@pytest.mark.parametrize("name", MISSPELT)
async def test_v2_404_suggests(client: httpx.AsyncClient, name: str) -> None:
    for r in (
        await client.get(f"/v2/models/{name}"),
        await client.get(f"/v2/models/{name}/ready"),
        await client.post(f"/v2/models/{name}/infer", content=b"{}"),
    ):
        assert r.status_code == 404
        assert "did you mean 'cross_entropy'" in r.json()["error"]


@pytest.mark.parametrize("name", MISSPELT)
async def test_batch_404_suggests(client: httpx.AsyncClient, name: str) -> None:
    items = [{"loss": name, "args": registry.require("cross_entropy").example()}]
    r = await client.post("/v1/losses:batch", json={"items": items})
    (result,) = r.json()["results"]
    assert result["status"] == 404
    assert result["problem"]["field"] == "loss"
    _suggests(result["problem"], name)
