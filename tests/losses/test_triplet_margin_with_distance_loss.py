"""triplet_margin_with_distance_loss beyond the generated cases: ``distance_function`` as null, a
name or an object computes what torch computes with the callable built here, the breakdown's
distances are that callable's, and what JSON cannot mean is refused naming the field."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from service.dataplane import Dataplane
from service.errors import InvalidInput
from service.losses.triplet_margin_with_distance_loss import TripletMarginWithDistanceLoss

LOSS = TripletMarginWithDistanceLoss()

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None


def _cosine(dim: int = 1, eps: float = 1e-8) -> Distance:
    return lambda x1, x2: 1 - F.cosine_similarity(x1, x2, dim=dim, eps=eps)


FORMS: dict[str, tuple[Any, Distance]] = {
    "null": (None, None),
    "pairwise name": ("pairwise_distance", torch.pairwise_distance),
    "pairwise object": ({"name": "pairwise_distance"}, torch.pairwise_distance),
    "pairwise p=1": (
        {"name": "pairwise_distance", "p": 1.0},
        functools.partial(torch.pairwise_distance, p=1.0),
    ),
    "pairwise every argument": (
        {"name": "pairwise_distance", "p": 3.0, "eps": 0.01, "keepdim": True},
        functools.partial(torch.pairwise_distance, p=3.0, eps=0.01, keepdim=True),
    ),
    "cosine name": ("cosine_distance", _cosine()),
    "cosine object": ({"name": "cosine_distance"}, _cosine()),
    "cosine eps": ({"name": "cosine_distance", "eps": 0.5}, _cosine(eps=0.5)),
    "cosine dim": ({"name": "cosine_distance", "dim": 0}, _cosine(dim=0)),
}


def _triplet(seed: int = 0) -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((5, 3))
    return {"anchor": a, "positive": a + 0.5 * rng.standard_normal((5, 3)), "negative": -a * 0.7}


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("spec", "fn"), list(FORMS.values()), ids=list(FORMS))
def test_each_form_matches_torch(
    dataplane: Dataplane, spec: Any, fn: Distance, reduction: str, swap: bool
) -> None:
    arrays = _triplet()
    body = {k: v.tolist() for k, v in arrays.items()}
    body |= {"distance_function": spec, "swap": swap, "reduction": reduction, "margin": 0.7}
    got = dataplane.compute(LOSS, body | {"dtype": "float64", "include": ["grad"]})
    t = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    want = F.triplet_margin_with_distance_loss(
        **t, distance_function=fn, margin=0.7, swap=swap, reduction=reduction
    )
    np.testing.assert_allclose(got["value"], want.detach().numpy(), rtol=1e-12, atol=1e-14)
    grads = torch.autograd.grad(want.sum(), list(t.values()))
    for name, g in zip(t, grads, strict=True):
        np.testing.assert_allclose(got["extras"]["grad"][name], g.numpy(), rtol=1e-10, atol=1e-12)
    assert got["reference"]["agrees"]
    assert all(v["agrees"] for v in got["reference"]["grad"].values())


@pytest.mark.parametrize(("spec", "fn"), list(FORMS.values()), ids=list(FORMS))
def test_breakdown_distances_are_the_distance_functions(
    dataplane: Dataplane, spec: Any, fn: Distance
) -> None:
    arrays = _triplet(1)
    body = {k: v.tolist() for k, v in arrays.items()} | {"distance_function": spec, "swap": True}
    got = dataplane.compute(LOSS, body | {"dtype": "float64", "reduction": "none"})["breakdown"]
    t = {k: torch.tensor(v) for k, v in arrays.items()}
    d = fn or torch.pairwise_distance
    pairs = {"d_ap": ("anchor", "positive"), "d_an": ("anchor", "negative")}
    pairs["d_pn"] = ("positive", "negative")
    for key, (u, v) in pairs.items():
        want = torch.broadcast_to(d(t[u], t[v]), np.shape(got["loss"])).numpy()
        np.testing.assert_allclose(got[key], want, rtol=1e-12, atol=1e-15, err_msg=key)
    np.testing.assert_array_equal(got["d_negative"], np.minimum(got["d_an"], got["d_pn"]))
    np.testing.assert_array_equal(got["swapped"], np.asarray(got["d_pn"]) < got["d_an"])


def test_null_name_and_object_give_the_same_answer(dataplane: Dataplane) -> None:
    body = {k: v.tolist() for k, v in _triplet().items()}
    answers = [
        dataplane.compute(LOSS, body | {"distance_function": spec})
        for spec in (None, "pairwise_distance", {"name": "pairwise_distance", "p": 2.0})
    ]
    for got in answers[1:]:
        assert got["value"] == answers[0]["value"]
        assert got["distance_function"] == {
            "name": "pairwise_distance",
            "p": 2.0,
            "eps": 1e-6,
            "keepdim": False,
        }


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("euclidean", "distance_function"),
        ({"name": "cosine"}, "distance_function.name"),
        ({"name": "cosine_distance", "keepdim": True}, "distance_function"),
        ({"name": "pairwise_distance", "dim": 0}, "distance_function"),
        ({"name": "pairwise_distance", "eps": None, "extra": 1}, "distance_function.extra"),
        ([], "distance_function"),
    ],
)
def test_what_json_cannot_mean_is_refused(dataplane: Dataplane, spec: Any, field: str) -> None:
    body = {k: v.tolist() for k, v in _triplet().items()} | {"distance_function": spec}
    with pytest.raises(InvalidInput) as info:
        dataplane.compute(LOSS, body)
    assert info.value.field == field


def test_cosine_dim_out_of_range_is_refused_as_torch_refuses(dataplane: Dataplane) -> None:
    x = [0.1, 0.2, 0.3]
    body = {"anchor": x, "positive": x, "negative": x, "distance_function": "cosine_distance"}
    with pytest.raises(InvalidInput) as info:
        dataplane.compute(LOSS, body)
    assert info.value.field == "distance_function.dim"
    t = torch.tensor(x)
    with pytest.raises(IndexError):
        F.triplet_margin_with_distance_loss(t, t, t, distance_function=_cosine())
