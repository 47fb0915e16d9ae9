"""triplet_margin_loss beyond the generated cases: the distances in the breakdown are torch's
pairwise_distance (eps inside the norm), and p below 1 is warned about."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch.nn.functional import pairwise_distance

from service.dataplane import Dataplane
from service.losses.triplet_margin_loss import TripletMarginLoss

LOSS = TripletMarginLoss()


def _triplet(seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((4, 3))
    return {"anchor": a, "positive": a + 0.3 * rng.standard_normal((4, 3)), "negative": -a}


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0, 2.0, 3.0, -1.0])
@pytest.mark.parametrize("eps", [1e-6, 0.0, 0.5])
def test_breakdown_distances_are_pairwise_distance(
    dataplane: Dataplane, p: float, eps: float
) -> None:
    arrays = _triplet()
    body = {k: v.tolist() for k, v in arrays.items()} | {"p": p, "eps": eps, "swap": True}
    got = dataplane.compute(LOSS, body | {"dtype": "float64"})["breakdown"]
    t = {k: torch.tensor(v) for k, v in arrays.items()}
    pairs = {"d_ap": ("anchor", "positive"), "d_an": ("anchor", "negative")}
    pairs["d_pn"] = ("positive", "negative")
    for key, (u, v) in pairs.items():
        want = pairwise_distance(t[u], t[v], p=p, eps=eps).numpy()
        np.testing.assert_allclose(got[key], want, rtol=1e-12, atol=1e-15, err_msg=key)
    np.testing.assert_array_equal(got["d_negative"], np.minimum(got["d_an"], got["d_pn"]))


def test_identical_points_are_eps_apart(dataplane: Dataplane) -> None:
    """eps is added to each coordinate of the difference: d(x, x) = eps·D^(1/p), not 0."""
    x = [[0.5, -1.0, 2.0, 0.25]]
    body = {"anchor": x, "positive": x, "negative": x, "p": 3, "eps": 0.1, "dtype": "float64"}
    got = dataplane.compute(LOSS, body)
    assert got["breakdown"]["d_ap"][0] == pytest.approx(0.1 * 4 ** (1 / 3), rel=1e-12)


@pytest.mark.parametrize(
    ("p", "warned"), [(2, False), (1, False), (0.5, True), (0, True), (-2, True)]
)
def test_p_below_one_is_warned(dataplane: Dataplane, p: float, warned: bool) -> None:
    body = {k: v.tolist() for k, v in _triplet().items()} | {"p": p}
    codes = [w["code"] for w in dataplane.compute(LOSS, body)["warnings"]]
    assert ("p_below_one" in codes) == warned


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_gradient_of_an_empty_batch(dataplane: Dataplane, reduction: str) -> None:
    """(0, D) inputs arrive as binary tensors: an empty mean is NaN, its gradient empty."""
    empty = np.zeros((0, 3))
    body = {"anchor": empty, "positive": empty, "negative": empty, "reduction": reduction}
    got = dataplane.compute(LOSS, body | {"include": ["grad"]})
    assert got["reference"]["agrees"]
    assert all(np.shape(g) == (0, 3) for g in got["extras"]["grad"].values())
