"""poisson_nll_loss's oracles: torch itself, Keras 3 on the torch backend, torch.distributions'
Poisson and scikit-learn called here; tf.nn.log_poisson_loss (TensorFlow is not installed) from
the formula its documentation and source give, written here with torch's functions."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tests.conventions.oracles import Body, cases, mistake, row
from tests.conventions.oracles.libraries import keras, sklearn
from tests.conventions.oracles.tools import assert_close, per

POISSON = "poisson_nll_loss"
_rng = np.random.default_rng(37)
_log_rate = _rng.normal(0.5, 1.2, (4, 3))
_counts = _rng.poisson(np.exp(_log_rate)).astype(float)
_counts[0, :2] = 0  # zeros among the counts
_rates = _rng.gamma(2.0, 1.5, (4, 3))
CASES: dict[str, Body] = {
    "example": {"input": [[0.5, 1.2], [-0.3, 2.0]], "target": [[2, 3], [0, 7]], "full": True},
    "log-rates": {"input": _log_rate.tolist(), "target": _counts.tolist()},
    "log-rates, full": {"input": _log_rate.tolist(), "target": _counts.tolist(), "full": True},
    "rates": {"input": _rates.tolist(), "target": _counts.tolist(), "log_input": False},
    "rates, full": {
        "input": _rates.tolist(),
        "target": _counts.tolist(),
        "log_input": False,
        "full": True,
    },
    "zero rates kept finite by eps": {
        "input": [0.0, 0.0, 1e-12, 3.0, 0.5, 2.0],
        "target": [0, 1, 2, 0, 5, 1],
        "log_input": False,
        "full": True,
    },
    "fractional counts": {
        "input": _log_rate[0].tolist(),
        "target": (_counts[0] + _rng.uniform(0, 1, 3)).tolist(),
        "full": True,
    },
    "negative counts": {"input": [0.4, -0.2, 0.1], "target": [-1.0, 0.5, 3.0], "full": True},
    "(N, 1) against (N)": {"input": [[0.1], [0.7], [1.3]], "target": [1, 2, 4]},
    "(3, 1) against (4)": {"input": [[0.1], [0.7], [1.3]], "target": [1, 2, 0, 4]},
    "rank 3": {
        "input": _rng.normal(0.5, 1.0, (2, 3, 2)).tolist(),
        "target": _rng.poisson(2.0, (2, 3, 2)).tolist(),
    },
    "one count": {"input": 1.5, "target": 3.0},
}
cases(POISSON, CASES)


def _arrays(body: Body) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input, target, rate) as float64 arrays."""
    x = np.asarray(body["input"], dtype=np.float64)
    t = np.asarray(body["target"], dtype=np.float64)
    return x, t, np.exp(x) if body.get("log_input", True) else x


def _poisson(body: Body, **overrides: Any) -> torch.Tensor:
    b = body | overrides
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shapes that broadcast
        return F.poisson_nll_loss(
            torch.tensor(np.asarray(b["input"], dtype=np.float64)),
            torch.tensor(np.asarray(b["target"], dtype=np.float64)),
            log_input=b.get("log_input", True),
            full=b.get("full", False),
            eps=b.get("eps", 1e-8),
            reduction=b.get("reduction", "mean"),
        )


@row(POISSON, "torch")
def torch_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    assert_close(got["value"], _poisson(body))
    assert_close(got["per_sample"], _poisson(body, reduction="none"))
    assert got["reads_input_as"] == ("log-rates" if body.get("log_input", True) else "rates")


@row(POISSON, "keras")
def keras_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    _, t, rate = _arrays(body)

    def make(reduction: str | None) -> Any:
        return keras.losses.Poisson(reduction=reduction, dtype="float64")

    refusal = None

    try:
        per_sample = make(None)(torch.tensor(t), torch.tensor(rate))
    except (RuntimeError, ValueError) as exc:
        refusal = str(exc)
    if refusal is not None:
        assert "error" in got, f"Keras refused ({refusal}) but the row has a value"
        return
    assert "error" not in got, got
    # Keras's mean over the last axis computes in float32 on the torch backend, float64 tensors
    # included (ops.mean casts to result_type(dtype, "float32")): the float32 default the
    # README speaks of.
    assert_close(per(got), np.asarray(per_sample).reshape(-1), rel=1e-6, what="per-sample losses")
    mean = make("sum_over_batch_size")(torch.tensor(t), torch.tensor(rate))
    assert_close(got["value"], float(mean), rel=2e-6, what="Keras's float32 mean")


def tf_log_poisson_loss(targets: torch.Tensor, log_input: torch.Tensor, full: bool) -> torch.Tensor:
    """tf.nn.log_poisson_loss as TensorFlow 2 documents and implements it (nn_impl.py):
    exp(c) - z·c, plus z·log z - z + ½·log(2πz) where z is outside [0, 1] when full."""
    result = torch.exp(log_input) - log_input * targets
    if full:
        stirling = targets * torch.log(targets) - targets + 0.5 * torch.log(2 * math.pi * targets)
        inside = (targets >= 0) & (targets <= 1)
        result = result + torch.where(inside, torch.zeros_like(stirling), stirling)
    return result


@row(POISSON, "tf_nn_log_poisson")
def tf_nn_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    """The documented formula (TensorFlow is not installed), on the log-rate: input itself, or
    log(input) for rates; TensorFlow refuses shapes that differ."""
    x, t, _ = _arrays(body)
    if x.shape != t.shape:
        assert "error" in got
        return
    c = torch.tensor(x) if body.get("log_input", True) else torch.log(torch.tensor(x))
    losses = tf_log_poisson_loss(torch.tensor(t), c, body.get("full", False))
    assert_close(got["value"], losses.mean())


@row(POISSON, "exact_nll")
def exact_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    _, t, rate = _arrays(body)
    refusal = None
    try:
        dist = torch.distributions.Poisson(torch.tensor(rate))
        log_prob = dist.log_prob(torch.tensor(t))  # type: ignore[no-untyped-call]
    except ValueError as exc:
        refusal = str(exc)
    if refusal is not None:
        assert "error" in got, f"Poisson refused ({refusal}) but the row has a value"
        return
    assert "error" not in got, got
    assert_close(got["value"], -log_prob.mean())


@row(POISSON, "sklearn_deviance")
def sklearn_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    _, t, rate = _arrays(body)
    refusal = None
    try:
        want = sklearn.metrics.mean_poisson_deviance(t.reshape(-1), rate.reshape(-1))
    except ValueError as exc:
        refusal = str(exc)
    if refusal is not None:
        assert "error" in got, f"scikit-learn refused ({refusal}) but the row has a value"
        return
    assert "error" not in got, got
    assert_close(got["value"], want)


@mistake(POISSON, "poisson_log_input_flipped")
def log_input_flipped(loss: str, body: Body) -> float:
    return float(_poisson(body, log_input=not body.get("log_input", True)))


@mistake(POISSON, "poisson_exact_factorial")
def exact_factorial(loss: str, body: Body) -> float:
    """torch's loss with log(target!) (torch.lgamma) in place of its Stirling term or nothing."""
    losses = _poisson(body, full=False, reduction="none")
    return float((losses + torch.lgamma(torch.tensor(_arrays(body)[1]) + 1)).mean())
