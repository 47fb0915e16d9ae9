"""binary_cross_entropy and binary_cross_entropy_with_logits as each library reads them.

Rows, in this order: ``torch``, ``textbook``, ``sklearn_log_loss``, ``keras_from_probs``,
``keras_from_logits``, ``optax``, ``tf_nn``. Every element is one sample (Keras gets the tensors
as (M, 1), since its BinaryCrossentropy averages over the last axis first). The same numbers
are read as probabilities by the first four after torch and as logits by the last three,
whichever of the two losses was asked for: the rows show what each reading gives.

- textbook: -mean(t log x + (1 - t) log(1 - x)), no clamp, 0·log 0 = 0.
- scikit-learn ``log_loss(..., labels=[0, 1])``: refuses probabilities outside [0, 1] and
  targets other than 0 and 1; clips to [eps, 1 - eps]; the mean is weighted by sample_weight.
- Keras 3 ``BinaryCrossentropy``: from probabilities it clips to [1e-7, 1 - 1e-7] (torch's
  -100 clamp of the log never binds after that); from logits it is torch's stable form.
- optax ``sigmoid_binary_cross_entropy``: -t log σ(x) - (1 - t) log σ(-x).
- ``tf.nn.sigmoid_cross_entropy_with_logits``: max(x, 0) - x·z + log(1 + e^-|x|), and
  ``weighted_cross_entropy_with_logits`` with pos_weight q:
  (1 - z)·x + (1 + (q - 1)·z)·(log(1 + e^-|x|) + max(-x, 0)).
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
    softplus,
    xlogy,
)
from service.conventions.records import Family, Request


@dataclass
class Case:
    x: F64
    t: F64
    weight: F64 | None
    """Broadcast to the input's shape."""
    pos_weight: F64 | None
    torch_reads: str
    request: Request

    @property
    def n(self) -> int:
        return int(self.x.size)


def case_of(request: Request) -> Case:
    prep, name = request.prep, request.name
    x = np.asarray(prep.arrays["input"], dtype=np.float64)
    t = np.asarray(prep.arrays["target"], dtype=np.float64)
    w = prep.arrays.get("weight")
    pw = prep.arrays.get("pos_weight")
    return Case(
        x=x,
        t=t,
        weight=None if w is None else np.broadcast_to(np.asarray(w, np.float64), x.shape),
        pos_weight=None if pw is None else np.broadcast_to(np.asarray(pw, np.float64), x.shape),
        torch_reads=LOGITS if name.endswith("_with_logits") else PROBABILITIES,
        request=request,
    )


FAMILY: Family[Case] = Family(
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    case=case_of,
    shared=(shared.sum_instead_of_mean, shared.mean_over_batch_not_elements),
)

_SAME = "Nothing to change: this is torch's convention."


def _reading_fix(reads: str) -> Any:
    """The fix of a row that reads the input as ``reads``: read it as torch does."""

    def fix(case: Case) -> str:
        if case.torch_reads == reads:
            return _SAME
        if reads == PROBABILITIES:
            return (
                "Apply the sigmoid to the logits first (torch's binary_cross_entropy_with_logits "
                "reads logits), or call it with from_logits=True where the library has it."
            )
        return (
            "Pass the probabilities as they are (from_logits=False): torch's "
            "binary_cross_entropy reads probabilities, not logits."
        )

    return fix


def _reading_clause(reads: str, torch_reads: str) -> str:
    if reads == torch_reads:
        return ""
    if reads == PROBABILITIES:
        return (
            "it reads 'input' as probabilities, while torch's binary_cross_entropy_with_logits "
            "reads logits and applies the sigmoid itself"
        )
    return (
        "it reads 'input' as logits and applies the sigmoid, while torch's "
        "binary_cross_entropy reads probabilities: on probabilities this squeezes every "
        "prediction into [0.5, 0.73]"
    )


@FAMILY.convention(
    "torch",
    "PyTorch",
    "torch.nn.functional.binary_cross_entropy(input, target)",
    reads=PROBABILITIES,
    fix=_SAME,
)
def torch_row(case: Case, row: Row) -> None:
    opts = ", weight=weight" if case.weight is not None else ""
    if case.pos_weight is not None:
        opts += ", pos_weight=pos_weight"
    clamp = " (each log clamped at -100)" if case.torch_reads == PROBABILITIES else ""
    row.call = f"torch.nn.functional.{case.request.name}(input, target{opts})"
    row.reads_input_as = case.torch_reads
    row.fill(case.request.torch_value, case.request.losses)
    row.same = f"The request itself: torch reads 'input' as {case.torch_reads}{clamp}"


def _weights_left_out(row: Row, case: Case, who: str) -> None:
    if case.weight is not None:
        row.differences.append(f"{who} has no element weight, so it is computed without weight")
    if case.pos_weight is not None:
        row.differences.append(f"{who} has no pos_weight, so it is computed without pos_weight")


def _finish(row: Row, case: Case) -> None:
    clause = _reading_clause(row.reads_input_as, case.torch_reads)
    if clause:
        row.differences.insert(0, clause)


_NOT_PROBABILITIES = (
    "read as probabilities, 'input' must lie in [0, 1]; it holds {bad!r}, so it is logits "
    "and the logarithm of a negative number is undefined"
)


@FAMILY.convention(
    "textbook",
    "NumPy",
    "-(target * numpy.log(input) + (1 - target) * numpy.log(1 - input)).mean()",
    reads=PROBABILITIES,
    fix=_reading_fix(PROBABILITIES),
)
def textbook(case: Case, row: Row) -> None:
    bad = outside_unit_interval(case.x)
    if bad is not None:
        row.refuse(_NOT_PROBABILITIES.format(bad=bad))
        return
    per = -(xlogy(case.t, case.x) + xlogy(1 - case.t, 1 - case.x))
    row.fill(mean_of(per, case.n), per)
    row.reading = (
        "the textbook formula without torch's clamp: where the input is 0 or 1 against "
        "the target the loss is infinite, where torch clamps each log at -100"
    )
    row.same = (
        "Same numbers as torch: the textbook formula, and torch's clamp of each log at -100 "
        "does not bind here"
    )
    if case.torch_reads == PROBABILITIES and np.isinf(row.value):
        row.differences.append(row.reading)
    _weights_left_out(row, case, "the textbook formula")
    _finish(row, case)


@FAMILY.convention(
    "sklearn_log_loss",
    "scikit-learn",
    "sklearn.metrics.log_loss(target.reshape(-1), input.reshape(-1), labels=[0, 1])",
    reads=PROBABILITIES,
    fix=_reading_fix(PROBABILITIES),
)
def sklearn_log_loss(case: Case, row: Row) -> None:
    weights = ", sample_weight=broadcast_to(weight, input.shape).reshape(-1)"
    row.call = (
        "sklearn.metrics.log_loss(target.reshape(-1), input.reshape(-1)"
        f"{weights if case.weight is not None else ''}, labels=[0, 1])"
    )
    bad = outside_unit_interval(case.x)
    if bad is not None:
        side = "greater than 1" if bad > 1 else "lower than 0"
        row.refuse(
            f"scikit-learn refuses probabilities outside [0, 1]: 'y_prob contains values {side}' "
            f"({bad!r}); these look like logits"
        )
        return
    soft = case.t[(case.t != 0) & (case.t != 1)]
    if soft.size:
        row.refuse(
            f"scikit-learn takes hard labels: the target holds {float(soft.flat[0])!r}, not one "
            "of the labels [0, 1]"
        )
        return
    if not case.n:
        row.refuse("scikit-learn refuses an empty input")
        return
    x, t = case.x.reshape(-1), case.t.reshape(-1)
    sw = np.ones(case.n) if case.weight is None else case.weight.reshape(-1)
    if not np.any(sw != 0):
        row.refuse("scikit-learn refuses sample weights that are all zero")
        return
    p1 = np.clip(x, SKLEARN_EPSILON, 1 - SKLEARN_EPSILON)
    p0 = np.clip(1 - x, SKLEARN_EPSILON, 1 - SKLEARN_EPSILON)
    loss = -(xlogy(t, p1) + xlogy(1 - t, p0))
    row.fill(
        float(np.float64((loss * sw).sum()) / np.float64(sw.sum())),
        (loss * sw).reshape(case.x.shape),
    )
    row.reading = (
        "scikit-learn clips the probabilities to [eps, 1 - eps] (eps = 2.2e-16), where "
        "torch clamps each log at -100"
    )
    row.same = (
        "Same convention as torch here: scikit-learn's clip to [eps, 1 - eps] and torch's "
        "clamp at -100 do not bind"
    )
    if case.weight is not None:
        row.differences.append(
            "weight becomes sample_weight, and scikit-learn's mean divides by the sum of the "
            "weights where torch's divides by the number of elements"
        )
    if case.pos_weight is not None:
        row.differences.append("scikit-learn has no pos_weight, so it is computed without it")
    _finish(row, case)


@FAMILY.convention(
    "keras_from_probs",
    "Keras 3",
    "keras.losses.BinaryCrossentropy(from_logits=False)(target.reshape(-1, 1), "
    "input.reshape(-1, 1))",
    reads=PROBABILITIES,
    fix=_reading_fix(PROBABILITIES),
)
def keras_from_probs(case: Case, row: Row) -> None:
    keras(case, row, from_logits=False)


@FAMILY.convention(
    "keras_from_logits",
    "Keras 3",
    "keras.losses.BinaryCrossentropy(from_logits=True)(target.reshape(-1, 1), "
    "input.reshape(-1, 1))",
    reads=LOGITS,
    fix=_reading_fix(LOGITS),
)
def keras_from_logits(case: Case, row: Row) -> None:
    keras(case, row, from_logits=True)


def keras(case: Case, row: Row, *, from_logits: bool) -> None:
    weights = (
        ", sample_weight=broadcast_to(weight, input.shape).reshape(-1)"
        if case.weight is not None
        else ""
    )
    row.call = (
        f"keras.losses.BinaryCrossentropy(from_logits={from_logits})"
        f"(target.reshape(-1, 1), input.reshape(-1, 1){weights})"
    )
    x, t = case.x, case.t
    if from_logits:
        per = (1 - t) * x + softplus(-x)  # torch's binary_cross_entropy_with_logits
    else:
        c = np.clip(x, KERAS_EPSILON, 1 - KERAS_EPSILON)
        per = -(t * np.log(c) + (1 - t) * np.log1p(-c))
    if case.weight is not None:
        per = per * case.weight
    row.fill(mean_of(per, case.n), per)
    row.reading = (
        "Keras clips the probabilities to [1e-7, 1 - 1e-7], so no loss exceeds "
        "-log(1e-7) = 16.12, where torch clamps each log at -100"
        if not from_logits
        else "Keras applies the sigmoid to the logits in torch's stable form"
    )
    row.same = (
        "Same convention as torch: weight becomes sample_weight and the mean divides by "
        "the number of elements in both"
        if case.weight is not None
        else "Same convention as torch"
    )
    if case.pos_weight is not None:
        row.differences.append("Keras has no pos_weight, so it is computed without it")
    _finish(row, case)


@FAMILY.convention(
    "optax",
    "optax",
    "optax.sigmoid_binary_cross_entropy(input, target).mean()",
    reads=LOGITS,
    fix=_reading_fix(LOGITS),
)
def optax(case: Case, row: Row) -> None:
    x, t = case.x, case.t
    per = t * softplus(-x) + (1 - t) * softplus(x)  # -t log σ(x) - (1 - t) log σ(-x)
    row.fill(mean_of(per, case.n), per)
    row.same = "Same convention as torch: optax takes -t log σ(x) - (1 - t) log σ(-x) of the logits"
    row.reading = "optax reads logits"
    _weights_left_out(row, case, "optax")
    _finish(row, case)


@FAMILY.convention(
    "tf_nn",
    "TensorFlow",
    "tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=input))",
    reads=LOGITS,
    fix=_reading_fix(LOGITS),
)
def tf_nn(case: Case, row: Row) -> None:
    x, t = case.x, case.t
    if case.pos_weight is not None:
        q = case.pos_weight
        per = (1 - t) * x + (1 + (q - 1) * t) * (np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0))
        row.call = (
            "tf.reduce_mean(tf.nn.weighted_cross_entropy_with_logits(labels=target, "
            "logits=input, pos_weight=pos_weight))"
        )
    else:
        per = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    row.fill(mean_of(per, case.n), per)
    row.same = "Same convention as torch: tf.nn documents max(x, 0) - x·z + log(1 + e^-|x|)" + (
        ", and pos_weight maps to weighted_cross_entropy_with_logits"
        if case.pos_weight is not None
        else ""
    )
    row.reading = "tf.nn reads logits"
    if case.weight is not None:
        row.differences.append("tf.nn has no element weight, so it is computed without weight")
    _finish(row, case)
