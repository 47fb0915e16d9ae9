"""triplet_margin_loss's oracles: torch itself and optax's triplet_margin_loss on JAX called
here on the same triplets."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tests.conventions.oracles import Body, cases, row
from tests.conventions.oracles.libraries import jnp, optax
from tests.conventions.oracles.tools import assert_close, per

TM = "triplet_margin_loss"
_rng = np.random.default_rng(53)
_a = _rng.standard_normal((5, 4))
_p = _a + _rng.standard_normal((5, 4)) * 0.3
_n = _rng.standard_normal((5, 4))
_t = {"anchor": _a.tolist(), "positive": _p.tolist(), "negative": _n.tolist()}
CASES: dict[str, Body] = {
    "example": {
        "anchor": [[0.1, 0.2, 0.3], [1.0, 0.0, -1.0]],
        "positive": [[0.1, 0.25, 0.3], [0.8, 0.1, -0.9]],
        "negative": [[0.9, -0.2, 0.4], [1.1, 0.05, -1.2]],
    },
    "batch": _t,
    "p = 1": _t | {"p": 1.0},
    "p = 3, margin 0.5": _t | {"p": 3.0, "margin": 0.5},
    "p = 1.5": _t | {"p": 1.5},
    "swap": _t | {"swap": True, "margin": 2.0},
    "identical positives": _t | {"positive": _a.tolist(), "eps": 1e-3},
    "broadcast negative": _t | {"negative": _n[:1].tolist()},
    "rank 3": {
        "anchor": _rng.standard_normal((2, 3, 4)).tolist(),
        "positive": _rng.standard_normal((2, 3, 4)).tolist(),
        "negative": _rng.standard_normal((2, 3, 4)).tolist(),
    },
    "one triplet": {"anchor": [0.5, -0.5], "positive": [0.4, -0.2], "negative": [-1.0, 2.0]},
}
cases(TM, CASES)


def _arrays(body: Body) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, p, n = (np.asarray(body[k], dtype=np.float64) for k in ("anchor", "positive", "negative"))
    return a, p, n


@row(TM, "torch")
def torch_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    a, p, n = (torch.tensor(x) for x in _arrays(body))
    kwargs = {
        "margin": body.get("margin", 1.0),
        "p": body.get("p", 2.0),
        "eps": body.get("eps", 1e-6),
        "swap": body.get("swap", False),
    }
    assert_close(got["value"], F.triplet_margin_loss(a, p, n, **kwargs))
    assert_close(got["per_sample"], F.triplet_margin_loss(a, p, n, reduction="none", **kwargs))


@row(TM, "optax")
def optax_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    a, p, n = (jnp.asarray(x) for x in _arrays(body))
    losses = optax.losses.triplet_margin_loss(
        a,
        p,
        n,
        norm_degree=body.get("p", 2.0),
        margin=body.get("margin", 1.0),
        eps=body.get("eps", 1e-6),
    )
    assert losses.dtype == jnp.float64
    assert_close(per(got), np.asarray(losses).reshape(-1))
    assert_close(got["value"], float(losses.mean()))
