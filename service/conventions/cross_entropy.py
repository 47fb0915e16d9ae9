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
from typing import Any

import numpy as np

from service.conventions import shared
from service.conventions.base import (
    F64,
    KERAS_EPSILON,
    LOGITS,
    PROBABILITIES,
    SKLEARN_EPSILON,
    Row,
    mean_of,
    outside_unit_interval,
    xlogy,
)
from service.conventions.records import Family, Request
from service.losses.base import I64
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
    request: Request

    @property
    def classes(self) -> int:
        return int(self.x.shape[1])

    @property
    def any_ignored(self) -> bool:
        return bool(self.indices and not self.kept.all())

    def shaped(self, per: F64) -> F64:
        return per.reshape(self.batch)


def case_of(request: Request) -> Case:
    params: CrossEntropyParams = request.params  # type: ignore[assignment]
    prep = request.prep
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
        request=request,
    )


#: Where the losses' shared mistakes apply to cross_entropy: its mean, per element of a
#: K-dimensional batch, divided by the sum of the targets' weights.
FAMILY: Family[Case] = Family(
    "cross_entropy",
    case=case_of,
    shared=(
        shared.sum_instead_of_mean,
        shared.mean_over_batch_not_elements,
        shared.weights_not_in_denominator,
    ),
)

_SAME = "Nothing to change: this is torch's convention."


def _options(case: Case) -> str:
    out = ""
    if case.weight is not None:
        out += ", weight=weight"
    if case.indices and case.ignore_index != -100:
        out += f", ignore_index={case.ignore_index}"
    if case.smoothing:
        out += f", label_smoothing={case.smoothing:g}"
    return out


@FAMILY.convention(
    "torch",
    "PyTorch",
    "torch.nn.functional.cross_entropy(input, target)",
    reads=LOGITS,
    fix=_SAME,
)
def torch_row(case: Case, row: Row) -> None:
    row.call = f"torch.nn.functional.cross_entropy(input, target{_options(case)})"
    row.fill(case.request.torch_value, case.request.losses)
    row.same = (
        "The request itself: torch reads 'input' as logits and takes "
        "logsumexp(input) - input[target], the negative log of the softmax"
    )


def _probability_domain(case: Case, row: Row) -> bool:
    """Refuse ``row`` when the input cannot be probabilities; True when it was refused."""
    bad = outside_unit_interval(case.x)
    if bad is None:
        return False
    row.refuse(
        f"read as probabilities, 'input' must lie in [0, 1]; it holds {bad!r}, so it is logits "
        "and this reading has no meaning (the logarithm of a negative number is undefined)"
    )
    return True


_PROBABILITY_READING = (
    "it reads 'input' as probabilities and takes -log input[target], where torch reads logits "
    "and takes -log softmax(input)[target]"
)


@FAMILY.convention(
    "torch_nll_on_log",
    "PyTorch",
    "torch.nn.functional.nll_loss(torch.log(input), target)",
    reads=PROBABILITIES,
    fix="Pass log_softmax(input) to nll_loss, not log(input) (or the logits to cross_entropy): "
    "torch's cross_entropy reads 'input' as logits.",
)
def nll_on_log(case: Case, row: Row) -> None:
    opts = ""
    if case.weight is not None:
        opts += ", weight=weight"
    if case.indices and case.ignore_index != -100:
        opts += f", ignore_index={case.ignore_index}"
    row.call = f"torch.nn.functional.nll_loss(torch.log(input), target{opts})"
    if not case.indices:
        row.refuse("nll_loss takes class indices only; these targets are class probabilities")
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log(case.x)
    w_y = case.kept.astype(np.float64)
    if case.weight is not None:
        w_y = np.where(case.kept, case.weight[case.safe], 0.0)
    with np.errstate(invalid="ignore"):
        per = np.where(case.kept, -w_y * logp[np.arange(case.y.size), case.safe], 0.0)
    row.fill(mean_of(per, w_y.sum()), case.shaped(per))
    row.reading = "the probability reading in torch's own words: " + _PROBABILITY_READING
    if case.smoothing:
        row.differences.append(
            "nll_loss has no label_smoothing, so it is computed without it; " + _PROBABILITY_READING
        )


_SOFTMAX_FIRST = (
    "Apply softmax to the logits before taking -log p[target]: torch's cross_entropy is the "
    "textbook formula on softmax(input)."
)


@FAMILY.convention(
    "textbook",
    "NumPy",
    "-numpy.log(input[arange(N), target]).mean()",
    reads=PROBABILITIES,
    fix=_SOFTMAX_FIRST,
)
def textbook(case: Case, row: Row) -> None:
    if not case.indices:
        row.call = "-(target * numpy.log(input)).sum(axis=1).mean()"
    if _probability_domain(case, row):
        return
    with np.errstate(divide="ignore"):
        logp = np.log(case.x)
    if case.indices:
        per = np.where(case.kept, -logp[np.arange(case.y.size), case.safe], 0.0)
        count = float(case.kept.sum())
    else:
        per = -xlogy(case.t, case.x).sum(axis=1)
        count = float(per.size)
    row.fill(mean_of(per, count), case.shaped(per))
    row.reading = "the textbook H = -Σ y log ŷ: " + _PROBABILITY_READING
    _left_out(row, case, "the textbook formula", smoothing=True, weight=True)
    if row.differences:
        row.differences.insert(0, _PROBABILITY_READING)


@FAMILY.convention(
    "article_loop",
    "NumPy",
    "cross_entropy_(input, target)  # the article's loop: h += log X[i][Y[i]] per class",
    reads=PROBABILITIES,
    fix="Add log p[target] once per sample, not once per class, and take p = softmax(input): "
    "torch's cross_entropy reads 'input' as logits.",
)
def article_loop(case: Case, row: Row) -> None:
    if not case.indices:
        row.refuse(
            "the article's loop indexes X[i][Y[i]] and needs class indices, not probabilities"
        )
        return
    if case.any_ignored:
        row.refuse(
            f"the article's loop has no ignore_index: X[i][{case.ignore_index}] is not a class"
        )
        return
    if _probability_domain(case, row):
        return
    with np.errstate(divide="ignore"):
        picked = np.log(case.x[np.arange(case.y.size), case.y])
    per = -case.classes * picked  # the inner loop adds the same log once per class
    row.fill(mean_of(per, per.size), case.shaped(per))
    row.reading = (
        f"the article's loop runs over the {case.classes} classes but adds "
        "log p[target] each time, so it is C times the textbook value (the article rounds it "
        "to 4 places)"
    )


@FAMILY.convention(
    "sklearn_log_loss",
    "scikit-learn",
    "sklearn.metrics.log_loss(target, input, labels=range(C))",
    reads=PROBABILITIES,
    fix="Pass scipy.special.softmax(input, axis=1) as the predictions: log_loss reads "
    "probabilities, torch's cross_entropy logits.",
)
def sklearn_log_loss(case: Case, row: Row) -> None:
    x_name = "input" if case.x_name == "input" else f"{case.x_name}.reshape(-1, C)"
    t_name = "target" if case.t_name == "target" else f"{case.t_name}.reshape(-1)"
    keep = case.any_ignored
    xs, ts = (f"{x_name}[keep]", f"{t_name}[keep]") if keep else (x_name, t_name)
    weights = ""
    if case.weight is not None:
        weights = f", sample_weight=weight[{ts}]"
    row.call = f"sklearn.metrics.log_loss({ts}, {xs}{weights}, labels=range(C))"
    if keep:
        row.call = f"keep = {t_name} != {case.ignore_index}; " + row.call
    if not case.indices:
        row.refuse(
            "log_loss takes class labels (y_true), not class probabilities: scikit-learn refuses "
            "a soft target"
        )
        return
    bad = outside_unit_interval(case.x)
    if bad is not None:
        side = "greater than 1" if bad > 1 else "lower than 0"
        row.refuse(
            f"scikit-learn refuses probabilities outside [0, 1]: 'y_prob contains values {side}' "
            f"({bad!r}); these look like logits"
        )
        return
    if case.classes < 2:
        row.refuse("scikit-learn needs at least two labels; the input has one class")
        return
    kept = case.kept
    if not kept.any():
        row.refuse(
            "no targets are left once those equal to ignore_index are dropped, and "
            "scikit-learn refuses an empty input"
        )
        return
    sw = np.ones(int(kept.sum())) if case.weight is None else case.weight[case.y[kept]]
    if not np.any(sw != 0):
        row.refuse("scikit-learn refuses sample weights that are all zero")
        return
    p = np.clip(case.x[kept], SKLEARN_EPSILON, 1 - SKLEARN_EPSILON)
    onehot = np.arange(case.classes) == case.y[kept][:, None]
    loss = -xlogy(onehot.astype(np.float64), p).sum(axis=1)
    per = np.zeros(case.y.size)
    per[kept] = loss * sw
    row.fill(float(np.float64((loss * sw).sum()) / np.float64(sw.sum())), case.shaped(per))
    row.reading = (
        "scikit-learn reads 'input' as probabilities, clips them to [eps, 1 - eps] "
        "(eps = 2.2e-16) without renormalising, and takes -log p[target]; torch reads logits"
    )
    if case.smoothing:
        row.differences.append(
            "log_loss has no label smoothing, so it is computed without it; " + _PROBABILITY_READING
        )


def _keras_log_probs(case: Case, x: F64, from_logits: bool) -> F64:
    if from_logits:
        return log_softmax(x, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = x / x.sum(axis=-1, keepdims=True)
        logq: F64 = np.log(np.clip(q, KERAS_EPSILON, 1 - KERAS_EPSILON))
    return logq


def _keras_weights_fix(case: Case) -> str:
    if case.weight is not None and case.indices:
        return (
            "Divide Keras's weighted sum by the sum of weight[target] rather than by the number "
            "of samples (reduction='sum', then divide), as torch's weighted mean does."
        )
    return _SAME


@FAMILY.convention(
    "keras_from_probs",
    "Keras 3",
    "keras.losses.SparseCategoricalCrossentropy(from_logits=False)(target, input)",
    reads=PROBABILITIES,
    fix="Pass from_logits=True with the logits: from_logits=False reads probabilities, torch "
    "reads logits.",
)
def keras_from_probs(case: Case, row: Row) -> None:
    keras(case, row, from_logits=False)


@FAMILY.convention(
    "keras_from_logits",
    "Keras 3",
    "keras.losses.SparseCategoricalCrossentropy(from_logits=True)(target, input)",
    reads=LOGITS,
    fix=_keras_weights_fix,
)
def keras_from_logits(case: Case, row: Row) -> None:
    keras(case, row, from_logits=True)


def keras(case: Case, row: Row, *, from_logits: bool) -> None:
    """Sparse- or CategoricalCrossentropy with ``from_logits``, under sum_over_batch_size."""
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
    row.call = call
    row.fill(value, case.shaped(per))
    row.differences.extend(differences)
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


def _masked_call(case: Case, call: str) -> str:
    return f"keep = target != {case.ignore_index}; " + call if case.any_ignored else call


def _no_weight_fix(who: str) -> Any:
    def fix(case: Case) -> str:
        if case.weight is not None:
            return (
                f"{who} has no class weight: weigh each loss by weight[target] and divide by "
                "their sum, as torch does."
            )
        return _SAME

    return fix


@FAMILY.convention(
    "optax",
    "optax",
    "optax.softmax_cross_entropy_with_integer_labels(input, target).mean()",
    reads=LOGITS,
    fix=_no_weight_fix("optax"),
)
def optax(case: Case, row: Row) -> None:
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
    row.call = _masked_call(case, call)
    row.fill(mean_of(per, float(case.kept.sum())), case.shaped(per))
    row.same = (
        "Same convention as torch: optax takes logsumexp(logits) - logits[label], the "
        "mean of the per-example losses"
    )
    _ignored_by_hand(row, case, "optax")
    _left_out(row, case, "optax", weight=True)


@FAMILY.convention(
    "tf_nn",
    "TensorFlow",
    "tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=input))",
    reads=LOGITS,
    fix=_no_weight_fix("tf.nn"),
)
def tf_nn(case: Case, row: Row) -> None:
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
    row.call = _masked_call(case, call)
    row.fill(mean_of(per, float(case.kept.sum())), case.shaped(per))
    row.same = (
        "Same convention as torch: tf.nn applies log_softmax to the logits and takes "
        "-sum(labels * log_softmax)"
    )
    _ignored_by_hand(row, case, "tf.nn")
    _left_out(row, case, "tf.nn", weight=True, smoothing=True)


@FAMILY.convention(
    "perplexity",
    "PyTorch",
    "torch.exp(torch.nn.functional.cross_entropy(input, target))",
    reads=LOGITS,
    fix="Take the logarithm: torch's cross_entropy is log(perplexity).",
)
def perplexity(case: Case, row: Row) -> None:
    row.call = f"torch.exp(torch.nn.functional.cross_entropy(input, target{_options(case)}))"
    with np.errstate(over="ignore"):
        per = np.exp(case.request.losses)
        exp_value = float(np.exp(np.float64(case.request.torch_value)))
    row.fill(exp_value, per)
    row.reading = (
        "not another convention but another scale: exp of torch's mean, the number of "
        "equally likely classes that would be as uncertain"
    )


def _sequence(case: Case) -> bool:
    """A sequence request: input (B, V, T), a language model's logits as torch takes them
    (``logits.transpose(1, 2)``), with class indices (B, T)."""
    return case.indices and len(case.batch) == 2


def _shifted(case: Case, by: int) -> tuple[F64, I64, np.ndarray]:
    """Each position's logits (B·T, V), the label ``by`` positions later (``ignore_index``
    past the end, as transformers pads), and which positions are kept."""
    b, t = case.batch
    labels = case.y.reshape(b, t)
    shifted = np.full((b, t), case.ignore_index, dtype=np.int64)
    if by < t:
        shifted[:, : t - by] = labels[:, by:]
    flat = shifted.reshape(-1)
    kept = flat != case.ignore_index
    return case.x, np.where(kept, flat, 0), kept


def _causal_lm(case: Case, by: int) -> tuple[float, F64]:
    x, labels, kept = _shifted(case, by)
    lse = x.max(axis=-1) + np.log(np.exp(x - x.max(axis=-1, keepdims=True)).sum(axis=-1))
    per = np.where(kept, lse - x[np.arange(labels.size), labels], 0.0)
    return mean_of(per, float(kept.sum())), case.shaped(per)


@FAMILY.convention(
    "hf_causal_lm",
    "transformers",
    "transformers.loss.loss_utils.ForCausalLMLoss(input.transpose(1, 2), target, vocab_size=V)",
    reads=LOGITS,
    fix="Shift the labels as transformers does to compare: torch's cross_entropy scores "
    "position t against target[:, t]; ForCausalLMLoss against target[:, t + 1] "
    "(cross_entropy(input[:, :, :-1], target[:, 1:]) gives its number).",
    applies=_sequence,
)
def hf_causal_lm(case: Case, row: Row) -> None:
    opts = "" if case.ignore_index == -100 else f", ignore_index={case.ignore_index}"
    row.call = (
        "transformers.loss.loss_utils.ForCausalLMLoss(input.transpose(1, 2), target, "
        f"vocab_size={case.classes}{opts})"
    )
    row.fill(*_causal_lm(case, 1))
    row.reading = (
        "transformers' causal language model loss shifts the labels: the logits at position t "
        "are scored against label t + 1 (the last position against nothing), with ignore_index "
        "-100, and the mean is over the tokens kept"
    )
    _left_out(row, case, "ForCausalLMLoss", weight=True, smoothing=True)
    if row.differences:
        row.differences.insert(0, row.reading)


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


# -- mistakes ------------------------------------------------------------------------------------


@FAMILY.mistake(
    "probabilities_as_logits",
    explanation="Softmax applied twice gives this: probabilities (softmax of the logits) "
    "passed to cross_entropy, which applies softmax again, as the loss of softmax(input).",
    fix="Pass the logits themselves (the model's raw outputs, before any softmax): "
    "cross_entropy applies log_softmax itself.",
)
def probabilities_as_logits(case: Case) -> float | None:
    x = case.request.params.input  # type: ignore[attr-defined]
    axis = class_axis(x)
    return case.request.value_with(input=np.exp(log_softmax(x.astype(np.float64), axis=axis)))


def _raw_scores(case: Case) -> bool:
    return (
        case.indices
        and case.classes >= 2
        and bool(case.kept.any())
        and outside_unit_interval(case.x) is not None
    )


@FAMILY.mistake(
    "logits_as_probabilities",
    explanation="The textbook formula -log p[target] on the raw scores, clipped to [eps, 1 - eps] "
    "as scikit-learn clips probabilities (eps = 2.2e-16), gives this: logits read as "
    "probabilities.",
    fix="Apply softmax to the scores first (torch's cross_entropy is the textbook formula on "
    "softmax(input)), or give torch the scores as logits.",
    applies=_raw_scores,
)
def logits_as_probabilities(case: Case) -> float:
    kept = case.kept
    p = np.clip(case.x[kept, case.y[kept]], SKLEARN_EPSILON, 1 - SKLEARN_EPSILON)
    sw = np.ones(p.size) if case.weight is None else case.weight[case.y[kept]]
    return float(np.float64((-np.log(p) * sw).sum()) / np.float64(sw.sum()))


def _double_shift(case: Case) -> bool:
    return _sequence(case) and case.batch[1] >= 3 and bool(_shifted(case, 2)[2].any())


@FAMILY.mistake(
    "causal_lm_double_shift",
    explanation="Labels shifted twice give this: shifted by hand and again by the library "
    "(transformers' ForCausalLMLoss shifts them itself), so position t is scored against "
    "label t + 2.",
    fix="Pass the labels unshifted (labels = input_ids) to a loss that shifts them, or shift "
    "them once yourself for torch's cross_entropy.",
    applies=_double_shift,
)
def causal_lm_double_shift(case: Case) -> float:
    return _causal_lm(case, 2)[0]
