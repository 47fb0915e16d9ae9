"""The binary cross-entropies' oracles (see ``cross_entropy``)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tests.conventions.oracles import Body, cases, row
from tests.conventions.oracles.libraries import jnp, keras, optax, sklearn
from tests.conventions.oracles.tools import assert_close

BCE = "binary_cross_entropy"
BCE_LOGITS = "binary_cross_entropy_with_logits"
BOTH = (BCE, BCE_LOGITS)
_rng = np.random.default_rng(11)
_p = _rng.uniform(0.01, 0.99, (3, 4))
_z = _rng.standard_normal((3, 4)) * 3
_hard = _rng.integers(0, 2, (3, 4)).astype(float)
_soft = _rng.uniform(0, 1, (3, 4))
CASES: dict[str, tuple[str, Body]] = {
    "probabilities": (BCE, {"input": _p.tolist(), "target": _hard.tolist()}),
    "soft targets": (BCE, {"input": _p.tolist(), "target": _soft.tolist()}),
    "saturated": (BCE, {"input": [0.0, 1.0, 1e-12, 0.5], "target": [1.0, 0.0, 1.0, 1.0]}),
    "weighted": (
        BCE,
        {"input": _p.tolist(), "target": _hard.tolist(), "weight": [1.0, 2.0, 0.5, 3.0]},
    ),
    "one element": (BCE, {"input": 0.3, "target": 1.0}),
    "logits": (BCE_LOGITS, {"input": _z.tolist(), "target": _hard.tolist()}),
    "logits, pos_weight": (
        BCE_LOGITS,
        {"input": _z.tolist(), "target": _soft.tolist(), "pos_weight": [1.0, 3.0, 0.5, 2.0]},
    ),
    "logits, weight": (
        BCE_LOGITS,
        {"input": _z.tolist(), "target": _hard.tolist(), "weight": [[1.0], [2.0], [0.5]]},
    ),
    "probabilities as logits": (BCE_LOGITS, {"input": _p.tolist(), "target": _hard.tolist()}),
    "zero targets": (BCE_LOGITS, {"input": _z[0].tolist(), "target": [0.0] * 4}),
}
for _name, (_loss, _body) in CASES.items():
    cases(_loss, {_name: _body})


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


@row(BOTH, "torch")
def torch_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, t, w, pw = (None if a is None else torch.tensor(np.array(a)) for a in arrays(body))
    kwargs: dict[str, Any] = {"weight": w}
    if pw is not None:
        kwargs["pos_weight"] = pw
    fn = getattr(F, loss)
    assert_close(got["value"], fn(x, t, **kwargs))
    assert_close(got["per_sample"], fn(x, t, reduction="none", **kwargs))


@row(BOTH, "sklearn_log_loss")
def sklearn_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, t, w, _ = arrays(body)
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
        assert "error" in got, f"scikit-learn refused ({refusal}) but the row has a value"
        return
    assert "error" not in got, got
    assert_close(got["value"], want)


def _keras(body: Body, got: dict[str, Any], from_logits: bool) -> None:
    x, t, w, _ = arrays(body)
    sw = None if w is None else w.reshape(-1)
    args = (t.reshape(-1, 1), x.reshape(-1, 1))
    each = keras.losses.BinaryCrossentropy(from_logits=from_logits, reduction=None, dtype="float64")
    losses = each(*args, sample_weight=sw)
    assert losses.dtype == torch.float64, (losses.dtype, args[0].dtype, args[1].dtype)
    per_sample = np.asarray(losses).reshape(x.shape)
    # BinaryCrossentropy on the torch backend keeps a float32 step even with dtype="float64"
    # (its per-sample losses sit ~3e-8 from torch's float64 ones): the float32 default the
    # README's "about 1e-7 relative" speaks of.
    assert_close(got["per_sample"], per_sample, rel=1e-6, what="per-sample losses")
    mean = keras.losses.BinaryCrossentropy(from_logits=from_logits, dtype="float64")
    assert_close(got["value"], float(mean(*args, sample_weight=sw)), rel=2e-6)


@row(BOTH, "keras_from_probs")
def keras_from_probs_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    _keras(body, got, from_logits=False)


@row(BOTH, "keras_from_logits")
def keras_from_logits_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    _keras(body, got, from_logits=True)


@row(BOTH, "optax")
def optax_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, t, _, _ = arrays(body)
    losses = optax.sigmoid_binary_cross_entropy(jnp.asarray(x), jnp.asarray(t))
    assert losses.dtype == jnp.float64
    assert_close(got["per_sample"], np.asarray(losses))
    assert_close(got["value"], float(np.asarray(losses).mean()))


@row(BOTH, "tf_nn")
def tf_nn_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    """sigmoid_cross_entropy_with_logits: max(x, 0) - x·z + log(1 + exp(-|x|));
    weighted_cross_entropy_with_logits (pos_weight q): (1 - z)·x + l·(log(1 + exp(-|x|)) +
    max(-x, 0)) with l = 1 + (q - 1)·z. Written here in torch, independently of the row."""
    x_np, z_np, _, q_np = arrays(body)
    x, z = torch.tensor(x_np), torch.tensor(z_np)
    if q_np is None:
        losses = torch.clamp(x, min=0) - x * z + torch.log1p(torch.exp(-x.abs()))
    else:
        lw = 1 + (torch.tensor(np.array(q_np)) - 1) * z
        losses = (1 - z) * x + lw * (torch.log1p(torch.exp(-x.abs())) + torch.clamp(-x, min=0))
    assert_close(got["value"], losses.mean())


@row(BOTH, "textbook")
def textbook_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, t, _, _ = arrays(body)
    if x.min() < 0 or x.max() > 1:
        assert "error" in got
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(t == 0, 0, t * np.log(x)) + np.where(t == 1, 0, (1 - t) * np.log(1 - x))
    assert_close(got["value"], -terms.mean())
