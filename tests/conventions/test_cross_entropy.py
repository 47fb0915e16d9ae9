"""cross_entropy's convention rows against the real libraries, row by row.

Each case is a body of ``POST /v1/losses/cross_entropy``; each row's value and per-sample losses
are compared with the library called here in-process (scikit-learn, Keras 3 on torch, optax on
JAX), with torch itself, or (tf.nn, the textbook, the article's loop) with the formula written
independently. Keras on the torch backend returns its mean in float32 even with
``dtype="float64"``, so its per-sample losses are compared tightly and its mean loosely.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch
import torch.nn.functional as F

from service.conventions import conventions
from service.dataplane import Dataplane
from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from tests.conventions.libraries import jax, jnp, keras, optax, sklearn

IDS = [
    "torch",
    "torch_nll_on_log",
    "textbook",
    "article_loop",
    "sklearn_log_loss",
    "keras_from_probs",
    "keras_from_logits",
    "optax",
    "tf_nn",
    "perplexity",
]
ARTICLE = {"input": ARTICLE_INPUT, "target": ARTICLE_TARGET}
_rng = np.random.default_rng(7)
_probs = _rng.dirichlet(np.ones(4), size=5)
_logits = _rng.standard_normal((5, 4)) * 2
CASES: dict[str, dict[str, Any]] = {
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
}


def rows_for(dataplane: Dataplane, body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = conventions(dataplane, "cross_entropy", body)
    assert [r["id"] for r in out["conventions"]] == IDS
    return {r["id"]: r for r in out["conventions"]}


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


def assert_close(got: Any, want: Any, rel: float = 1e-12, what: str = "") -> None:
    got_a = np.asarray(got, dtype=np.float64)
    want_a = np.asarray(want, dtype=np.float64)
    np.testing.assert_allclose(got_a, want_a, rtol=rel, atol=1e-12, equal_nan=True, err_msg=what)


def per(row: dict[str, Any]) -> npt.NDArray[np.float64]:
    return np.asarray(row["per_sample"], dtype=np.float64).reshape(-1)


@pytest.mark.parametrize("case", CASES)
def test_torch_rows(dataplane: Dataplane, case: str) -> None:
    body = CASES[case]
    rows = rows_for(dataplane, body)
    x = torch.tensor(body["input"], dtype=torch.float64)
    t = torch.tensor(body["target"], dtype=torch.float64)
    if t.shape != x.shape:
        t = t.long()
    kwargs: dict[str, Any] = {
        "ignore_index": body.get("ignore_index", -100),
        "label_smoothing": body.get("label_smoothing", 0.0),
    }
    weight = (
        None if body.get("weight") is None else torch.tensor(body["weight"], dtype=torch.float64)
    )
    want = F.cross_entropy(x, t, weight=weight, **kwargs)
    assert_close(rows["torch"]["value"], want)
    assert_close(
        rows["torch"]["per_sample"],
        F.cross_entropy(x, t, weight=weight, reduction="none", **kwargs),
    )
    assert rows["torch"]["agrees_with_torch"] is True
    assert_close(rows["perplexity"]["value"], torch.exp(want))
    nll = rows["torch_nll_on_log"]
    if t.dtype != torch.long:
        assert "error" in nll
        return
    with warnings.catch_warnings():
        logp = torch.log(x)
    expected = F.nll_loss(logp, t, weight=weight, ignore_index=kwargs["ignore_index"])
    assert_close(nll["value"], expected)


@pytest.mark.parametrize("case", CASES)
def test_probability_readings(dataplane: Dataplane, case: str) -> None:
    body = CASES[case]
    rows, a = rows_for(dataplane, body), Inputs(body)
    if a.x.min() < 0 or a.x.max() > 1:
        assert "error" in rows["textbook"]
        assert "error" in rows["article_loop"]
        return
    if a.indices:
        p = a.x[np.arange(len(a.y))[a.keep], a.y[a.keep]]
        want = -np.log(p).mean() if p.size else np.nan
        assert_close(rows["textbook"]["value"], want)
    else:
        assert_close(rows["textbook"]["value"], -(a.t * np.log(a.x)).sum(axis=1).mean())
    loop = rows["article_loop"]
    if not a.indices or not a.keep.all():
        assert "error" in loop
    else:
        # The article's loop, as printed (without its final rounding to 4 places).
        h = 0.0
        for i in range(len(a.y)):
            inner = 0.0
            for _ in a.x[i]:
                inner += np.log(a.x[i][a.y[i]])
            h += -inner
        assert_close(loop["value"], h / len(a.y))


@pytest.mark.parametrize("case", CASES)
def test_sklearn(dataplane: Dataplane, case: str) -> None:
    body = CASES[case]
    row, a = rows_for(dataplane, body)["sklearn_log_loss"], Inputs(body)
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
        assert "error" in row, f"scikit-learn refused ({refusal}) but the row has a value"
        return
    assert "error" not in row, row
    assert_close(row["value"], want)


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


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_keras(dataplane: Dataplane, case: str, from_logits: bool) -> None:
    body = CASES[case]
    rows, a = rows_for(dataplane, body), Inputs(body)
    row = rows["keras_from_logits" if from_logits else "keras_from_probs"]
    assert row["reads_input_as"] == ("logits" if from_logits else "probabilities")
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
    assert_close(per(row), per_sample.reshape(-1), what="per-sample losses")
    mean = make("sum_over_batch_size")(y_true, y_pred, sample_weight=sw)
    assert_close(row["value"], float(mean), rel=2e-6, what="Keras's float32 mean")


@pytest.mark.parametrize("case", CASES)
def test_optax(dataplane: Dataplane, case: str) -> None:
    body = CASES[case]
    row, a = rows_for(dataplane, body)["optax"], Inputs(body)
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
    assert_close(row["value"], want)
    assert_close(per(row)[a.keep], np.asarray(losses))


@pytest.mark.parametrize("case", CASES)
def test_tf_nn_against_its_documented_formula(dataplane: Dataplane, case: str) -> None:
    """tf.nn.(sparse_)softmax_cross_entropy_with_logits: -sum(labels * log_softmax(logits))."""
    body = CASES[case]
    row, a = rows_for(dataplane, body)["tf_nn"], Inputs(body)
    logp = torch.log_softmax(torch.tensor(a.x[a.keep]), dim=-1).numpy()
    labels = np.eye(a.C)[a.y[a.keep]] if a.indices else a.t
    losses = -(labels * logp).sum(axis=-1)
    assert_close(row["value"], losses.mean() if losses.size else np.nan)


def test_the_articles_numbers(dataplane: Dataplane) -> None:
    """The article's example: the logit readings give torch's 1.1484, the probability readings
    1.3157, the article's loop 3.9470 (each value is checked against its library above)."""
    rows = rows_for(dataplane, ARTICLE)
    shown = {k: round(v["value"], 4) for k, v in rows.items()}
    torch_value = round(
        float(F.cross_entropy(torch.tensor(ARTICLE_INPUT), torch.tensor(ARTICLE_TARGET))), 4
    )
    assert torch_value == 1.1484
    for k in ("torch", "keras_from_logits", "optax", "tf_nn"):
        assert shown[k] == torch_value, k
        assert rows[k]["agrees_with_torch"] is True
    for k in ("torch_nll_on_log", "textbook", "sklearn_log_loss", "keras_from_probs"):
        assert shown[k] == 1.3157, k
        assert rows[k]["agrees_with_torch"] is False
        assert rows[k]["reads_input_as"] == "probabilities"
    assert shown["article_loop"] == 3.9470
    assert (
        rows["sklearn_log_loss"]["call"]
        == "sklearn.metrics.log_loss(target, input, labels=range(C))"
    )
    assert all(r["why"].endswith(".") and r["why"].count(". ") == 0 for r in rows.values())


def test_a_tiny_probability_parts_the_readings(dataplane: Dataplane) -> None:
    """One probability of 1e-12 on the target: -log 1e-12 = 27.63 for the textbook and
    scikit-learn (its clip is 2.2e-16), 16.12 for Keras (its clip is 1e-7)."""
    rows = rows_for(dataplane, CASES["tiny probability"])
    assert round(rows["textbook"]["value"], 2) == 27.63
    assert round(rows["sklearn_log_loss"]["value"], 2) == 27.63
    assert round(rows["keras_from_probs"]["value"], 2) == 16.12


def test_options_are_mapped_in_the_calls(dataplane: Dataplane) -> None:
    rows = rows_for(dataplane, CASES["smoothed logits, weighted, ignored"])
    assert "label_smoothing=0.1" in rows["keras_from_logits"]["call"]
    assert "sample_weight=weight[target]" in rows["keras_from_logits"]["call"]
    assert "optax.smooth_labels(" in rows["optax"]["call"]
    assert "no class weight" in rows["optax"]["why"]
    assert "no label smoothing" in rows["tf_nn"]["why"]
    rows = rows_for(dataplane, CASES["ignored"])
    assert "ignore_class=-100" in rows["keras_from_probs"]["call"]
    rows = rows_for(dataplane, CASES["weighted logits"])
    assert "not by the sum of the weights" in rows["keras_from_logits"]["why"]
    assert rows["keras_from_logits"]["agrees_with_torch"] is False
