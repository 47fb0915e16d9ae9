"""cross_entropy through the HTTP API (httpx over ASGI): values, breakdown, warnings, encoding."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET

pytestmark = pytest.mark.anyio

URL = "/v1/losses/cross_entropy"
ARTICLE = {"input": ARTICLE_INPUT, "target": ARTICLE_TARGET}


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(URL, json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    out: dict[str, Any] = r.json()
    return out


async def test_article_case(client: httpx.AsyncClient) -> None:
    """The article: torch gives 1.1484; read as probabilities the mean of -log p is 1.3157."""
    out = await post(client, ARTICLE | {"dtype": "float64"})
    assert round(out["value"], 4) == 1.1484
    logits = torch.tensor(ARTICLE_INPUT, dtype=torch.float64)
    expected = F.cross_entropy(logits, torch.tensor(ARTICLE_TARGET))
    assert out["value"] == pytest.approx(float(expected), rel=1e-15)
    assert out["target_form"] == "class_indices"
    assert out["denominator"] == 3
    assert out["reference"]["agrees"] is True
    (warning,) = [w for w in out["warnings"] if w["code"] == "input_looks_like_probabilities"]
    assert "1.3157" in warning["message"]
    probs = np.asarray(ARTICLE_INPUT)
    textbook = -np.log(probs[np.arange(3), ARTICLE_TARGET]).mean()
    assert warning["probability_reading"] == pytest.approx(textbook)


async def test_breakdown_shows_each_term(client: httpx.AsyncClient) -> None:
    x = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    out = await post(
        client, {"input": x.tolist(), "target": y.tolist(), "reduction": "none", "dtype": "float64"}
    )
    b = out["breakdown"]
    np.testing.assert_allclose(b["logsumexp"], torch.logsumexp(x, 1).numpy())
    np.testing.assert_allclose(b["target_logit"], x[torch.arange(2), y].numpy())
    np.testing.assert_allclose(out["value"], F.cross_entropy(x, y, reduction="none").numpy())
    np.testing.assert_allclose(b["loss"], out["value"])
    assert "smoothing_term" not in b


async def test_label_smoothing_term_reported(client: httpx.AsyncClient) -> None:
    x = torch.tensor([[2.0, -1.0, 0.5]], dtype=torch.float64)
    out = await post(
        client,
        {"input": x.tolist(), "target": [1], "label_smoothing": 0.2, "dtype": "float64"},
    )
    assert out["value"] == pytest.approx(
        float(F.cross_entropy(x, torch.tensor([1]), label_smoothing=0.2)), rel=1e-12
    )
    assert "smoothing_term" in out["breakdown"]


async def test_probability_targets(client: httpx.AsyncClient) -> None:
    x = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.1, -1.0]], dtype=torch.float64)
    t = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], dtype=torch.float64)
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    body = {"input": x.tolist(), "target": t.tolist(), "weight": w.tolist(), "dtype": "float64"}
    out = await post(client, body)
    assert out["target_form"] == "class_probabilities"
    assert out["value"] == pytest.approx(float(F.cross_entropy(x, t, weight=w)), rel=1e-12)
    assert out["denominator"] == 2
    assert "weight_with_probabilities" in {w["code"] for w in out["warnings"]}


async def test_all_ignored_mean_is_nan_as_a_string(client: httpx.AsyncClient) -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    y = torch.tensor([-100, -100])
    assert torch.isnan(F.cross_entropy(x, y))
    r = await client.post(URL, json={"input": x.tolist(), "target": y.tolist()})
    assert r.status_code == 200
    assert b'"value":"NaN"' in r.content  # never a bare NaN token, never null
    out = r.json()
    assert out["value"] == "NaN"
    assert out["reference"]["value"] == "NaN"
    assert out["reference"]["agrees"] is True
    assert "all_targets_ignored" in {w["code"] for w in out["warnings"]}


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
async def test_dtypes(client: httpx.AsyncClient, dtype: str) -> None:
    x = torch.tensor([[0.3, -2.0, 1.7], [1.1, 0.2, -0.4]])
    y = torch.tensor([2, 0])
    out = await post(client, {"input": x.tolist(), "target": y.tolist(), "dtype": dtype})
    expected = F.cross_entropy(x.to(getattr(torch, dtype)), y)
    assert out["dtype"] == dtype
    assert out["value"] == pytest.approx(float(expected), rel=1e-6)
    assert out["reference"]["agrees"] is True
    low = {w["code"] for w in out["warnings"]} & {"low_precision_dtype"}
    assert bool(low) == (dtype in {"float16", "bfloat16"})


async def test_unbatched_input_and_none_reduction(client: httpx.AsyncClient) -> None:
    x = torch.tensor([0.1, 0.9, -0.3], dtype=torch.float64)
    out = await post(
        client, {"input": x.tolist(), "target": 1, "reduction": "none", "dtype": "float64"}
    )
    assert out["shape"] == []
    expected = F.cross_entropy(x, torch.tensor(1), reduction="none")
    assert out["value"] == pytest.approx(float(expected), rel=1e-12)


async def test_spatial_none_is_nested(client: httpx.AsyncClient) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 2, 2, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (2, 2, 2), generator=g)
    out = await post(
        client, {"input": x.tolist(), "target": y.tolist(), "reduction": "none", "dtype": "float64"}
    )
    np.testing.assert_allclose(out["value"], F.cross_entropy(x, y, reduction="none").numpy())


async def test_include_extras_and_gradient(client: httpx.AsyncClient) -> None:
    x = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 2])
    out = await post(
        client,
        {
            "input": x.tolist(),
            "target": y.tolist(),
            "dtype": "float64",
            "include": ["grad", "log_softmax", "softmax"],
        },
    )
    (grad,) = torch.autograd.grad(F.cross_entropy(x, y), x)
    np.testing.assert_allclose(out["extras"]["grad"]["input"], grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(out["extras"]["softmax"], torch.softmax(x, 1).detach().numpy())
    np.testing.assert_allclose(
        out["extras"]["log_softmax"], torch.log_softmax(x, 1).detach().numpy()
    )
    assert out["reference"]["grad"]["input"]["agrees"] is True


async def test_reference_can_be_turned_off(client: httpx.AsyncClient) -> None:
    out = await post(client, ARTICLE | {"reference": False})
    assert out["reference"] is None
    assert out["breakdown"] is None
    assert isinstance(out["value"], float)


async def test_large_logits_stay_finite(client: httpx.AsyncClient) -> None:
    x = torch.tensor([[1000.0, -1000.0, 999.0]], dtype=torch.float64)
    out = await post(client, {"input": x.tolist(), "target": [1], "dtype": "float64"})
    assert out["value"] == pytest.approx(float(F.cross_entropy(x, torch.tensor([1]))))
    assert out["reference"]["agrees"] is True
