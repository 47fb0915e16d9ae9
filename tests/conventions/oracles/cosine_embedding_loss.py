"""cosine_embedding_loss's oracles: torch itself, Keras 3 on the torch backend, optax on JAX and
torchmetrics called here on the same pairs. torchmetrics computes in float32 whatever it is
given (it calls ``.float()``), so its sum is compared to float32's precision."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics.functional

from tests.conventions.oracles import Body, cases, row
from tests.conventions.oracles.libraries import jnp, keras, optax
from tests.conventions.oracles.tools import assert_close, per

COS = "cosine_embedding_loss"
_rng = np.random.default_rng(29)
_x1 = _rng.standard_normal((6, 4))
_x2 = _rng.standard_normal((6, 4))
_x2[0] = _x1[0] * 0.5  # a pair at cosine 1
CASES: dict[str, Body] = {
    "example": {
        "input1": [[1.0, 0.5, -0.2], [0.3, 0.8, 0.1]],
        "input2": [[0.9, 0.4, 0.0], [-0.5, 0.2, 0.7]],
        "target": [1, -1],
        "margin": 0.2,
    },
    "mixed labels": {
        "input1": _x1.tolist(),
        "input2": _x2.tolist(),
        "target": [1, -1, -1, 1, -1, 1],
        "margin": 0.1,
    },
    "similar pairs only": {"input1": _x1.tolist(), "input2": _x2.tolist(), "target": [1] * 6},
    "negative margin": {
        "input1": _x1.tolist(),
        "input2": (_x1 + 0.3 * _x2).tolist(),
        "target": [-1, -1, 1, -1, 1, -1],
        "margin": -0.5,
    },
    "one pair": {"input1": [0.2, -0.4, 1.0], "input2": [0.1, 0.3, 0.9], "target": -1},
    "zero vectors": {
        "input1": [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.5, -1.0, 2.0]],
        "input2": [[1.0, -1.0, 0.5], [0.0, 0.0, 0.0], [0.4, 0.1, 1.0]],
        "target": [1, -1, 1],
        "margin": 0.5,
    },
    "broadcast input2": {
        "input1": _x1.tolist(),
        "input2": _x2[:1].tolist(),
        "target": [1, -1, 1, -1, 1, 1],
    },
    "large scale": {
        "input1": (_x1 * 1e3).tolist(),
        "input2": (_x2 * 1e-3).tolist(),
        "target": [-1, 1, -1, 1, -1, 1],
        "margin": 0.3,
    },
}
cases(COS, CASES)


def _arrays(body: Body) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.asarray(body["input1"], dtype=np.float64),
        np.asarray(body["input2"], dtype=np.float64),
        np.asarray(body["target"], dtype=np.float64),
    )


@row(COS, "torch")
def torch_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x1, x2, y = (torch.tensor(a) for a in _arrays(body))
    margin = body.get("margin", 0.0)
    assert_close(got["value"], F.cosine_embedding_loss(x1, x2, y, margin=margin))
    assert_close(
        got["per_sample"], F.cosine_embedding_loss(x1, x2, y, margin=margin, reduction="none")
    )


@row(COS, "keras")
def keras_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x1, x2, _ = _arrays(body)

    def make(reduction: str | None) -> Any:
        return keras.losses.CosineSimilarity(axis=-1, reduction=reduction, dtype="float64")

    per_pair = make(None)(x1, x2)
    # Keras's normalize takes min(rsqrt(Σx²), 1/epsilon), and on the torch backend that minimum
    # with a Python float comes back in float32 even for float64 tensors: a float32 step of
    # about 1e-8 relative, the float32 default the README speaks of.
    assert_close(per(got), np.asarray(per_pair).reshape(-1), rel=1e-6, what="per-pair losses")
    assert_close(got["value"], float(make("sum_over_batch_size")(x1, x2)), rel=2e-6)


@row(COS, "optax")
def optax_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x1, x2, _ = _arrays(body)
    distances = optax.losses.cosine_distance(jnp.asarray(x1), jnp.asarray(x2))
    assert distances.dtype == jnp.float64
    assert_close(per(got), np.asarray(distances).reshape(-1))
    assert_close(got["value"], float(distances.mean()))


@row(COS, "torchmetrics")
def torchmetrics_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x1, x2, _ = _arrays(body)
    if x1.ndim == 1:
        x1, x2 = x1[None], x2[None]
    refusal = None
    try:
        want = torchmetrics.functional.cosine_similarity(
            torch.tensor(x1), torch.tensor(x2), reduction="sum"
        )
    except (RuntimeError, ValueError) as exc:
        refusal = str(exc)
    if refusal is not None:
        assert "error" in got, f"torchmetrics refused ({refusal}) but the row has a value"
        return
    assert "error" not in got, got
    np.testing.assert_allclose(got["value"], float(want), rtol=1e-6, atol=1e-6 * x1.shape[0])
