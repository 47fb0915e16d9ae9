"""The pointwise regression losses' oracles: scikit-learn, Keras 3 and optax called here,
torch itself, and tf.nn.l2_loss's documented formula (sum(t²) / 2)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from tests.conventions.oracles import Body, cases, mistake, row
from tests.conventions.oracles.libraries import jnp, keras, optax, sklearn
from tests.conventions.oracles.tools import assert_close, torch_loss

MSE, L1, HUBER, SMOOTH_L1 = "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss"
ALL = (MSE, L1, HUBER, SMOOTH_L1)
WEIGHTED = (MSE, L1, HUBER)
_rng = np.random.default_rng(31)


def _pair(shape: tuple[int, ...], scale: float = 1.0) -> dict[str, Any]:
    return {
        "input": (_rng.standard_normal(shape) * scale).tolist(),
        "target": (_rng.standard_normal(shape) * scale).tolist(),
    }


_COMMON: dict[str, Body] = {
    "example": {
        "input": [[0.5, 1.5, -2.0], [3.0, 0.0, 1.0]],
        "target": [[0.0, 2.0, -1.0], [2.5, 0.5, 1.0]],
    },
    "1-d": _pair((6,)),
    "2-d": _pair((5, 3), 2.0),
    "3-d": _pair((2, 3, 4)),
    "0-d": {"input": 1.5, "target": -0.25},
    "zeros in the target": {
        "input": _rng.standard_normal((4, 2)).tolist(),
        "target": [[0.0] * 2] * 4,
    },
    "(N, 1) against (N,)": {
        "input": _rng.standard_normal((5, 1)).tolist(),
        "target": _rng.standard_normal(5).tolist(),
    },
    "(N, D) against (D,)": {
        "input": _rng.standard_normal((4, 3)).tolist(),
        "target": _rng.standard_normal(3).tolist(),
    },
    "tiny differences": _pair((3, 3), 1e-6),
}
_w_rows = np.repeat(_rng.uniform(0.2, 2.0, (5, 1)), 3, axis=1)
_WEIGHTED: dict[str, Body] = {
    "weight per sample": _pair((5, 3), 2.0) | {"weight": _w_rows.tolist()},
    "weight per element": _pair((5, 3), 2.0) | {"weight": _rng.uniform(0, 2, (5, 3)).tolist()},
}
for _loss in ALL:
    cases(_loss, _COMMON)
for _loss in WEIGHTED:
    cases(_loss, _WEIGHTED)
cases(HUBER, {"delta 0.5": _pair((4, 3), 2.0) | {"delta": 0.5}})
cases(HUBER, {"delta 3": _pair((4, 3), 2.0) | {"delta": 3.0}})
cases(SMOOTH_L1, {"beta 0.5": _pair((4, 3), 2.0) | {"beta": 0.5}})
cases(SMOOTH_L1, {"beta 2": _pair((6,), 2.0) | {"beta": 2.0}})
cases(SMOOTH_L1, {"beta 0": _pair((4,), 2.0) | {"beta": 0.0}})


def _arrays(body: Body) -> tuple[Any, Any, Any]:
    x = np.asarray(body["input"], dtype=np.float64)
    t = np.asarray(body["target"], dtype=np.float64)
    w = None if body.get("weight") is None else np.asarray(body["weight"], dtype=np.float64)
    return x, t, w


@row(ALL, "torch")
def torch_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    assert_close(got["value"], torch_loss(loss, body))
    assert got["agrees_with_torch"] is True


def _sample_weight(x: Any, w: Any) -> Any:
    if w is None:
        return None
    w2 = w.reshape(-1, 1) if w.ndim == 1 else w
    return w2[:, 0] if np.all(w2 == w2[:, :1]) else None


def _sklearn(fn: Any, body: Body, got: dict[str, Any]) -> None:
    x, t, w = _arrays(body)
    refusal = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = fn(t, x, sample_weight=_sample_weight(x, w))
    except (ValueError, TypeError) as exc:
        refusal = str(exc)
    if refusal is not None:
        assert "error" in got, f"scikit-learn refused ({refusal}) but the row has a value"
        return
    assert "error" not in got, got
    assert_close(got["value"], want)


@row(MSE, "sklearn")
def sklearn_mse(loss: str, body: Body, got: dict[str, Any]) -> None:
    _sklearn(sklearn.metrics.mean_squared_error, body, got)


@row(L1, "sklearn")
def sklearn_mae(loss: str, body: Body, got: dict[str, Any]) -> None:
    _sklearn(sklearn.metrics.mean_absolute_error, body, got)


@row(MSE, "rmse")
def sklearn_rmse(loss: str, body: Body, got: dict[str, Any]) -> None:
    _sklearn(sklearn.metrics.root_mean_squared_error, body, got)


def _keras(make: Any, body: Body, got: dict[str, Any]) -> None:
    x, t, w = _arrays(body)
    if not x.size:
        assert "error" in got
        return
    sw = None
    if w is not None and w.ndim and np.all(w == w[..., :1]):
        sw = w[..., 0]
    want = float(make(reduction="sum_over_batch_size", dtype="float64")(t, x, sample_weight=sw))
    assert_close(got["value"], want, rel=2e-6, what="Keras's float32 mean")


@row(MSE, "keras")
def keras_mse(loss: str, body: Body, got: dict[str, Any]) -> None:
    _keras(keras.losses.MeanSquaredError, body, got)


@row(L1, "keras")
def keras_mae(loss: str, body: Body, got: dict[str, Any]) -> None:
    _keras(keras.losses.MeanAbsoluteError, body, got)


@row(HUBER, "keras")
def keras_huber(loss: str, body: Body, got: dict[str, Any]) -> None:
    delta = body.get("delta", 1.0)
    _keras(lambda **kw: keras.losses.Huber(delta=delta, **kw), body, got)


@row(SMOOTH_L1, "keras_huber")
def keras_huber_of_beta(loss: str, body: Body, got: dict[str, Any]) -> None:
    beta = body.get("beta", 1.0)
    _keras(lambda **kw: keras.losses.Huber(delta=beta, **kw), body, got)


def _optax(fn: Any, body: Body, got: dict[str, Any], **kwargs: Any) -> None:
    x, t, _ = _arrays(body)
    refusal = None
    try:
        losses = fn(jnp.asarray(x), jnp.asarray(t), **kwargs)
    except (AssertionError, ValueError) as exc:
        refusal = str(exc)
    if refusal is not None:
        assert "error" in got, f"optax refused ({refusal}) but the row has a value"
        return
    assert_close(got["value"], float(np.asarray(losses).mean()) if losses.size else math.nan)


@row(MSE, "optax_squared_error")
def optax_squared_error(loss: str, body: Body, got: dict[str, Any]) -> None:
    _optax(optax.losses.squared_error, body, got)


@row(MSE, "optax_l2_loss")
def optax_l2_loss(loss: str, body: Body, got: dict[str, Any]) -> None:
    _optax(optax.losses.l2_loss, body, got)


@row(HUBER, "optax")
def optax_huber(loss: str, body: Body, got: dict[str, Any]) -> None:
    _optax(optax.losses.huber_loss, body, got, delta=body.get("delta", 1.0))


@row(MSE, "tf_nn_l2_loss")
def tf_nn_l2_loss(loss: str, body: Body, got: dict[str, Any]) -> None:
    """tf.nn.l2_loss(t) = sum(t ** 2) / 2, its documented formula (TensorFlow is not installed);
    the difference broadcasts as in TensorFlow."""
    x, t, _ = _arrays(body)
    assert_close(got["value"], ((x - t) ** 2).sum() / 2)


@row(HUBER, "smooth_l1")
def smooth_l1_of_huber(loss: str, body: Body, got: dict[str, Any]) -> None:
    rest = {k: v for k, v in body.items() if k not in ("delta", "weight")}
    assert_close(got["value"], torch_loss(SMOOTH_L1, rest, beta=body.get("delta", 1.0)))


@row(SMOOTH_L1, "huber")
def huber_of_smooth_l1(loss: str, body: Body, got: dict[str, Any]) -> None:
    beta = body.get("beta", 1.0)
    if beta == 0:
        assert "error" in got
        return
    rest = {k: v for k, v in body.items() if k != "beta"}
    assert_close(got["value"], torch_loss(HUBER, rest, delta=beta))


@mistake(MSE, "half_squared_error")
def half_squared_error(loss: str, body: Body) -> float:
    return 0.5 * torch_loss(MSE, body)


@mistake(MSE, "root_mean_squared_error")
def root_mean_squared_error(loss: str, body: Body) -> float:
    return math.sqrt(torch_loss(MSE, body))


@mistake((HUBER, SMOOTH_L1), "smooth_l1_beta_vs_huber_delta")
def the_other_function(loss: str, body: Body) -> float:
    if loss == HUBER:
        rest = {k: v for k, v in body.items() if k not in ("delta", "weight")}
        return torch_loss(SMOOTH_L1, rest, beta=body["delta"])
    rest = {k: v for k, v in body.items() if k != "beta"}
    return torch_loss(HUBER, rest, delta=body["beta"])
