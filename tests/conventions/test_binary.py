"""The binary losses' convention rows against the real libraries (see test_cross_entropy)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from service.conventions import conventions
from service.dataplane import Dataplane
from tests.conventions.libraries import jnp, keras, optax, sklearn
from tests.conventions.test_cross_entropy import assert_close

IDS = [
    "torch",
    "textbook",
    "sklearn_log_loss",
    "keras_from_probs",
    "keras_from_logits",
    "optax",
    "tf_nn",
]
_rng = np.random.default_rng(11)
_p = _rng.uniform(0.01, 0.99, (3, 4))
_z = _rng.standard_normal((3, 4)) * 3
_hard = _rng.integers(0, 2, (3, 4)).astype(float)
_soft = _rng.uniform(0, 1, (3, 4))
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "probabilities": ("binary_cross_entropy", {"input": _p.tolist(), "target": _hard.tolist()}),
    "soft targets": ("binary_cross_entropy", {"input": _p.tolist(), "target": _soft.tolist()}),
    "saturated": (
        "binary_cross_entropy",
        {"input": [0.0, 1.0, 1e-12, 0.5], "target": [1.0, 0.0, 1.0, 1.0]},
    ),
    "weighted": (
        "binary_cross_entropy",
        {"input": _p.tolist(), "target": _hard.tolist(), "weight": [1.0, 2.0, 0.5, 3.0]},
    ),
    "logits": (
        "binary_cross_entropy_with_logits",
        {"input": _z.tolist(), "target": _hard.tolist()},
    ),
    "logits, pos_weight": (
        "binary_cross_entropy_with_logits",
        {"input": _z.tolist(), "target": _soft.tolist(), "pos_weight": [1.0, 3.0, 0.5, 2.0]},
    ),
    "logits, weight": (
        "binary_cross_entropy_with_logits",
        {"input": _z.tolist(), "target": _hard.tolist(), "weight": [[1.0], [2.0], [0.5]]},
    ),
    "probabilities as logits": (
        "binary_cross_entropy_with_logits",
        {"input": _p.tolist(), "target": _hard.tolist()},
    ),
}


def rows_for(dataplane: Dataplane, case: str) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    name, body = CASES[case]
    out = conventions(dataplane, name, body)
    assert out["name"] == name
    assert [r["id"] for r in out["conventions"]] == IDS
    return {r["id"]: r for r in out["conventions"]}, body


def arrays(body: dict[str, Any]) -> tuple[Any, ...]:
    x = np.asarray(body["input"], dtype=np.float64)
    t = np.asarray(body["target"], dtype=np.float64)
    w = (
        None
        if "weight" not in body
        else np.broadcast_to(np.asarray(body["weight"], float), x.shape)
    )
    pw = (
        None
        if "pos_weight" not in body
        else np.broadcast_to(np.asarray(body["pos_weight"], float), x.shape)
    )
    return x, t, w, pw


@pytest.mark.parametrize("case", CASES)
def test_torch_row(dataplane: Dataplane, case: str) -> None:
    rows, body = rows_for(dataplane, case)
    name = CASES[case][0]
    x, t, w, pw = (None if a is None else torch.tensor(np.array(a)) for a in arrays(body))
    kwargs: dict[str, Any] = {"weight": w}
    if pw is not None:
        kwargs["pos_weight"] = pw
    fn = getattr(F, name)
    assert_close(rows["torch"]["value"], fn(x, t, **kwargs))
    assert_close(rows["torch"]["per_sample"], fn(x, t, reduction="none", **kwargs))


@pytest.mark.parametrize("case", CASES)
def test_sklearn(dataplane: Dataplane, case: str) -> None:
    rows, body = rows_for(dataplane, case)
    x, t, w, _ = arrays(body)
    row = rows["sklearn_log_loss"]
    kwargs: dict[str, Any] = {"labels": [0, 1]}
    if w is not None:
        kwargs["sample_weight"] = w.reshape(-1)
    refusal = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = sklearn.metrics.log_loss(t.reshape(-1), x.reshape(-1), **kwargs)
    except ValueError as exc:
        refusal = str(exc)
    if refusal is not None:
        assert "error" in row, f"scikit-learn refused ({refusal}) but the row has a value"
        return
    assert "error" not in row, row
    assert_close(row["value"], want)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_keras(dataplane: Dataplane, case: str, from_logits: bool) -> None:
    rows, body = rows_for(dataplane, case)
    x, t, w, _ = arrays(body)
    row = rows["keras_from_logits" if from_logits else "keras_from_probs"]
    sw = None if w is None else w.reshape(-1)
    args = (t.reshape(-1, 1), x.reshape(-1, 1))
    each = keras.losses.BinaryCrossentropy(from_logits=from_logits, reduction=None, dtype="float64")
    got = each(*args, sample_weight=sw)
    assert got.dtype == torch.float64, (got.dtype, args[0].dtype, args[1].dtype)
    per = np.asarray(got).reshape(x.shape)
    # BinaryCrossentropy on the torch backend keeps a float32 step even with dtype="float64"
    # (its per-sample losses sit ~3e-8 from torch's float64 ones): the float32 default the
    # README's "about 1e-7 relative" speaks of.
    assert_close(row["per_sample"], per, rel=1e-6, what="per-sample losses")
    mean = keras.losses.BinaryCrossentropy(from_logits=from_logits, dtype="float64")
    assert_close(row["value"], float(mean(*args, sample_weight=sw)), rel=2e-6)


@pytest.mark.parametrize("case", CASES)
def test_optax(dataplane: Dataplane, case: str) -> None:
    rows, body = rows_for(dataplane, case)
    x, t, _, _ = arrays(body)
    losses = optax.sigmoid_binary_cross_entropy(jnp.asarray(x), jnp.asarray(t))
    assert losses.dtype == jnp.float64
    assert_close(rows["optax"]["per_sample"], np.asarray(losses))
    assert_close(rows["optax"]["value"], float(np.asarray(losses).mean()))


@pytest.mark.parametrize("case", CASES)
def test_tf_nn_against_its_documented_formulas(dataplane: Dataplane, case: str) -> None:
    """sigmoid_cross_entropy_with_logits: max(x, 0) - x·z + log(1 + exp(-|x|));
    weighted_cross_entropy_with_logits (pos_weight q): (1 - z)·x + l·(log(1 + exp(-|x|)) +
    max(-x, 0)) with l = 1 + (q - 1)·z. Written here in torch, independently of the row."""
    rows, body = rows_for(dataplane, case)
    x_np, z_np, _, q_np = arrays(body)
    x, z = torch.tensor(x_np), torch.tensor(z_np)
    if q_np is None:
        losses = torch.clamp(x, min=0) - x * z + torch.log1p(torch.exp(-x.abs()))
    else:
        lw = 1 + (torch.tensor(np.array(q_np)) - 1) * z
        losses = (1 - z) * x + lw * (torch.log1p(torch.exp(-x.abs())) + torch.clamp(-x, min=0))
    assert_close(rows["tf_nn"]["value"], losses.mean())


@pytest.mark.parametrize("case", CASES)
def test_textbook(dataplane: Dataplane, case: str) -> None:
    rows, body = rows_for(dataplane, case)
    x, t, _, _ = arrays(body)
    if x.min() < 0 or x.max() > 1:
        assert "error" in rows["textbook"]
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(t == 0, 0, t * np.log(x)) + np.where(t == 1, 0, (1 - t) * np.log(1 - x))
    assert_close(rows["textbook"]["value"], -terms.mean())


def test_the_clamps_part_ways(dataplane: Dataplane) -> None:
    """0 and 1 against the target: torch clamps each log at -100, Keras clips at 1e-7, the
    textbook is infinite."""
    rows, _ = rows_for(dataplane, "saturated")
    assert rows["textbook"]["value"] == float("inf")
    assert max(rows["torch"]["per_sample"]) == 100.0
    assert max(rows["keras_from_probs"]["per_sample"]) == pytest.approx(-np.log(1e-7))
    assert rows["keras_from_logits"]["reads_input_as"] == "logits"
    assert "[0.5, 0.73]" in rows["keras_from_logits"]["why"]


def test_pos_weight_maps_to_tf_weighted_cross_entropy(dataplane: Dataplane) -> None:
    rows, _ = rows_for(dataplane, "logits, pos_weight")
    assert "weighted_cross_entropy_with_logits" in rows["tf_nn"]["call"]
    assert rows["tf_nn"]["agrees_with_torch"] is True
    assert "no pos_weight" in rows["optax"]["why"]
    assert rows["sklearn_log_loss"]["error"].startswith("scikit-learn refuses")
