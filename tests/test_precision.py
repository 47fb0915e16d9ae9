"""``include: ["precision"]``, generated from the registry: for every loss, each dtype's value is
torch's own (called here, in-process, on the inputs rounded to that dtype), and each relative
error is what torch in float64 says it is: on the inputs as sent (``relative_error``), on the
rounded inputs (``input_rounding``), and between the two (``arithmetic``)."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from service.dataplane import Dataplane
from service.errors import InvalidInput
from service.losses import registry
from service.losses.base import Loss
from service.precision import DTYPES, relative_error
from tests.losses.harness import SEED, as_f64, oracle, prepared, torch_inputs

#: The first samples of each loss: its example and a few shapes and options.
PER_LOSS = 4
CASES = [
    (loss, i, sample.body)
    for loss in registry.all_losses()
    for i, sample in itertools.islice(
        enumerate(loss.samples(np.random.default_rng(SEED))), PER_LOSS
    )
]


def torch_in(
    dataplane: Dataplane, loss: Loss[Any], body: dict[str, Any], dtype: str, compute: str
) -> np.ndarray | None:
    """Torch's value with the inputs rounded to ``dtype``, computed in ``compute``; None where
    torch (or the service's check of what torch refuses) has no kernel for it."""
    try:
        params, prep = prepared(dataplane, loss, body, dtype)
        for name in list(prep.arrays):
            prep.array(name)  # the rounding a deferred array waits for
        return as_f64(oracle(loss, params, torch_inputs(prep, compute)))
    except (InvalidInput, RuntimeError, NotImplementedError):
        return None


@pytest.mark.parametrize(
    ("loss", "index", "body"), CASES, ids=[f"{loss.name}-{i}" for loss, i, _ in CASES]
)
def test_precision_matches_torch(
    dataplane: Dataplane, loss: Loss[Any], index: int, body: dict[str, Any]
) -> None:
    out = dataplane.compute(loss, body | {"include": ["precision"]})
    table = out["extras"]["precision"]
    assert list(table) == list(DTYPES)
    exact = torch_in(dataplane, loss, body, "float64", "float64")
    assert exact is not None
    for dtype in DTYPES:
        entry = table[dtype]
        got_torch = torch_in(dataplane, loss, body, dtype, dtype)
        if got_torch is None:
            assert set(entry) == {"error"}, (dtype, entry)
            assert dtype in entry["error"]
            continue
        assert set(entry) == {"value", "relative_error", "input_rounding", "arithmetic"}, entry
        value = np.asarray(entry["value"], dtype=np.float64)
        np.testing.assert_array_equal(value, got_torch, err_msg=f"{dtype}: torch's own value")
        rounded = torch_in(dataplane, loss, body, dtype, "float64")
        assert rounded is not None
        for key, want in {
            "relative_error": relative_error(got_torch, exact),
            "input_rounding": relative_error(rounded, exact),
            "arithmetic": relative_error(got_torch, rounded),
        }.items():
            got = entry[key]
            if np.isinf(want) or np.isinf(got):
                assert got == want, (dtype, key)
            else:
                # The float64 reference and torch in float64 agree to ~1e-15 relative.
                assert got == pytest.approx(want, rel=1e-6, abs=1e-12), (dtype, key)


def test_float32_is_tighter_than_half_precision(dataplane: Dataplane) -> None:
    loss = registry.require("cross_entropy")
    table = dataplane.compute(loss, loss.example() | {"include": ["precision"]})["extras"]
    errors = {d: table["precision"][d]["relative_error"] for d in DTYPES}
    assert errors["float64"] < 1e-14 < errors["float32"] < 1e-6 < errors["bfloat16"]
    assert errors["float32"] < errors["float16"]


def test_unknown_extra_names_precision_as_allowed(dataplane: Dataplane) -> None:
    loss = registry.require("mse_loss")
    with pytest.raises(InvalidInput, match="'precision'"):
        dataplane.compute(loss, loss.example() | {"include": ["precisions"]})


def test_relative_error_edges() -> None:
    nan, inf = float("nan"), float("inf")
    assert relative_error(np.array(nan), np.array(nan)) == 0.0
    assert relative_error(np.array(inf), np.array(inf)) == 0.0
    assert relative_error(np.array(1.0), np.array(0.0)) == inf
    assert relative_error(np.array(nan), np.array(1.0)) == inf
    assert relative_error(np.array([1.0, 2.2]), np.array([1.0, 2.0])) == pytest.approx(0.1)
    assert relative_error(np.array([]), np.array([])) == 0.0


@pytest.mark.anyio
async def test_over_http(client: httpx.AsyncClient) -> None:
    """Through the API: the table as JSON, and "precision" listed among every loss's extras."""
    loss = registry.require("cross_entropy")
    body = loss.example() | {"include": ["precision"], "dtype": "float64"}
    r = await client.post("/v1/losses/cross_entropy", json=body)
    assert r.status_code == 200, r.text
    table = r.json()["extras"]["precision"]
    assert list(table) == list(DTYPES)
    x = torch.tensor(body["input"], dtype=torch.float16)
    want = torch.nn.functional.cross_entropy(x, torch.tensor(body["target"]))
    assert table["float16"]["value"] == float(want)
    listed = (await client.get("/v1/losses/cross_entropy")).json()["extras"]
    assert "precision" in listed
