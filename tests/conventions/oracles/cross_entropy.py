"""cross_entropy's oracles: scikit-learn, Keras 3 on torch and optax on JAX called here, torch
itself, and (tf.nn, the textbook, the article's loop) the formulas written independently.
Keras on the torch backend returns its mean in float32 even with ``dtype="float64"``, so its
per-sample losses are compared tightly and its mean loosely."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from tests.conventions.oracles import Body, cases, mistake, row
from tests.conventions.oracles.libraries import ForCausalLMLoss, jax, jnp, keras, optax, sklearn
from tests.conventions.oracles.tools import assert_close, per

CE = "cross_entropy"
ARTICLE = {"input": ARTICLE_INPUT, "target": ARTICLE_TARGET}
_rng = np.random.default_rng(7)
_probs = _rng.dirichlet(np.ones(4), size=5)
_logits = _rng.standard_normal((5, 4)) * 2
CASES: dict[str, Body] = {
    "article": ARTICLE,
    "tiny probability": {"input": [[1e-12, 0.5, 0.5 - 1e-12]], "target": [0]},
    "probabilities": {"input": _probs.tolist(), "target": [0, 1, 2, 3, 1]},
    "unnormalised probabilities": {"input": (_probs * 0.7).tolist(), "target": [3, 1, 2, 0, 0]},
    "logits": {"input": _logits.tolist(), "target": [3, 1, 2, 0, 0]},
    "weighted": {"input": _probs.tolist(), "target": [0, 1, 2, 3, 1], "weight": [1, 2, 0.5, 3]},
    "weighted logits": {
        "input": _logits.tolist(),
        "target": [0, 1, 2, 3, 1],
        "weight": [1, 2, 0.5, 3],
    },
    "ignored": {"input": _probs.tolist(), "target": [0, -100, 2, 3, -100]},
    "ignored, own index": {"input": _logits.tolist(), "target": [0, 2, 2, 3, 2], "ignore_index": 2},
    "all ignored": {"input": _probs.tolist(), "target": [-100] * 5},
    "smoothed": {"input": _probs.tolist(), "target": [0, 1, 2, 3, 1], "label_smoothing": 0.2},
    "smoothed logits, weighted, ignored": {
        "input": _logits.tolist(),
        "target": [0, -100, 2, 3, 1],
        "label_smoothing": 0.1,
        "weight": [1, 2, 0.5, 3],
    },
    "probability targets": {"input": _logits.tolist(), "target": _probs.tolist()},
    "probability targets smoothed": {
        "input": _probs.tolist(),
        "target": _rng.dirichlet(np.ones(4), size=5).tolist(),
        "label_smoothing": 0.3,
    },
    "one sample": {"input": [0.2, 0.5, 0.3], "target": 1},
    "rank 3": {
        "input": np.moveaxis(_rng.dirichlet(np.ones(3), size=(2, 4)), -1, 1).tolist(),
        "target": [[0, 1, 2, 1], [2, 2, 0, 1]],
    },
    "rank 3 logits": {
        "input": (_rng.standard_normal((2, 3, 4)) * 2).tolist(),
        "target": [[0, 1, 2, 1], [2, 2, 0, 1]],
    },
    "rank 3 logits, weighted": {
        "input": (_rng.standard_normal((2, 3, 4)) * 2).tolist(),
        "target": [[0, 1, 2, 1], [2, 2, 0, 1]],
        "weight": [0.5, 2.0, 1.5],
    },
}
cases(CE, CASES)


class Inputs:
    """The body as the libraries take it: classes last, flattened to (M, C)."""

    def __init__(self, body: dict[str, Any]) -> None:
        x = np.asarray(body["input"], dtype=np.float64)
        self.raw = x
        self.batch = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
        xm = np.moveaxis(x, 1, -1) if x.ndim > 1 else x
        self.C = xm.shape[-1]
        self.x = xm.reshape(-1, self.C)
        t = np.asarray(body["target"])
        self.indices = t.shape != x.shape
        self.y = t.reshape(-1).astype(np.int64) if self.indices else np.zeros(0, np.int64)
        tm = np.moveaxis(t, 1, -1) if t.ndim > 1 else t
        self.t = tm.reshape(-1, self.C).astype(float) if not self.indices else np.zeros((0, self.C))
        self.weight = None if body.get("weight") is None else np.asarray(body["weight"], float)
        self.ignore_index = body.get("ignore_index", -100)
        self.eps = body.get("label_smoothing", 0.0)
        self.keep = self.y != self.ignore_index if self.indices else np.ones(len(self.x), bool)


def _torch_args(body: Body) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    x = torch.tensor(body["input"], dtype=torch.float64)
    t = torch.tensor(body["target"], dtype=torch.float64)
    if t.shape != x.shape:
        t = t.long()
    kwargs: dict[str, Any] = {
        "ignore_index": body.get("ignore_index", -100),
        "label_smoothing": body.get("label_smoothing", 0.0),
        "weight": None
        if body.get("weight") is None
        else torch.tensor(body["weight"], dtype=torch.float64),
    }
    return x, t, kwargs


@row(CE, "torch")
def torch_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, t, kwargs = _torch_args(body)
    assert_close(got["value"], F.cross_entropy(x, t, **kwargs))
    assert_close(got["per_sample"], F.cross_entropy(x, t, reduction="none", **kwargs))
    assert got["agrees_with_torch"] is True


@row(CE, "perplexity")
def perplexity_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, t, kwargs = _torch_args(body)
    assert_close(got["value"], torch.exp(F.cross_entropy(x, t, **kwargs)))


@row(CE, "torch_nll_on_log")
def nll_on_log_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    x, t, kwargs = _torch_args(body)
    if t.dtype != torch.long:
        assert "error" in got
        return
    expected = F.nll_loss(
        torch.log(x), t, weight=kwargs["weight"], ignore_index=kwargs["ignore_index"]
    )
    assert_close(got["value"], expected)


@row(CE, "textbook")
def textbook_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    a = Inputs(body)
    if a.x.min() < 0 or a.x.max() > 1:
        assert "error" in got
        return
    if a.indices:
        p = a.x[np.arange(len(a.y))[a.keep], a.y[a.keep]]
        want = -np.log(p).mean() if p.size else np.nan
        assert_close(got["value"], want)
    else:
        assert_close(got["value"], -(a.t * np.log(a.x)).sum(axis=1).mean())


def article_loop(x: Any, y: Any) -> float:
    """The article's loop, as printed (without its final rounding to 4 places)."""
    h = 0.0
    for i in range(len(y)):
        inner = 0.0
        for _ in x[i]:
            inner += np.log(x[i][y[i]])
        h += -inner
    return h / len(y)


@row(CE, "article_loop")
def article_loop_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    a = Inputs(body)
    if a.x.min() < 0 or a.x.max() > 1 or not a.indices or not a.keep.all():
        assert "error" in got
        return
    assert_close(got["value"], article_loop(a.x, a.y))


@row(CE, "sklearn_log_loss")
def sklearn_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    a = Inputs(body)
    kwargs: dict[str, Any] = {"labels": range(a.C)}
    y, x = (a.y[a.keep], a.x[a.keep]) if a.indices else (a.t, a.x)
    if a.weight is not None and a.indices:
        kwargs["sample_weight"] = a.weight[y]
    refusal = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rows not summing to one; y_pred renamed y_proba
            want = sklearn.metrics.log_loss(y, x, **kwargs)
    except (ValueError, TypeError) as exc:
        refusal = str(exc)
    if refusal is not None:
        assert "error" in got, f"scikit-learn refused ({refusal}) but the row has a value"
        return
    assert "error" not in got, got
    assert_close(got["value"], want)


def _keras_args(a: Inputs, smoothing_form: bool) -> tuple[Any, Any, Any]:
    if a.indices and not smoothing_form:
        sw = None if a.weight is None else a.weight[np.where(a.keep, a.y, 0)]
        return a.y, a.x, sw
    if a.indices:
        y_true = np.eye(a.C)[np.where(a.keep, a.y, 0)]
        sw = (
            a.keep.astype(float)
            if a.weight is None
            else a.weight[np.where(a.keep, a.y, 0)] * a.keep
        )
        return y_true, a.x, sw if (a.weight is not None or not a.keep.all()) else None
    return a.t, a.x, None


def _keras(body: Body, got: dict[str, Any], from_logits: bool) -> None:
    a = Inputs(body)
    assert got["reads_input_as"] == ("logits" if from_logits else "probabilities")
    smoothing_form = bool(a.eps) or not a.indices
    y_true, y_pred, sw = _keras_args(a, smoothing_form)

    def make(reduction: str | None) -> Any:
        if smoothing_form:
            return keras.losses.CategoricalCrossentropy(
                from_logits=from_logits, label_smoothing=a.eps, reduction=reduction, dtype="float64"
            )
        ignore = None if a.keep.all() else a.ignore_index
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=from_logits, ignore_class=ignore, reduction=reduction, dtype="float64"
        )

    per_sample = make(None)(y_true, y_pred, sample_weight=sw)
    assert_close(per(got), per_sample.reshape(-1), what="per-sample losses")
    mean = make("sum_over_batch_size")(y_true, y_pred, sample_weight=sw)
    assert_close(got["value"], float(mean), rel=2e-6, what="Keras's float32 mean")


@row(CE, "keras_from_probs")
def keras_from_probs_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    _keras(body, got, from_logits=False)


@row(CE, "keras_from_logits")
def keras_from_logits_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    _keras(body, got, from_logits=True)


@row(CE, "optax")
def optax_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    a = Inputs(body)
    x = jnp.asarray(a.x[a.keep])
    if a.indices and not a.eps:
        losses = optax.softmax_cross_entropy_with_integer_labels(x, jnp.asarray(a.y[a.keep]))
    else:
        labels = jax.nn.one_hot(a.y[a.keep], a.C) if a.indices else jnp.asarray(a.t)
        if a.eps:
            labels = optax.smooth_labels(labels, a.eps)
        losses = optax.softmax_cross_entropy(x, labels)
    assert losses.dtype == jnp.float64
    want = np.asarray(losses).mean() if losses.size else np.nan
    assert_close(got["value"], want)
    assert_close(per(got)[a.keep], np.asarray(losses))


@row(CE, "tf_nn")
def tf_nn_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    """tf.nn.(sparse_)softmax_cross_entropy_with_logits: -sum(labels * log_softmax(logits)),
    its documented formula (TensorFlow is not installed)."""
    a = Inputs(body)
    logp = torch.log_softmax(torch.tensor(a.x[a.keep]), dim=-1).numpy()
    labels = np.eye(a.C)[a.y[a.keep]] if a.indices else a.t
    losses = -(labels * logp).sum(axis=-1)
    assert_close(got["value"], losses.mean() if losses.size else np.nan)


@mistake(CE, "probabilities_as_logits")
def softmax_twice(loss: str, body: Body) -> float:
    x, t, kwargs = _torch_args(body)
    return float(F.cross_entropy(torch.softmax(x, dim=1 if x.ndim > 1 else 0), t, **kwargs))


@mistake(CE, "logits_as_probabilities")
def textbook_on_scores(loss: str, body: Body) -> float:
    """-log of the target's raw score, clipped as scikit-learn clips, weighted as its
    sample_weight weighs."""
    a = Inputs(body)
    eps = float(np.finfo(np.float64).eps)
    p = torch.clamp(torch.tensor(a.x[a.keep, a.y[a.keep]]), eps, 1 - eps)
    w = torch.ones_like(p) if a.weight is None else torch.tensor(a.weight[a.y[a.keep]])
    return float((-torch.log(p) * w).sum() / w.sum())


_B, _V, _T = 2, 7, 5
_lm_logits = _rng.standard_normal((_B, _T, _V)) * 2
_lm_labels = _rng.integers(0, _V, (_B, _T))
_lm_padded = np.where(np.arange(_T) >= 3, -100, _lm_labels)
cases(
    CE,
    {
        "language model": {
            "input": np.transpose(_lm_logits, (0, 2, 1)).tolist(),
            "target": _lm_labels.tolist(),
        },
        "language model, padded with -100": {
            "input": np.transpose(_lm_logits, (0, 2, 1)).tolist(),
            "target": _lm_padded.tolist(),
        },
    },
)


@row(CE, "hf_causal_lm")
def hf_causal_lm_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    """transformers' ForCausalLMLoss on the logits (B, T, V) and the labels; it computes in
    float32 (``logits.float()``), hence the float32 tolerance."""
    logits = torch.tensor(body["input"], dtype=torch.float64).transpose(1, 2).contiguous()
    labels = torch.tensor(body["target"])
    kwargs = {} if "ignore_index" not in body else {"ignore_index": body["ignore_index"]}
    want = ForCausalLMLoss(logits, labels, vocab_size=logits.shape[-1], **kwargs)
    assert_close(got["value"], float(want), rel=1e-6)


@mistake(CE, "causal_lm_double_shift")
def double_shift(loss: str, body: Body) -> float:
    """The labels shifted by the user (labels[:, 1:], padded with -100), then by
    ForCausalLMLoss again; computed in float64 with torch from that documented shift, since
    ForCausalLMLoss itself computes in float32."""
    logits = torch.tensor(body["input"], dtype=torch.float64).transpose(1, 2).contiguous()
    labels = torch.tensor(body["target"])
    ignore = body.get("ignore_index", -100)
    once = F.pad(labels[:, 1:], (0, 1), value=ignore)  # the user's shift
    twice = F.pad(once[:, 1:], (0, 1), value=ignore)  # the library's
    v = logits.shape[-1]
    library = float(ForCausalLMLoss(logits, once, vocab_size=v, ignore_index=ignore))
    mine = float(F.cross_entropy(logits.reshape(-1, v), twice.reshape(-1), ignore_index=ignore))
    assert abs(library - mine) <= 1e-5 * abs(mine), (library, mine)
    return mine
