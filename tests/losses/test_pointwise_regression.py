"""mse_loss, l1_loss, smooth_l1_loss and huber_loss beyond the generated tests: the service's own
torch call on broadcast shapes (silent, yet torch's value and gradients), the warnings, and
refusals that mirror torch's."""

from __future__ import annotations

import warnings
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from service.dataplane import Dataplane
from service.errors import InvalidInput
from service.losses import registry
from tests.conftest import cpu_settings
from tests.losses.parity import assert_both_refuse, compute

WEIGHTED = ["mse_loss", "l1_loss", "huber_loss"]
ALL = [*WEIGHTED, "smooth_l1_loss"]
REDUCTIONS = ["none", "mean", "sum"]
#: (input shape, target shape): the target broadcast over the input, and beyond it.
BROADCASTS = [((3, 4), (4,)), ((3, 1), (1, 4)), ((4, 1), (4,)), ((), (3,)), ((2, 3), ())]


def direct(
    name: str, body: dict[str, Any], grad: bool = False
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """torch.nn.functional.<name> on the body in float64, with its UserWarning expected."""
    tensors = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=grad)
        for k, v in body.items()
        if k in ("input", "target", "weight")
    }
    options = {k: v for k, v in body.items() if k not in tensors}
    fn = getattr(torch.nn.functional, name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        out = fn(**tensors, **options)
    mismatch = tensors["input"].shape != tensors["target"].shape
    assert any("target size" in str(w.message) for w in caught) is mismatch
    if not grad:
        return out.detach(), {}
    grads = torch.autograd.grad(out.sum(), list(tensors.values()))
    return out.detach(), dict(zip(tensors, grads, strict=True))


def body_for(
    rng: np.random.Generator, x_shape: tuple[int, ...], y_shape: tuple[int, ...], weighted: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "input": rng.standard_normal(x_shape).tolist(),
        "target": rng.standard_normal(y_shape).tolist(),
    }
    if weighted:
        body["weight"] = rng.uniform(0.1, 2.0, x_shape).tolist()
    return body


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("x_shape", "y_shape"), BROADCASTS)
@pytest.mark.parametrize(
    ("name", "weighted"), [*((n, True) for n in WEIGHTED), *((n, False) for n in ALL)]
)
def test_broadcasting_is_torchs_value_and_gradient_without_leaking_its_warning(
    dataplane: Dataplane,
    name: str,
    weighted: bool,
    x_shape: tuple[int, ...],
    y_shape: tuple[int, ...],
    reduction: str,
) -> None:
    rng = np.random.default_rng(7)
    body = body_for(rng, x_shape, y_shape, weighted) | {"reduction": reduction}
    got = compute(dataplane, name, body | {"include": ["grad"]})  # a leaked warning would raise
    want, grads = direct(name, body, grad=True)
    np.testing.assert_allclose(np.asarray(got["value"]), want.numpy(), rtol=1e-12, atol=1e-14)
    assert got["reference"]["agrees"]
    for key, g in grads.items():
        np.testing.assert_allclose(got["extras"]["grad"][key], g.numpy(), rtol=1e-12, atol=1e-14)
        assert got["reference"]["grad"][key]["agrees"], key
    codes = [w["code"] for w in got["warnings"]]
    assert "shape_mismatch_broadcast" in codes


@pytest.mark.parametrize(
    ("x_shape", "y_shape", "outer"), [((4, 1), (4,), True), ((3, 4), (4,), False)]
)
def test_shape_mismatch_warning_names_the_shapes(
    dataplane: Dataplane, x_shape: tuple[int, ...], y_shape: tuple[int, ...], outer: bool
) -> None:
    body = body_for(np.random.default_rng(1), x_shape, y_shape, weighted=False)
    got = compute(dataplane, "mse_loss", body)
    (warning,) = [w for w in got["warnings"] if w["code"] == "shape_mismatch_broadcast"]
    assert warning["input_shape"] == list(x_shape)
    assert warning["target_shape"] == list(y_shape)
    assert warning["broadcast_shape"] == list(np.broadcast_shapes(x_shape, y_shape))
    assert ("outer difference" in warning["message"]) is outer


def test_weighted_mean_over_a_broadcast_divides_by_the_input_shaped_weights(
    dataplane: Dataplane,
) -> None:
    """Torch's quirk, mirrored: Σ(w·ℓ) over (3, 4) divided by Σw over the input's (3, 1)."""
    rng = np.random.default_rng(3)
    body = body_for(rng, (3, 1), (1, 4), weighted=True)
    got = compute(dataplane, "mse_loss", body)
    want, _ = direct("mse_loss", body)
    assert float(got["value"]) == pytest.approx(float(want), rel=1e-12)
    (warning,) = [w for w in got["warnings"] if w["code"] == "weighted_mean_over_broadcast"]
    assert warning["ratio"] == 4
    x, y, w = (np.asarray(body[k]) for k in ("input", "target", "weight"))
    wb = np.broadcast_to(w, (3, 4))
    weighted_mean = float(((x - y) ** 2 * wb).sum() / wb.sum())
    assert float(got["value"]) == pytest.approx(4 * weighted_mean, rel=1e-12)
    assert got["denominator"] == pytest.approx(float(w.sum()))


@pytest.mark.parametrize(
    ("name", "denominator"),
    [("mse_loss", "weights"), ("l1_loss", "weights"), ("huber_loss", "count")],
)
def test_weighted_mean_denominator_follows_torch(
    dataplane: Dataplane, name: str, denominator: str
) -> None:
    rng = np.random.default_rng(5)
    body = body_for(rng, (2, 3), (2, 3), weighted=True)
    got = compute(dataplane, name, body)
    want, _ = direct(name, body)
    assert float(got["value"]) == pytest.approx(float(want), rel=1e-12)
    expected = float(np.sum(body["weight"])) if denominator == "weights" else 6.0
    assert got["denominator"] == pytest.approx(expected)
    codes = [w["code"] for w in got["warnings"]]
    assert ("weighted_mean_divides_by_count" in codes) is (denominator == "count")


@pytest.mark.parametrize("name", WEIGHTED)
def test_negative_weights_are_computed_and_flagged(dataplane: Dataplane, name: str) -> None:
    body = {"input": [1.0, 2.0, 3.0], "target": [0.0, 0.0, 0.0], "weight": [1.0, -2.0, 0.5]}
    got = compute(dataplane, name, body | {"reduction": "sum"})
    want, _ = direct(name, body | {"reduction": "sum"})
    assert float(got["value"]) == pytest.approx(float(want), rel=1e-12)
    assert float(got["value"]) < 0
    assert "negative_weight" in [w["code"] for w in got["warnings"]]


def test_smooth_l1_with_beta_zero_is_l1(dataplane: Dataplane) -> None:
    body = body_for(np.random.default_rng(2), (3, 4), (3, 4), weighted=False)
    smooth = compute(dataplane, "smooth_l1_loss", body | {"beta": 0.0, "include": ["grad"]})
    l1 = compute(dataplane, "l1_loss", body | {"include": ["grad"]})
    assert float(smooth["value"]) == pytest.approx(float(l1["value"]), rel=1e-15)
    np.testing.assert_allclose(smooth["extras"]["grad"]["input"], l1["extras"]["grad"]["input"])


@pytest.mark.parametrize(("name", "option"), [("smooth_l1_loss", "beta"), ("huber_loss", "delta")])
def test_quadratic_zone_is_in_the_breakdown(dataplane: Dataplane, name: str, option: str) -> None:
    body = {"input": [0.0, 0.0, 0.0, 0.0], "target": [0.1, -0.4, 0.6, -3.0], option: 0.5}
    got = compute(dataplane, name, body | {"reduction": "none"})
    assert got["breakdown"]["quadratic"].tolist() == [True, True, False, False]
    np.testing.assert_allclose(got["breakdown"]["difference"], [-0.1, 0.4, -0.6, 3.0])


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("mse_loss", {"input": [1.0, 2.0], "target": [1.0, 2.0, 3.0]}, "target"),
        (
            "l1_loss",
            {"input": [[1.0, 2.0]], "target": [[1.0, 2.0]], "weight": [1.0, 1.0]},
            "weight",
        ),
        (
            "huber_loss",
            {"input": [[1.0], [2.0]], "target": [[1.0, 2.0]], "weight": [[1.0, 1.0]]},
            "weight",
        ),
        ("huber_loss", {"input": [1.0], "target": [2.0], "delta": 0.0}, "delta"),
        ("smooth_l1_loss", {"input": [1.0], "target": [2.0], "beta": -1.0}, "beta"),
    ],
)
def test_refusals_mirror_torchs(
    dataplane: Dataplane, name: str, body: dict[str, Any], field: str
) -> None:
    assert_both_refuse(dataplane, name, body, field, lambda: direct(name, body))


@pytest.mark.anyio
async def test_broadcast_over_http_answers_with_the_warning(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/losses/mse_loss", json={"input": [[1.0], [2.0]], "target": [1.0, 3.0]}
    )
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["shape"] == []
    want, _ = direct("mse_loss", {"input": [[1.0], [2.0]], "target": [1.0, 3.0]})
    assert data["value"] == pytest.approx(float(want), rel=1e-6)
    assert [w["code"] for w in data["warnings"]] == ["shape_mismatch_broadcast"]


@pytest.mark.parametrize("name", ALL)
def test_a_broadcast_beyond_the_element_limit_is_refused(name: str) -> None:
    """A small body can ask for a huge computation: (100, 1) against (100) is 10^4 elements."""
    small = Dataplane(cpu_settings(max_elements=5_000), torch.device("cpu"))
    loss = registry.get(name)
    assert loss is not None
    body = {"input": np.zeros((100, 1)).tolist(), "target": np.zeros(100).tolist()}
    with pytest.raises(InvalidInput) as info:
        small.compute(loss, body)
    assert info.value.field == "target"
    assert "10000 elements" in info.value.detail
    small.compute(loss, body | {"input": np.zeros((40, 1)).tolist(), "target": [0.0] * 100})
