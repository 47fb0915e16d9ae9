"""gaussian_nll_loss's oracles: torch itself, torch.distributions.Normal and SciPy's norm called
here on the same means, targets and standard deviations sqrt(var)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.stats
import torch
import torch.nn.functional as F

from tests.conventions.oracles import Body, cases, mistake, row
from tests.conventions.oracles.tools import assert_close

GAUSS = "gaussian_nll_loss"
_rng = np.random.default_rng(31)
_mu = _rng.standard_normal((4, 3))
_y = _mu + _rng.standard_normal((4, 3)) * 0.7
CASES: dict[str, Body] = {
    "example": {
        "input": [[1.2, 0.4], [2.0, -0.5], [0.3, 0.9]],
        "target": [[1.0, 0.0], [2.5, -0.2], [0.1, 1.4]],
        "var": [0.5, 1.5, 0.2],
    },
    "one variance per element": {
        "input": _mu.tolist(),
        "target": _y.tolist(),
        "var": _rng.gamma(2.0, 0.5, (4, 3)).tolist(),
    },
    "one variance per element, full": {
        "input": _mu.tolist(),
        "target": _y.tolist(),
        "var": _rng.gamma(2.0, 0.5, (4, 3)).tolist(),
        "full": True,
    },
    "scalar variance": {"input": _mu.tolist(), "target": _y.tolist(), "var": 0.3},
    "a column of variances": {
        "input": _mu.tolist(),
        "target": _y.tolist(),
        "var": _rng.gamma(2.0, 0.5, (4, 1)).tolist(),
    },
    "variances below eps": {
        "input": [0.5, 1.0, -1.0, 2.0],
        "target": [0.0, 1.0, 1.0, 2.5],
        "var": [1e-8, 1e-9, 0.5, 2.0],
    },
    "a zero variance": {
        "input": [0.5, 1.0, -1.0, 2.0],
        "target": [0.0, 1.0, 1.0, 2.5],
        "var": [0.0, 0.25, 0.5, 2.0],
        "full": True,
    },
    "large eps": {
        "input": [0.5, 1.0, -1.0],
        "target": [0.0, 1.0, 1.0],
        "var": [0.1, 0.2, 0.3],
        "eps": 0.25,
    },
    "(N, 1) against (N)": {
        "input": [[0.5], [1.0], [-1.0]],
        "target": [0.0, 1.5, 1.0],
        "var": [0.4, 0.2, 0.9],
    },
    "rank 3": {
        "input": _rng.standard_normal((2, 3, 2)).tolist(),
        "target": _rng.standard_normal((2, 3, 2)).tolist(),
        "var": _rng.gamma(2.0, 0.5, (2, 3)).tolist(),
    },
}
cases(GAUSS, CASES)


def _scale_of(body: Body) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input, target, the standard deviations shaped to broadcast with the input)."""
    x = np.asarray(body["input"], dtype=np.float64)
    t = np.asarray(body["target"], dtype=np.float64)
    var = np.asarray(body["var"], dtype=np.float64)
    if var.ndim and var.shape != x.shape and var.shape == x.shape[:-1]:
        var = var[..., None]
    return x, t, np.sqrt(var)


def _gaussian(body: Body, **overrides: Any) -> torch.Tensor:
    """torch's gaussian_nll_loss on the body (a number var passed as a float, as torch takes
    it: a 0-dim tensor is refused)."""
    b = body | overrides
    var = b["var"]
    v: Any = float(var) if np.ndim(var) == 0 else torch.tensor(np.asarray(var, dtype=np.float64))
    return F.gaussian_nll_loss(
        torch.tensor(np.asarray(b["input"], dtype=np.float64)),
        torch.tensor(np.asarray(b["target"], dtype=np.float64)),
        v,
        full=b.get("full", False),
        eps=b.get("eps", 1e-6),
        reduction=b.get("reduction", "mean"),
    )


@row(GAUSS, "torch")
def torch_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # target shapes that broadcast
        assert_close(got["value"], _gaussian(body))
        assert_close(got["per_sample"], _gaussian(body, reduction="none"))


@row(GAUSS, "torch_full")
def torch_full_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_close(got["value"], _gaussian(body, full=True))


@row(GAUSS, "normal_log_prob")
def normal_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, t, scale = (torch.tensor(a) for a in _scale_of(body))
    refusal = None
    try:
        dist = torch.distributions.Normal(x, scale)
    except ValueError as exc:
        refusal = str(exc)
    if refusal is not None:
        assert "error" in got, f"Normal refused ({refusal}) but the row has a value"
        return
    assert "error" not in got, got
    assert_close(got["value"], -dist.log_prob(t).mean())  # type: ignore[no-untyped-call]


@row(GAUSS, "scipy")
def scipy_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, t, scale = _scale_of(body)
    with np.errstate(divide="ignore", invalid="ignore"):
        logpdf = scipy.stats.norm.logpdf(t, x, scale)
    assert_close(got["per_sample"], -np.broadcast_to(logpdf, np.shape(got["per_sample"])))
    assert_close(got["value"], -np.mean(logpdf))


@mistake(GAUSS, "gaussian_std_as_var")
def std_as_var(loss: str, body: Body) -> float:
    return float(_gaussian(body, var=np.sqrt(np.asarray(body["var"], dtype=np.float64))))


@mistake(GAUSS, "gaussian_full_constant")
def full_flipped(loss: str, body: Body) -> float:
    return float(_gaussian(body, full=not body.get("full", False)))


@mistake(GAUSS, "sum_instead_of_mean")
def summed(loss: str, body: Body) -> float:
    return float(_gaussian(body, reduction="sum"))


@mistake(GAUSS, "mean_over_batch_not_elements")
def per_sample_sum_over_batch(loss: str, body: Body) -> float:
    losses = _gaussian(body, reduction="none")
    return float(losses.sum() / losses.shape[0])


@mistake(GAUSS, "broadcast_n1_vs_n")
def aligned(loss: str, body: Body) -> float:
    """What a library that lines up (N, 1) and (N) computes: the loss on both flattened."""
    return float(
        _gaussian(
            body,
            input=np.asarray(body["input"]).reshape(-1),
            target=np.asarray(body["target"]).reshape(-1),
        )
    )
