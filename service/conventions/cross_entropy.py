"""cross_entropy as each library reads the same numbers.

Rows, in this order: ``torch`` (the service's reference for the request), ``torch_nll_on_log``,
``textbook``, ``article_loop``, ``sklearn_log_loss``, ``keras_from_probs``,
``keras_from_logits``, ``optax``, ``tf_nn`` and ``perplexity``. Inputs of shape (N, C, d1, ...)
are read with the class axis last, one sample per element, as Keras, optax and TensorFlow
take them; scikit-learn gets them flattened to (M, C).

The algorithms followed (see the README for the versions):
- scikit-learn ``log_loss``: refuses probabilities outside [0, 1] and labels outside
  ``labels``; clips to [eps, 1 - eps] with eps = finfo(float64).eps, no renormalisation (it only
  warns when rows do not sum to one); the mean is weighted by ``sample_weight``.
- Keras 3 (torch and JAX backends) ``from_logits=False``: renormalise each row to sum to one,
  then clip to [1e-7, 1 - 1e-7]; ``label_smoothing`` turns y into y(1 - e) + e/C; the default
  ``sum_over_batch_size`` divides the weighted sum by the number of samples, and with
  ``ignore_class`` by the number of samples not ignored (0 when there are none).
- optax: ``logsumexp(x) - x[y]``; ``smooth_labels`` gives (1 - a)Q + a/C.
- ``tf.nn``: the log-softmax of the logits, documented as ``-sum(labels * log_softmax)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.conventions.base import (
    F64,
    KERAS_EPSILON,
    LOGITS,
    PROBABILITIES,
    SKLEARN_EPSILON,
    Row,
    mean_of,
    outside_unit_interval,
    refused,
    xlogy,
)
from service.losses.base import I64, Prepared
from service.losses.common import class_axis, last_axis, log_softmax
from service.losses.cross_entropy import CrossEntropyParams


@dataclass
class Case:
    """The request's numbers with the class axis last, flattened to (M, C)."""

    x: F64
    """(M, C): the input as sent."""
    batch: tuple[int, ...]
    """The shape of one loss per element (the input's shape without its class axis)."""
    indices: bool
    y: I64
    """(M,) class indices (indices only)."""
    t: F64
    """(M, C) class probabilities (probabilities only)."""
    kept: np.ndarray
    """(M,) targets that are not ``ignore_index`` (all True for probabilities)."""
    safe: I64
    weight: F64 | None
    ignore_index: int
    smoothing: float
    x_name: str
    """How the calls name the input with its class axis last."""
    t_name: str

    @property
    def classes(self) -> int:
        return int(self.x.shape[1])

    @property
    def any_ignored(self) -> bool:
        return bool(self.indices and not self.kept.all())

    def shaped(self, per: F64) -> F64:
        return per.reshape(self.batch)


def case_of(params: CrossEntropyParams, prep: Prepared) -> Case:
    x = prep.array("input")
    axis = class_axis(x)
    xm = np.asarray(last_axis(x, axis), dtype=np.float64)
    batch = xm.shape[:-1]
    classes = xm.shape[-1]
    flat = xm.reshape(-1, classes)
    indices = prep.facts["target_form"] == "class_indices"
    weight = prep.arrays.get("weight")
    if x.ndim == 1:
        x_name, t_name = "input[None]", "target[None]"
    elif x.ndim == 2:
        x_name, t_name = "input", "target"
    else:
        x_name = "moveaxis(input, 1, -1)"
        t_name = "target" if indices else "moveaxis(target, 1, -1)"
    if indices:
        y = np.asarray(prep.arrays["target"]).reshape(-1)
        kept = y != params.ignore_index
        t = np.zeros((0, classes))
    else:
        tm = last_axis(np.asarray(prep.arrays["target"], dtype=np.float64), axis)
        t = tm.reshape(-1, classes)
        y = np.zeros(t.shape[0], dtype=np.int64)
        kept = np.ones(t.shape[0], dtype=bool)
    safe = np.where(kept, y, 0)
    return Case(
        x=flat,
        batch=batch,
        indices=indices,
        y=y,
        t=t,
        kept=kept,
        safe=safe,
        weight=None if weight is None else np.asarray(weight, dtype=np.float64),
        ignore_index=params.ignore_index,
        smoothing=params.label_smoothing,
        x_name=x_name,
        t_name=t_name,
    )


def rows(
    params: CrossEntropyParams, prep: Prepared, torch_losses: F64, torch_value: float
) -> list[Row]:
    case = case_of(params, prep)
    return [
        torch_row(case, torch_losses, torch_value),
        nll_on_log(case),
        textbook(case),
        article_loop(case),
        sklearn_log_loss(case),
        keras(case, from_logits=False),
        keras(case, from_logits=True),
        optax(case),
        tf_nn(case),
        perplexity(case, torch_losses, torch_value),
    ]


# -- the rows -----------------------------------------------------------------------------------


def _options(case: Case) -> str:
    out = ""
    if case.weight is not None:
        out += ", weight=weight"
    if case.indices and case.ignore_index != -100:
        out += f", ignore_index={case.ignore_index}"
    if case.smoothing:
        out += f", label_smoothing={case.smoothing:g}"
    return out


def torch_row(case: Case, losses: F64, value: float) -> Row:
    return Row(
        "torch",
        "PyTorch",
        f"torch.nn.functional.cross_entropy(input, target{_options(case)})",
        reads_input_as=LOGITS,
        value=value,
        per_sample=np.asarray(losses, dtype=np.float64),
        same="The request itself: torch reads 'input' as logits and takes "
        "logsumexp(input) - input[target], the negative log of the softmax",
    )


def _probability_domain(case: Case, id_: str, library: str, call: str) -> Row | None:
    bad = outside_unit_interval(case.x)
    if bad is None:
        return None
    return refused(
        id_,
        library,
        call,
        f"read as probabilities, 'input' must lie in [0, 1]; it holds {bad!r}, so it is logits "
        "and this reading has no meaning (the logarithm of a negative number is undefined)",
    )


_PROBABILITY_READING = (
    "it reads 'input' as probabilities and takes -log input[target], where torch reads logits "
    "and takes -log softmax(input)[target]"
)


def nll_on_log(case: Case) -> Row:
    opts = ""
    if case.weight is not None:
        opts += ", weight=weight"
    if case.indices and case.ignore_index != -100:
        opts += f", ignore_index={case.ignore_index}"
    call = f"torch.nn.functional.nll_loss(torch.log(input), target{opts})"
    if not case.indices:
        return refused(
            "torch_nll_on_log",
            "PyTorch",
            call,
            "nll_loss takes class indices only; these targets are class probabilities",
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log(case.x)
    w_y = case.kept.astype(np.float64)
    if case.weight is not None:
        w_y = np.where(case.kept, case.weight[case.safe], 0.0)
    with np.errstate(invalid="ignore"):
        per = np.where(case.kept, -w_y * logp[np.arange(case.y.size), case.safe], 0.0)
    row = Row(
        "torch_nll_on_log",
        "PyTorch",
        call,
        reads_input_as=PROBABILITIES,
        value=mean_of(per, w_y.sum()),
        per_sample=case.shaped(per),
        reading="the probability reading in torch's own words: " + _PROBABILITY_READING,
    )
    if case.smoothing:
        row.differences.append(
            "nll_loss has no label_smoothing, so it is computed without it; " + _PROBABILITY_READING
        )
    return row


def textbook(case: Case) -> Row:
    if case.indices:
        call = "-numpy.log(input[arange(N), target]).mean()"
    else:
        call = "-(target * numpy.log(input)).sum(axis=1).mean()"
    bad = _probability_domain(case, "textbook", "NumPy", call)
    if bad is not None:
        return bad
    with np.errstate(divide="ignore"):
        logp = np.log(case.x)
    if case.indices:
        per = np.where(case.kept, -logp[np.arange(case.y.size), case.safe], 0.0)
        count = float(case.kept.sum())
    else:
        per = -xlogy(case.t, case.x).sum(axis=1)
        count = float(per.size)
    row = Row(
        "textbook",
        "NumPy",
        call,
        reads_input_as=PROBABILITIES,
        value=mean_of(per, count),
        per_sample=case.shaped(per),
        reading="the textbook H = -Σ y log ŷ: " + _PROBABILITY_READING,
    )
    _left_out(row, case, "the textbook formula", smoothing=True, weight=True)
    if row.differences:
        row.differences.insert(0, _PROBABILITY_READING)
    return row


def article_loop(case: Case) -> Row:
    call = "cross_entropy_(input, target)  # the article's loop: h += log X[i][Y[i]] per class"
    if not case.indices:
        return refused(
            "article_loop",
            "NumPy",
            call,
            "the article's loop indexes X[i][Y[i]] and needs class indices, not probabilities",
        )
    if case.any_ignored:
        return refused(
            "article_loop",
            "NumPy",
            call,
            f"the article's loop has no ignore_index: X[i][{case.ignore_index}] is not a class",
        )
    bad = _probability_domain(case, "article_loop", "NumPy", call)
    if bad is not None:
        return bad
    with np.errstate(divide="ignore"):
        picked = np.log(case.x[np.arange(case.y.size), case.y])
    per = -case.classes * picked  # the inner loop adds the same log once per class
    return Row(
        "article_loop",
        "NumPy",
        call,
        reads_input_as=PROBABILITIES,
        value=mean_of(per, per.size),
        per_sample=case.shaped(per),
        reading=f"the article's loop runs over the {case.classes} classes but adds "
        "log p[target] each time, so it is C times the textbook value (the article rounds it "
        "to 4 places)",
    )


def sklearn_log_loss(case: Case) -> Row:
    x_name = "input" if case.x_name == "input" else f"{case.x_name}.reshape(-1, C)"
    t_name = "target" if case.t_name == "target" else f"{case.t_name}.reshape(-1)"
    keep = case.any_ignored
    xs, ts = (f"{x_name}[keep]", f"{t_name}[keep]") if keep else (x_name, t_name)
    weights = ""
    if case.weight is not None:
        weights = f", sample_weight=weight[{ts}]"
    call = f"sklearn.metrics.log_loss({ts}, {xs}{weights}, labels=range(C))"
    if keep:
        call = f"keep = {t_name} != {case.ignore_index}; " + call
    library = "scikit-learn"
    if not case.indices:
        return refused(
            "sklearn_log_loss",
            library,
            call,
            "log_loss takes class labels (y_true), not class probabilities: scikit-learn refuses "
            "a soft target",
        )
    bad = outside_unit_interval(case.x)
    if bad is not None:
        side = "greater than 1" if bad > 1 else "lower than 0"
        return refused(
            "sklearn_log_loss",
            library,
            call,
            f"scikit-learn refuses probabilities outside [0, 1]: 'y_prob contains values {side}' "
            f"({bad!r}); these look like logits",
        )
    if case.classes < 2:
        return refused(
            "sklearn_log_loss",
            library,
            call,
            "scikit-learn needs at least two labels; the input has one class",
        )
    kept = case.kept
    if not kept.any():
        return refused(
            "sklearn_log_loss",
            library,
            call,
            "no targets are left once those equal to ignore_index are dropped, and "
            "scikit-learn refuses an empty input",
        )
    sw = np.ones(int(kept.sum())) if case.weight is None else case.weight[case.y[kept]]
    if not np.any(sw != 0):
        return refused(
            "sklearn_log_loss",
            library,
            call,
            "scikit-learn refuses sample weights that are all zero",
        )
    p = np.clip(case.x[kept], SKLEARN_EPSILON, 1 - SKLEARN_EPSILON)
    onehot = np.arange(case.classes) == case.y[kept][:, None]
    loss = -xlogy(onehot.astype(np.float64), p).sum(axis=1)
    per = np.zeros(case.y.size)
    per[kept] = loss * sw
    row = Row(
        "sklearn_log_loss",
        library,
        call,
        reads_input_as=PROBABILITIES,
        value=float(np.float64((loss * sw).sum()) / np.float64(sw.sum())),
        per_sample=case.shaped(per),
        reading="scikit-learn reads 'input' as probabilities, clips them to [eps, 1 - eps] "
        "(eps = 2.2e-16) without renormalising, and takes -log p[target]; torch reads logits",
    )
    if case.smoothing:
        row.differences.append(
            "log_loss has no label smoothing, so it is computed without it; " + _PROBABILITY_READING
        )
    return row


def _keras_log_probs(case: Case, x: F64, from_logits: bool) -> F64:
    if from_logits:
        return log_softmax(x, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = x / x.sum(axis=-1, keepdims=True)
        logq: F64 = np.log(np.clip(q, KERAS_EPSILON, 1 - KERAS_EPSILON))
    return logq


def keras(case: Case, *, from_logits: bool) -> Row:
    """Sparse- or CategoricalCrossentropy with ``from_logits``, under sum_over_batch_size."""
    id_ = "keras_from_logits" if from_logits else "keras_from_probs"
    reads = LOGITS if from_logits else PROBABILITIES
    flag = f"from_logits={from_logits}"
    sparse = case.indices and not case.smoothing
    n = case.y.size if case.indices else case.t.shape[0]
    sw: F64 | None = None
    if case.indices and case.weight is not None:
        sw = case.weight[case.safe]
    differences: list[str] = []
    if sparse:
        ignore = case.any_ignored
        opts = flag + (f", ignore_class={case.ignore_index}" if ignore else "")
        weights = ", sample_weight=weight[target]" if case.weight is not None else ""
        call = (
            f"keras.losses.SparseCategoricalCrossentropy({opts})"
            f"({case.t_name}, {case.x_name}{weights})"
        )
        x = np.where(case.kept[:, None], case.x, 0.0)  # ignore_class zeroes ignored rows
        logq = _keras_log_probs(case, x, from_logits)
        with np.errstate(invalid="ignore"):
            per = np.where(case.kept, -logq[np.arange(n), case.safe], 0.0)
        if sw is not None:
            per = per * sw
        valid = float(case.kept.sum())
        if ignore:
            # apply_mask: each kept sample weighs total/valid (divide_no_nan), then / total.
            factor = n / valid if valid else 0.0
            value = float(np.float64((per * np.where(case.kept, factor, 0.0)).sum()) / n)
        else:
            value = mean_of(per, n)
    else:
        smoothing = f", label_smoothing={case.smoothing:g}" if case.smoothing else ""
        if case.indices:
            y_true = f"keras.ops.one_hot({case.t_name}, C)"
            onehot = (np.arange(case.classes) == case.safe[:, None]).astype(np.float64)
        else:
            y_true = case.t_name
            onehot = case.t
        y = onehot * (1.0 - case.smoothing) + case.smoothing / case.classes
        if case.indices and (case.weight is not None or case.any_ignored):
            kept = case.kept.astype(np.float64)
            sw = kept if case.weight is None else sw * kept  # type: ignore[operator]
            if case.any_ignored:
                differences.append(
                    "CategoricalCrossentropy, the Keras loss with label_smoothing, has no "
                    "ignore_class: the ignored targets get sample_weight 0 but still count in "
                    "the number of samples the mean divides by"
                )
        weights = ""
        if case.indices and case.weight is not None:
            weights = ", sample_weight=weight[target]" + (" * keep" if case.any_ignored else "")
        elif case.any_ignored:
            weights = ", sample_weight=keep"
        call = (
            f"keras.losses.CategoricalCrossentropy({flag}{smoothing})"
            f"({y_true}, {case.x_name}{weights})"
        )
        if case.any_ignored:
            call = f"keep = target != {case.ignore_index}; " + call
        logq = _keras_log_probs(case, case.x, from_logits)
        per = -(y * logq).sum(axis=-1)
        if sw is not None:
            per = per * sw
        value = mean_of(per, n)
    row = Row(
        id_,
        "Keras 3",
        call,
        reads_input_as=reads,
        value=value,
        per_sample=case.shaped(per),
        differences=differences,
    )
    if from_logits:
        row.same = (
            "Same convention as torch: Keras applies log_softmax to the logits and takes the "
            "negative log-likelihood of the target"
        )
    else:
        row.reading = (
            "Keras reads 'input' as probabilities: it renormalises each row to sum to 1, clips "
            "to [1e-7, 1 - 1e-7] and takes -log p[target]; torch reads logits"
        )
    if case.weight is not None:
        if case.indices:
            row.differences.append(
                "weight becomes sample_weight = weight[target], and Keras's default "
                "sum_over_batch_size divides the weighted sum by the number of samples, not by "
                "the sum of the weights as torch does"
            )
        else:
            row.differences.append(
                "Keras has no per-class weight for probability targets (sample_weight weighs "
                "whole samples), so it is computed without weight"
            )
    if case.indices and not case.kept.any() and sparse:
        row.differences.append(
            "every target is ignored: Keras divides by no valid sample without a NaN and "
            "answers 0, where torch's mean is 0/0"
        )
    if row.differences and not from_logits:
        row.differences.insert(0, row.reading)
    return row


def _masked_call(case: Case, call: str) -> str:
    return f"keep = target != {case.ignore_index}; " + call if case.any_ignored else call


def optax(case: Case) -> Row:
    xs, ts = case.x_name, case.t_name
    if case.any_ignored:
        xs, ts = f"{xs}[keep]", f"{ts}[keep]"
    logp = log_softmax(case.x, axis=-1)
    if case.indices and not case.smoothing:
        call = f"optax.softmax_cross_entropy_with_integer_labels({xs}, {ts}).mean()"
        lse = case.x.max(axis=-1) + np.log(
            np.exp(case.x - case.x.max(axis=-1, keepdims=True)).sum(axis=-1)
        )
        per = lse - case.x[np.arange(case.y.size), case.safe]
    else:
        labels = f"jax.nn.one_hot({ts}, C)" if case.indices else ts
        if case.smoothing:
            labels = f"optax.smooth_labels({labels}, {case.smoothing:g})"
        call = f"optax.softmax_cross_entropy({xs}, {labels}).mean()"
        onehot = (
            (np.arange(case.classes) == case.safe[:, None]).astype(np.float64)
            if case.indices
            else case.t
        )
        q = (1 - case.smoothing) * onehot + case.smoothing / case.classes
        per = -(q * logp).sum(axis=-1)
    per = np.where(case.kept, per, 0.0)
    row = Row(
        "optax",
        "optax",
        _masked_call(case, call),
        reads_input_as=LOGITS,
        value=mean_of(per, float(case.kept.sum())),
        per_sample=case.shaped(per),
        same="Same convention as torch: optax takes logsumexp(logits) - logits[label], the "
        "mean of the per-example losses",
    )
    _ignored_by_hand(row, case, "optax")
    _left_out(row, case, "optax", weight=True)
    return row


def tf_nn(case: Case) -> Row:
    xs, ts = case.x_name, case.t_name
    if case.any_ignored:
        xs, ts = f"tf.boolean_mask({xs}, keep)", f"tf.boolean_mask({ts}, keep)"
    fn = "softmax_cross_entropy_with_logits"
    fn = "sparse_" + fn if case.indices else fn
    call = f"tf.reduce_mean(tf.nn.{fn}(labels={ts}, logits={xs}))"
    logp = log_softmax(case.x, axis=-1)
    if case.indices:
        per = np.where(case.kept, -logp[np.arange(case.y.size), case.safe], 0.0)
    else:
        per = -(case.t * logp).sum(axis=-1)
    row = Row(
        "tf_nn",
        "TensorFlow",
        _masked_call(case, call),
        reads_input_as=LOGITS,
        value=mean_of(per, float(case.kept.sum())),
        per_sample=case.shaped(per),
        same="Same convention as torch: tf.nn applies log_softmax to the logits and takes "
        "-sum(labels * log_softmax)",
    )
    _ignored_by_hand(row, case, "tf.nn")
    _left_out(row, case, "tf.nn", weight=True, smoothing=True)
    return row


def perplexity(case: Case, losses: F64, value: float) -> Row:
    with np.errstate(over="ignore"):
        per = np.exp(np.asarray(losses, dtype=np.float64))
        exp_value = float(np.exp(np.float64(value)))
    return Row(
        "perplexity",
        "PyTorch",
        f"torch.exp(torch.nn.functional.cross_entropy(input, target{_options(case)}))",
        reads_input_as=LOGITS,
        value=exp_value,
        per_sample=per,
        reading="not another convention but another scale: exp of torch's mean, the number of "
        "equally likely classes that would be as uncertain",
    )


def _left_out(
    row: Row, case: Case, who: str, *, weight: bool = False, smoothing: bool = False
) -> None:
    if weight and case.weight is not None:
        row.differences.append(f"{who} has no class weight, so it is computed without weight")
    if smoothing and case.smoothing:
        row.differences.append(
            f"{who} has no label smoothing, so it is computed without label_smoothing"
        )


def _ignored_by_hand(row: Row, case: Case, who: str) -> None:
    if case.any_ignored:
        row.same = (
            f"{who} has no ignore_index, so the call drops the ignored targets by hand "
            "(keep); then it is torch's convention"
        )
