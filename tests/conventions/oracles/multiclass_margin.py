"""multi_margin_loss's oracles: torch itself, scikit-learn, optax on JAX and Keras 3 on the torch
backend called here; the Crammer-Singer row from its formula written here with torch, and checked
against scikit-learn's hinge_loss where the two coincide (margin 1, p 1, no weight, C > 2)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tests.conventions.oracles import Body, cases, row
from tests.conventions.oracles.libraries import jnp, keras, optax, sklearn
from tests.conventions.oracles.tools import assert_close, per

MM = "multi_margin_loss"
_rng = np.random.default_rng(43)
_x = _rng.standard_normal((5, 4))
CASES: dict[str, Body] = {
    "example": {"input": [[0.1, 0.2, 0.4, 0.8], [1.5, -0.3, 0.2, 0.0]], "target": [3, 0]},
    "scores": {"input": _x.tolist(), "target": [0, 3, 1, 2, 3]},
    "squared, margin 0.5": {"input": _x.tolist(), "target": [0, 3, 1, 2, 3], "p": 2, "margin": 0.5},
    "weighted": {"input": _x.tolist(), "target": [0, 3, 1, 2, 3], "weight": [0.5, 2.0, 1.0, 3.0]},
    "negative scores": {"input": (-np.abs(_x) - 0.5).tolist(), "target": [0, 3, 1, 2, 3]},
    "margin 2": {"input": (_x * 0.5).tolist(), "target": [1, 1, 0, 2, 3], "margin": 2.0},
    "two classes": {"input": _x[:, :2].tolist(), "target": [0, 1, 1, 0, 1]},
    "one sample": {"input": [0.3, -0.2, 1.1], "target": 0},
    "well separated": {"input": [[3.0, 0.0, -1.0], [-2.0, 4.0, 0.5]], "target": [0, 1]},
}
cases(MM, CASES)


def _arrays(body: Body) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    x = np.asarray(body["input"], dtype=np.float64)
    y = np.asarray(body["target"]).reshape(-1).astype(np.int64)
    w = body.get("weight")
    return x.reshape(y.size, -1), y, None if w is None else np.asarray(w, dtype=np.float64)


@row(MM, "torch")
def torch_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x = torch.tensor(body["input"], dtype=torch.float64)
    t = torch.tensor(body["target"], dtype=torch.int64)
    kwargs: dict[str, Any] = {"p": body.get("p", 1), "margin": body.get("margin", 1.0)}
    if body.get("weight") is not None:
        kwargs["weight"] = torch.tensor(body["weight"], dtype=torch.float64)
    assert_close(got["value"], F.multi_margin_loss(x, t, **kwargs))
    assert_close(got["per_sample"], F.multi_margin_loss(x, t, reduction="none", **kwargs))


@row(MM, "crammer_singer")
def crammer_singer_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    """w_y·max(0, margin - x[y] + max_{i≠y} x[i])^p, averaged over the samples (Crammer and
    Singer, 2001); scikit-learn's hinge_loss where it computes the same."""
    x_np, y_np, w_np = _arrays(body)
    x, y = torch.tensor(x_np), torch.tensor(y_np)
    margin, p = body.get("margin", 1.0), body.get("p", 1)
    right = x.gather(1, y[:, None])[:, 0]
    wrong = x.masked_fill(F.one_hot(y, x.shape[1]).bool(), -torch.inf).amax(dim=1)
    losses = torch.clamp(margin - right + wrong, min=0) ** p
    if w_np is not None:
        losses = losses * torch.tensor(w_np)[y]
    assert_close(got["value"], losses.mean())
    if margin == 1 and p == 1 and w_np is None and x.shape[1] > 2:
        want = sklearn.metrics.hinge_loss(y_np, x_np, labels=range(x_np.shape[1]))
        assert_close(got["value"], want)


@row(MM, "sklearn")
def sklearn_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, y, w = _arrays(body)
    refusal = None
    try:
        want = sklearn.metrics.hinge_loss(
            y, x, labels=range(x.shape[1]), sample_weight=None if w is None else w[y]
        )
    except (ValueError, ZeroDivisionError) as exc:
        refusal = str(exc)
    if refusal is not None:
        assert "error" in got, f"scikit-learn refused ({refusal}) but the row has a value"
        return
    assert "error" not in got, got
    assert_close(got["value"], want)


@row(MM, "optax")
def optax_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, y, _ = _arrays(body)
    losses = optax.losses.multiclass_hinge_loss(jnp.asarray(x), jnp.asarray(y))
    assert losses.dtype == jnp.float64
    assert_close(per(got), np.asarray(losses))
    assert_close(got["value"], float(losses.mean()))


@row(MM, "keras_categorical_hinge")
def keras_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, y, w = _arrays(body)
    onehot = np.eye(x.shape[1])[y]
    sw = None if w is None else w[y]

    def make(reduction: str | None) -> Any:
        return keras.losses.CategoricalHinge(reduction=reduction, dtype="float64")

    per_sample = make(None)(onehot, x, sample_weight=sw)
    # categorical_hinge's maximum(neg - pos + 1.0, 0) with a float32 zero comes back in float32
    # on the torch backend, float64 tensors included: the float32 default the README speaks of.
    assert_close(per(got), np.asarray(per_sample).reshape(-1), rel=1e-6, what="per-sample losses")
    mean = make("sum_over_batch_size")(onehot, x, sample_weight=sw)
    assert_close(got["value"], float(mean), rel=2e-6, what="Keras's float32 mean")
