"""nll_loss's oracles: torch itself (nll_loss, cross_entropy), Keras 3 on the torch backend and
scikit-learn called here on exp(input). Keras on the torch backend returns its mean in float32
even with ``dtype="float64"``, so its per-sample losses are compared tightly and its mean
loosely."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from tests.conventions.oracles import Body, cases, mistake, row
from tests.conventions.oracles.libraries import keras, sklearn
from tests.conventions.oracles.tools import assert_close, per

NLL = "nll_loss"
_rng = np.random.default_rng(23)


def _log_softmax(z: np.ndarray, axis: int) -> np.ndarray:
    return np.asarray(torch.log_softmax(torch.tensor(z), dim=axis))


_scores = _rng.standard_normal((5, 4)) * 2
_logp = _log_softmax(_scores, 1)
_rank3 = _log_softmax(_rng.standard_normal((2, 3, 4)) * 2, 1)
_tiny = np.log(np.array([[1e-12, 0.5, 0.5 - 1e-12], [0.2, 0.3, 0.5]]))
CASES: dict[str, Body] = {
    "article's log-probabilities": {
        "input": np.log(ARTICLE_INPUT).tolist(),
        "target": ARTICLE_TARGET,
    },
    "log-probabilities": {"input": _logp.tolist(), "target": [3, 1, 2, 0, 0]},
    "weighted": {"input": _logp.tolist(), "target": [0, 1, 2, 3, 1], "weight": [1, 2, 0.5, 3]},
    "ignored": {"input": _logp.tolist(), "target": [0, -100, 2, 3, -100]},
    "ignored, own index, weighted": {
        "input": _logp.tolist(),
        "target": [0, 2, 2, 3, 1],
        "ignore_index": 2,
        "weight": [0.5, 2.0, 1.0, 1.5],
    },
    "all ignored": {"input": _logp.tolist(), "target": [-100] * 5},
    "a zero class weight": {
        "input": _logp.tolist(),
        "target": [0, 1, 2, 3, 0],
        "weight": [0, 1, 1, 2],
    },
    "raw scores": {"input": _scores.tolist(), "target": [3, 1, 2, 0, 0]},
    "raw scores, weighted, ignored": {
        "input": _scores.tolist(),
        "target": [0, -100, 2, 3, 1],
        "weight": [1, 2, 0.5, 3],
    },
    "negative raw scores": {"input": (_logp - 1.5).tolist(), "target": [3, 1, 2, 0, 0]},
    "probabilities": {"input": np.exp(_logp).tolist(), "target": [3, 1, 2, 0, 0]},
    "tiny probability": {"input": _tiny.tolist(), "target": [0, 2]},
    "one sample": {"input": [-1.2, -0.4, -2.1], "target": 1},
    "rank 3": {"input": _rank3.tolist(), "target": [[0, 1, 2, 1], [2, 2, 0, 1]]},
    "rank 3 raw scores, weighted": {
        "input": (_rng.standard_normal((2, 3, 4)) * 3).tolist(),
        "target": [[0, 1, 2, 1], [2, 2, 0, 1]],
        "weight": [0.5, 2.0, 1.5],
    },
}
cases(NLL, CASES)


class Inputs:
    """The body as the libraries take it: classes last, flattened to (M, C)."""

    def __init__(self, body: Body) -> None:
        x = np.asarray(body["input"], dtype=np.float64)
        xm = np.moveaxis(x, 1, -1) if x.ndim > 1 else x
        self.C = xm.shape[-1]
        self.x = xm.reshape(-1, self.C)
        self.y = np.asarray(body["target"]).reshape(-1).astype(np.int64)
        self.weight = None if body.get("weight") is None else np.asarray(body["weight"], float)
        self.ignore_index = body.get("ignore_index", -100)
        self.keep = self.y != self.ignore_index
        self.safe = np.where(self.keep, self.y, 0)


def _torch_args(body: Body) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    x = torch.tensor(body["input"], dtype=torch.float64)
    t = torch.tensor(body["target"], dtype=torch.int64)
    w = body.get("weight")
    kwargs: dict[str, Any] = {
        "ignore_index": body.get("ignore_index", -100),
        "weight": None if w is None else torch.tensor(w, dtype=torch.float64),
    }
    return x, t, kwargs


def _dim(x: torch.Tensor) -> int:
    return 1 if x.ndim > 1 else 0


@row(NLL, "torch")
def torch_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, t, kwargs = _torch_args(body)
    assert_close(got["value"], F.nll_loss(x, t, **kwargs))
    assert_close(got["per_sample"], F.nll_loss(x, t, reduction="none", **kwargs))
    assert got["agrees_with_torch"] is True


@row(NLL, "cross_entropy_reading")
def cross_entropy_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, t, kwargs = _torch_args(body)
    assert_close(got["value"], F.cross_entropy(x, t, **kwargs))
    assert_close(got["per_sample"], F.cross_entropy(x, t, reduction="none", **kwargs))
    normalised = bool(torch.logsumexp(x, dim=_dim(x)).abs().max() < 1e-2)
    assert got["agrees_with_torch"] is normalised or not t.ne(kwargs["ignore_index"]).any()


@row(NLL, "on_probabilities")
def on_probabilities_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, t, kwargs = _torch_args(body)
    assert_close(got["value"], F.nll_loss(torch.exp(x), t, **kwargs))


@row(NLL, "keras")
def keras_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    """SparseCategoricalCrossentropy(from_logits=False) on the probabilities exp(input)."""
    a = Inputs(body)
    ignore = None if a.keep.all() else a.ignore_index
    sw = None if a.weight is None else a.weight[a.safe]

    def make(reduction: str | None) -> Any:
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=False, ignore_class=ignore, reduction=reduction, dtype="float64"
        )

    p = np.exp(a.x)
    per_sample = make(None)(a.y, p, sample_weight=sw)
    assert_close(per(got), np.asarray(per_sample).reshape(-1), what="per-sample losses")
    mean = make("sum_over_batch_size")(a.y, p, sample_weight=sw)
    assert_close(got["value"], float(mean), rel=2e-6, what="Keras's float32 mean")


@row(NLL, "sklearn_log_loss")
def sklearn_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    a = Inputs(body)
    kwargs: dict[str, Any] = {"labels": range(a.C)}
    if a.weight is not None:
        kwargs["sample_weight"] = a.weight[a.y[a.keep]]
    refusal = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rows not summing to one
            want = sklearn.metrics.log_loss(a.y[a.keep], np.exp(a.x[a.keep]), **kwargs)
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        refusal = str(exc)
    if refusal is not None:
        assert "error" in got, f"scikit-learn refused ({refusal}) but the row has a value"
        return
    assert "error" not in got, got
    assert_close(got["value"], want)


@mistake(NLL, "missing_log_softmax")
def log_softmax_first(loss: str, body: Body) -> float:
    """The loss on log_softmax(input): the number torch gives once the scores are normalised."""
    x, t, kwargs = _torch_args(body)
    return float(F.nll_loss(F.log_softmax(x, dim=_dim(x)), t, **kwargs))


@mistake(NLL, "probabilities_as_logits")
def cross_entropy_on_probabilities(loss: str, body: Body) -> float:
    x, t, kwargs = _torch_args(body)
    return float(F.cross_entropy(torch.exp(x), t, **kwargs))


@mistake(NLL, "logits_as_probabilities")
def textbook_on_input(loss: str, body: Body) -> float:
    """-log input[target], clipped as scikit-learn clips, weighted as torch weighs."""
    a = Inputs(body)
    eps = float(np.finfo(np.float64).eps)
    p = torch.clamp(torch.tensor(a.x[a.keep, a.y[a.keep]]), eps, 1 - eps)
    w = torch.ones_like(p) if a.weight is None else torch.tensor(a.weight[a.y[a.keep]])
    return float((-torch.log(p) * w).sum() / w.sum())


def _torch_sum(body: Body) -> float:
    x, t, kwargs = _torch_args(body)
    return float(F.nll_loss(x, t, reduction="sum", **kwargs))


@mistake(NLL, "mean_over_batch_not_elements")
def per_sample_sum_over_batch(loss: str, body: Body) -> float:
    """.sum() / N for a K-dimensional request: N the size of dimension 0."""
    return _torch_sum(body) / int(np.asarray(body["input"]).shape[0])


@mistake(NLL, "weights_not_in_denominator")
def weighted_losses_averaged(loss: str, body: Body) -> float:
    """(w * loss).mean() over every target, ignored ones included (as zeros)."""
    return _torch_sum(body) / np.asarray(body["target"]).size
