"""kl_div's oracles: Keras 3, optax, torchmetrics and SciPy called here, and torch itself."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tests.conventions.oracles import Body, cases, mistake, row
from tests.conventions.oracles.libraries import jnp, keras, optax, scipy, torchmetrics
from tests.conventions.oracles.tools import assert_close, torch_loss

KL = "kl_div"
_rng = np.random.default_rng(23)


def _log_softmax(z: Any, axis: int = -1) -> Any:
    return torch.log_softmax(torch.tensor(z), dim=axis).numpy()


_x = _log_softmax(_rng.standard_normal((4, 5)) * 2)
_p = np.exp(_log_softmax(_rng.standard_normal((4, 5)) * 2))
_p_zeros = _p * (_rng.random((4, 5)) > 0.4)
_p_zeros /= _p_zeros.sum(axis=-1, keepdims=True)
_x3 = _log_softmax(_rng.standard_normal((2, 3, 4)))
_p3 = np.exp(_log_softmax(_rng.standard_normal((2, 3, 4))))
CASES: dict[str, Body] = {
    "example": {
        "input": [[-1.2, -0.9, -1.2], [-0.4, -1.6, -1.6]],
        "target": [[0.2, 0.5, 0.3], [0.7, 0.2, 0.1]],
        "reduction": "batchmean",
    },
    "mean": {"input": _x.tolist(), "target": _p.tolist()},
    "batchmean": {"input": _x.tolist(), "target": _p.tolist(), "reduction": "batchmean"},
    "sum": {"input": _x.tolist(), "target": _p.tolist(), "reduction": "sum"},
    "zeros in the target": {"input": _x.tolist(), "target": _p_zeros.tolist()},
    "tiny probabilities": {
        "input": np.log([[1e-12, 0.5, 0.5 - 1e-12], [0.3, 0.3, 0.4]]).tolist(),
        "target": [[0.2, 0.2, 0.6], [1e-9, 0.5, 0.5 - 1e-9]],
        "reduction": "batchmean",
    },
    "log target": {
        "input": _x.tolist(),
        "target": np.log(_p).tolist(),
        "log_target": True,
        "reduction": "batchmean",
    },
    "unnormalised target": {"input": _x.tolist(), "target": (_p * 1.7).tolist()},
    "rank 3": {"input": _x3.tolist(), "target": _p3.tolist(), "reduction": "batchmean"},
    "rank 1": {"input": _x[0].tolist(), "target": _p[0].tolist(), "reduction": "sum"},
    "(N, 1) against (N,)": {
        "input": np.log(_rng.uniform(0.1, 0.9, (4, 1))).tolist(),
        "target": _rng.uniform(0.1, 0.9, 4).tolist(),
    },
}
cases(KL, CASES)


def _arrays(body: Body) -> tuple[Any, Any, Any, bool]:
    """(input, target, p as probabilities), broadcast, and log_target."""
    x = np.asarray(body["input"], dtype=np.float64)
    t = np.asarray(body["target"], dtype=np.float64)
    x, t = np.broadcast_arrays(x, t)
    lt = bool(body.get("log_target", False))
    return x, t, np.exp(t) if lt else t, lt


@row(KL, "torch")
def torch_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    assert_close(got["value"], torch_loss(KL, body))
    assert got["agrees_with_torch"] is True


@row(KL, "torch_batchmean")
def batchmean_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    assert_close(got["value"], torch_loss(KL, body, reduction="batchmean"))


@row(KL, "keras")
def keras_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, _, p, _ = _arrays(body)
    kld = keras.losses.KLDivergence(dtype="float64")
    want = float(kld(p, np.exp(x)))
    assert_close(got["value"], want, rel=2e-6, what="Keras's float32 mean")
    each = keras.losses.KLDivergence(reduction=None, dtype="float64")(p, np.exp(x))
    assert_close(got["per_sample"], np.asarray(each), rel=1e-6)


@row(KL, "optax")
def optax_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, t, p, lt = _arrays(body)
    if lt:
        losses = optax.losses.kl_divergence_with_log_targets(jnp.asarray(x), jnp.asarray(t))
    else:
        losses = optax.losses.kl_divergence(jnp.asarray(x), jnp.asarray(p))
    assert losses.dtype == jnp.float64
    assert_close(got["value"], float(np.asarray(losses).mean()))


@row(KL, "torchmetrics")
def torchmetrics_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, t, p, lt = _arrays(body)
    refusal = None
    try:
        if lt:
            want = torchmetrics.functional.kl_divergence(
                torch.tensor(t), torch.tensor(x), log_prob=True
            )
        else:
            want = torchmetrics.functional.kl_divergence(torch.tensor(p), torch.tensor(np.exp(x)))
    except ValueError as exc:
        refusal = str(exc)
    if refusal is not None:
        assert "error" in got, f"torchmetrics refused ({refusal}) but the row has a value"
        return
    assert_close(got["value"], float(want))


@row(KL, "scipy")
def scipy_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x = np.asarray(body["input"], dtype=np.float64)
    _, _, p, _ = _arrays(body)
    n = len(x) if x.ndim else 1
    assert_close(
        got["value"], scipy.special.rel_entr(p, np.exp(np.broadcast_to(x, p.shape))).sum() / n
    )


@mistake(KL, "kl_mean_not_batchmean")
def mean_not_batchmean(loss: str, body: Body) -> float:
    return torch_loss(KL, body, reduction="mean")


@mistake(KL, "kl_arguments_swapped")
def arguments_swapped(loss: str, body: Body) -> float:
    x = np.asarray(body["input"], dtype=np.float64)
    t = np.asarray(body["target"], dtype=np.float64)
    if body.get("log_target"):
        return torch_loss(KL, body, input=t, target=x)
    return torch_loss(KL, body, input=np.log(t), target=np.exp(x))


@mistake(KL, "kl_probabilities_as_input")
def probabilities_as_input(loss: str, body: Body) -> float:
    return torch_loss(KL, body, input=np.exp(np.asarray(body["input"], dtype=np.float64)))


@mistake(KL, "kl_log_target_flipped")
def log_target_flipped(loss: str, body: Body) -> float:
    return torch_loss(KL, body, log_target=not body.get("log_target", False))
