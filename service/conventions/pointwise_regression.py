"""mse_loss, l1_loss, huber_loss and smooth_l1_loss as each library reads the same numbers.

With d = input - target (broadcast as torch broadcasts them):

- scikit-learn ``mean_squared_error`` / ``mean_absolute_error`` / ``root_mean_squared_error``
  (y_true, y_pred): 1-d or 2-d only, a 1-d array read as one output (so (N, 1) and (N,) line
  up), the same number of outputs in both; the error averaged over samples per output
  (weighted by ``sample_weight``), then over outputs (``uniform_average``): RMSE is the mean of
  the outputs' roots, not the root of the mean.
- Keras 3 ``MeanSquaredError`` / ``MeanAbsoluteError`` / ``Huber`` (y_true, y_pred): ranks that
  differ by one with a trailing 1 are lined up (``squeeze_or_expand_to_same_rank``), the loss is
  averaged over the last axis, then over the rest (``sum_over_batch_size``: a weighted sum
  divided by the count, not by the weights). ``Huber`` switches at |d| <= delta.
- optax ``squared_error(input, target).mean()`` (equal shapes only), ``l2_loss`` (half of it),
  ``huber_loss(input, target, delta).mean()``.
- ``tf.nn.l2_loss(input - target)``: sum(d²) / 2.
- torch's other function with the same parameter: ``smooth_l1_loss(beta=δ)`` is ``huber_loss``
  / δ, ``huber_loss(delta=β)`` is β times ``smooth_l1_loss``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.conventions import shared
from service.conventions.base import F64, Row, mean_of
from service.conventions.records import Family, Request

MSE, L1, HUBER, SMOOTH_L1 = "mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss"
PREDICTIONS = "predictions"


@dataclass
class Case:
    x: F64
    """The input as sent."""
    t: F64
    """The target as sent."""
    d: F64
    """input - target, broadcast as torch broadcasts them."""
    weight: F64 | None
    """The element-wise weight (the input's shape)."""
    name: str
    delta: float
    """huber's delta, smooth_l1's beta (1 for the others)."""
    request: Request


def case_of(request: Request) -> Case:
    x = np.asarray(request.array("input"), dtype=np.float64)
    t = np.asarray(request.array("target"), dtype=np.float64)
    w = request.array("weight")
    params = request.params
    delta = getattr(params, "delta", getattr(params, "beta", 1.0))
    return Case(
        x=x,
        t=t,
        d=x - t,
        weight=None if w is None else np.asarray(w, dtype=np.float64),
        name=request.name,
        delta=float(delta),
        request=request,
    )


FAMILY: Family[Case] = Family(
    MSE,
    L1,
    HUBER,
    SMOOTH_L1,
    case=case_of,
    shared=(
        shared.sum_instead_of_mean,
        shared.mean_over_batch_not_elements,
        shared.weights_not_in_denominator.only(MSE, L1),
        shared.broadcast_n1_vs_n,
    ),
)

_SAME = "Nothing to change: this is torch's convention."


def _squared(d: F64) -> F64:
    return d * d


def _absolute(d: F64) -> F64:
    out: F64 = np.abs(d)
    return out


def _huber(d: F64, delta: float, *, inclusive: bool = False) -> F64:
    z = np.abs(d)
    quadratic = z <= delta if inclusive else z < delta
    out: F64 = np.where(quadratic, 0.5 * d * d, delta * (z - 0.5 * delta))
    return out


def _smooth_l1(d: F64, beta: float) -> F64:
    z = np.abs(d)
    if beta == 0:
        return z
    out: F64 = np.where(z < beta, 0.5 * d * d / beta, z - 0.5 * beta)
    return out


def _elementwise(case: Case) -> F64:
    if case.name == MSE:
        return _squared(case.d)
    if case.name == L1:
        return _absolute(case.d)
    if case.name == HUBER:
        return _huber(case.d, case.delta)
    return _smooth_l1(case.d, case.delta)


def _options(case: Case) -> str:
    out = ", weight=weight" if case.weight is not None else ""
    if case.name == HUBER and case.delta != 1.0:
        out += f", delta={case.delta:g}"
    if case.name == SMOOTH_L1 and case.delta != 1.0:
        out += f", beta={case.delta:g}"
    return out


@FAMILY.convention(
    "torch", "PyTorch", "torch.nn.functional.mse_loss(input, target)", reads=PREDICTIONS, fix=_SAME
)
def torch_row(case: Case, row: Row) -> None:
    row.call = f"torch.nn.functional.{case.name}(input, target{_options(case)})"
    row.fill(case.request.torch_value, case.request.losses)
    broadcast = (
        f"; the shapes {tuple(case.x.shape)} and {tuple(case.t.shape)} broadcast to "
        f"{tuple(case.d.shape)}, one loss per pair"
        if case.x.shape != case.t.shape
        else ""
    )
    row.same = "The request itself" + broadcast


# -- scikit-learn ---------------------------------------------------------------------------------


def _sklearn_2d(case: Case, row: Row) -> tuple[F64, F64, F64 | None] | None:
    """(y_true, y_pred) as scikit-learn lines them up, and sample_weight; None if refused."""
    x, t = case.x, case.t
    for what, arr in (("y_true", t), ("y_pred", x)):
        if arr.ndim == 0 or arr.ndim > 2:
            row.refuse(
                f"scikit-learn takes 1-d or 2-d arrays; {what} is {arr.ndim}-d "
                f"({'a scalar' if arr.ndim == 0 else 'Found array with dim ' + str(arr.ndim)})"
            )
            return None
    t2 = t.reshape(-1, 1) if t.ndim == 1 else t
    x2 = x.reshape(-1, 1) if x.ndim == 1 else x
    if t2.shape[0] != x2.shape[0]:
        row.refuse(f"scikit-learn needs as many samples in both: {t2.shape[0]} and {x2.shape[0]}")
        return None
    if t2.shape[1] != x2.shape[1]:
        row.refuse(
            f"scikit-learn needs as many outputs in both: y_true has {t2.shape[1]}, y_pred "
            f"{x2.shape[1]} (it does not broadcast)"
        )
        return None
    if not t2.shape[0]:
        row.refuse("scikit-learn refuses an empty input (0 samples)")
        return None
    sw = None
    if case.weight is not None:
        w2 = case.weight.reshape(-1, 1) if case.weight.ndim == 1 else case.weight
        if w2.ndim == 2 and np.all(w2 == w2[:, :1]):
            sw = w2[:, 0]
            if not np.isfinite(sw.sum()) or sw.sum() == 0:
                row.refuse("scikit-learn refuses sample weights that sum to zero")
                return None
        else:
            row.differences.append(
                "scikit-learn's sample_weight weighs whole samples, and this weight differs "
                "within a sample, so it is computed without weight"
            )
    return t2, x2, sw


def _sklearn_weights(case: Case, sw: F64 | None) -> str:
    return (
        ", sample_weight=weight[:, 0]"
        if sw is not None and case.x.ndim == 2
        else (", sample_weight=weight" if sw is not None else "")
    )


def _sklearn_mean(fn: str) -> Any:
    def compute(case: Case, row: Row) -> None:
        lined = _sklearn_2d(case, row)
        if lined is None:
            return
        t2, x2, sw = lined
        row.call = f"sklearn.metrics.{fn}(target, input{_sklearn_weights(case, sw)})"
        e = x2 - t2
        terms = e * e if fn == "mean_squared_error" else np.abs(e)
        per_output = np.average(terms, axis=0, weights=sw)
        value = float(np.average(per_output))
        row.fill(value, terms.reshape(-1) if terms.shape[1] == 1 else terms)
        row.reading = "scikit-learn lines up a 1-d array as one output and averages per output"
        row.same = "Same convention as torch: the mean over every element"
        if case.x.shape != case.t.shape:
            row.differences.append(
                f"scikit-learn lines up {tuple(case.x.shape)} and {tuple(case.t.shape)} as one "
                f"output of {t2.shape[0]} samples, where torch broadcasts them to "
                f"{tuple(case.d.shape)}"
            )

    return compute


FAMILY.convention(
    "sklearn",
    "scikit-learn",
    "sklearn.metrics.mean_squared_error(target, input)",
    reads=PREDICTIONS,
    fix="Give input and target the same shape in torch, or compare with scikit-learn's "
    "uniform average on the same shapes.",
    losses=(MSE,),
)(_sklearn_mean("mean_squared_error"))
FAMILY.convention(
    "sklearn",
    "scikit-learn",
    "sklearn.metrics.mean_absolute_error(target, input)",
    reads=PREDICTIONS,
    fix="Give input and target the same shape in torch, or compare with scikit-learn's "
    "uniform average on the same shapes.",
    losses=(L1,),
)(_sklearn_mean("mean_absolute_error"))


# -- Keras ----------------------------------------------------------------------------------------


def keras_align(t: F64, x: F64) -> tuple[F64, F64]:
    """Keras's ``squeeze_or_expand_to_same_rank(y_true, y_pred)``."""
    if t.ndim == x.ndim + 1 and t.shape[-1] == 1:
        if x.ndim == 1:
            x = x[:, None]
        else:
            t = t[..., 0]
    elif x.ndim == t.ndim + 1 and x.shape[-1] == 1:
        if t.ndim == 1:
            t = t[:, None]
        else:
            x = x[..., 0]
    return t, x


def _keras(fn: str, terms: Any, *, huber: bool = False) -> Any:
    def compute(case: Case, row: Row) -> None:
        t, x = keras_align(case.t, case.x)
        d = x - t
        delta = f"delta={case.delta:g}" if huber else ""
        weights = ""
        per_element = terms(d, case.delta)
        if not per_element.size:
            row.refuse("Keras returns an empty tensor, not a number, for an empty batch")
            return
        per = per_element.mean(axis=-1) if per_element.ndim else per_element
        sw = None
        if case.weight is not None and case.name != SMOOTH_L1:
            w = np.broadcast_to(case.weight, case.x.shape)
            _, w = keras_align(case.t, w)
            if w.ndim and np.all(w == w[..., :1]):
                sw = np.broadcast_to(w[..., 0], per.shape)
                weights = ", sample_weight=weight[..., 0]"
                row.differences.append(
                    "weight becomes sample_weight, and Keras's sum_over_batch_size divides the "
                    "weighted sum by the number of samples, not by the sum of the weights"
                    if case.name != HUBER
                    else "weight becomes sample_weight; Keras and torch's huber_loss both divide "
                    "by the number of elements"
                )
            else:
                row.differences.append(
                    "Keras's sample_weight weighs whole samples (the last axis is averaged "
                    "first), and this weight differs along it, so it is computed without weight"
                )
        if sw is not None:
            per = per * sw
        row.call = f"keras.losses.{fn}({delta})(target, input{weights})"
        row.fill(mean_of(per, per.size), per)
        row.same = "Same convention as torch: the mean over every element"
        if case.x.shape != case.t.shape and (t.shape != case.t.shape or x.shape != case.x.shape):
            row.differences.append(
                f"Keras lines up {tuple(case.x.shape)} and {tuple(case.t.shape)} (a trailing 1 "
                f"against one rank less) to {tuple(d.shape)}, where torch broadcasts them to "
                f"{tuple(case.d.shape)}"
            )
        if case.name == SMOOTH_L1:
            row.differences.insert(
                0, f"Huber(delta=beta) is beta = {case.delta:g} times smooth_l1_loss"
            )

    return compute


_KERAS_FIX = (
    "Give input and target the same shape, and for a weighted mean divide by the sum of the "
    "weights, as torch does."
)
FAMILY.convention(
    "keras",
    "Keras 3",
    "keras.losses.MeanSquaredError()(target, input)",
    reads=PREDICTIONS,
    fix=_KERAS_FIX,
    losses=(MSE,),
)(_keras("MeanSquaredError", lambda d, _: d * d))
FAMILY.convention(
    "keras",
    "Keras 3",
    "keras.losses.MeanAbsoluteError()(target, input)",
    reads=PREDICTIONS,
    fix=_KERAS_FIX,
    losses=(L1,),
)(_keras("MeanAbsoluteError", lambda d, _: np.abs(d)))
FAMILY.convention(
    "keras",
    "Keras 3",
    "keras.losses.Huber(delta)(target, input)",
    reads=PREDICTIONS,
    fix="Give input and target the same shape; Keras's Huber is torch's huber_loss.",
    losses=(HUBER,),
)(_keras("Huber", lambda d, delta: _huber(d, delta, inclusive=True), huber=True))
FAMILY.convention(
    "keras_huber",
    "Keras 3",
    "keras.losses.Huber(delta=beta)(target, input)",
    reads=PREDICTIONS,
    fix=lambda case: (
        f"Divide Keras's Huber by beta = {case.delta:g}: smooth_l1_loss is huber / beta."
    ),
    losses=(SMOOTH_L1,),
    applies=lambda case: case.delta > 0,
)(_keras("Huber", lambda d, delta: _huber(d, delta, inclusive=True), huber=True))


# -- optax and tf.nn --------------------------------------------------------------------------


def _same_shapes(case: Case, row: Row) -> bool:
    if case.x.shape != case.t.shape:
        row.refuse(
            f"optax checks that the shapes are equal: {tuple(case.x.shape)} and "
            f"{tuple(case.t.shape)} are not (it does not broadcast)"
        )
        return False
    return True


def _no_weight(case: Case, row: Row, who: str) -> None:
    if case.weight is not None:
        row.differences.append(f"{who} has no weight, so it is computed without weight")


@FAMILY.convention(
    "optax_squared_error",
    "optax",
    "optax.losses.squared_error(input, target).mean()",
    reads=PREDICTIONS,
    fix=_SAME,
    losses=(MSE,),
)
def optax_squared_error(case: Case, row: Row) -> None:
    if not _same_shapes(case, row):
        return
    per = _squared(case.d)
    row.fill(mean_of(per, per.size), per)
    row.same = "Same convention as torch: the mean of the squared errors"
    _no_weight(case, row, "optax")


@FAMILY.convention(
    "optax_l2_loss",
    "optax",
    "optax.losses.l2_loss(input, target).mean()",
    reads=PREDICTIONS,
    fix="Double it: optax's l2_loss is half the squared error.",
    losses=(MSE,),
)
def optax_l2_loss(case: Case, row: Row) -> None:
    if not _same_shapes(case, row):
        return
    per = _squared(case.d)
    row.fill(0.5 * mean_of(per, per.size), 0.5 * per)
    row.reading = "optax's l2_loss is half the squared error, 0.5·d², averaged"
    _no_weight(case, row, "optax")


@FAMILY.convention(
    "tf_nn_l2_loss",
    "TensorFlow",
    "tf.nn.l2_loss(input - target)",
    reads=PREDICTIONS,
    fix=lambda case: (
        f"Divide by {case.d.size / 2:g} (twice its sum over the number of "
        "elements): tf.nn.l2_loss is sum(d²) / 2, not a mean."
    ),
    losses=(MSE,),
)
def tf_nn_l2_loss(case: Case, row: Row) -> None:
    per = 0.5 * _squared(case.d)
    row.fill(float(np.add.reduce(per, axis=None)), per)
    row.reading = "tf.nn.l2_loss is half the sum of the squares, sum(d²) / 2, not a mean"
    _no_weight(case, row, "tf.nn.l2_loss")


@FAMILY.convention(
    "rmse",
    "scikit-learn",
    "sklearn.metrics.root_mean_squared_error(target, input)",
    reads=PREDICTIONS,
    fix="Square it: the root mean squared error is the root of torch's mean (per output, then "
    "averaged, in scikit-learn).",
    losses=(MSE,),
)
def rmse(case: Case, row: Row) -> None:
    lined = _sklearn_2d(case, row)
    if lined is None:
        return
    t2, x2, sw = lined
    row.call = f"sklearn.metrics.root_mean_squared_error(target, input{_sklearn_weights(case, sw)})"
    e = x2 - t2
    per_output = np.sqrt(np.average(e * e, axis=0, weights=sw))
    row.fill(float(np.average(per_output)), per_output)
    row.reading = (
        "the root mean squared error: the root of each output's mean squared error, averaged "
        "over the outputs"
    )


@FAMILY.convention(
    "optax",
    "optax",
    "optax.losses.huber_loss(input, target, delta).mean()",
    reads=PREDICTIONS,
    fix=_SAME,
    losses=(HUBER,),
)
def optax_huber(case: Case, row: Row) -> None:
    row.call = f"optax.losses.huber_loss(input, target, delta={case.delta:g}).mean()"
    per = _huber(np.broadcast_to(case.d, case.d.shape), case.delta, inclusive=True)
    row.fill(mean_of(per, per.size), per)
    row.same = "Same convention as torch: the mean of the Huber terms"
    _no_weight(case, row, "optax")


@FAMILY.convention(
    "smooth_l1",
    "PyTorch",
    "torch.nn.functional.smooth_l1_loss(input, target, beta=delta)",
    reads=PREDICTIONS,
    fix=lambda case: (
        f"Multiply by delta = {case.delta:g}: huber_loss is delta times "
        "smooth_l1_loss with beta = delta."
    ),
    losses=(HUBER,),
)
def smooth_l1_of_huber(case: Case, row: Row) -> None:
    row.call = f"torch.nn.functional.smooth_l1_loss(input, target, beta={case.delta:g})"
    per = _smooth_l1(case.d, case.delta)
    row.fill(mean_of(per, per.size), per)
    row.reading = f"smooth_l1_loss with beta = delta is huber_loss / delta ({case.delta:g})"
    _no_weight(case, row, "smooth_l1_loss")


@FAMILY.convention(
    "huber",
    "PyTorch",
    "torch.nn.functional.huber_loss(input, target, delta=beta)",
    reads=PREDICTIONS,
    fix=lambda case: f"Divide by beta = {case.delta:g}: smooth_l1_loss is huber_loss / beta.",
    losses=(SMOOTH_L1,),
)
def huber_of_smooth_l1(case: Case, row: Row) -> None:
    row.call = f"torch.nn.functional.huber_loss(input, target, delta={case.delta:g})"
    if case.delta <= 0:
        row.refuse("huber_loss needs delta > 0; beta = 0 makes smooth_l1_loss the l1_loss")
        return
    per = _huber(case.d, case.delta)
    row.fill(mean_of(per, per.size), per)
    row.reading = f"huber_loss with delta = beta is beta ({case.delta:g}) times smooth_l1_loss"


# -- mistakes ---------------------------------------------------------------------------------


@FAMILY.mistake(
    "half_squared_error",
    explanation="Half the squared error, 0.5·(input - target)² averaged (the textbook's 1/2, "
    "optax's l2_loss), gives this.",
    fix="Drop the 1/2 (multiply by 2): mse_loss is the mean of (input - target)².",
    losses=(MSE,),
)
def half_squared_error(case: Case) -> float:
    return 0.5 * case.request.torch_value


@FAMILY.mistake(
    "root_mean_squared_error",
    explanation="The root of the mean squared error (RMSE) gives this.",
    fix="Square it: mse_loss is the mean squared error, without the root.",
    losses=(MSE,),
    applies=lambda case: case.request.torch_value >= 0,
)
def root_mean_squared_error(case: Case) -> float:
    return math.sqrt(case.request.torch_value)


@FAMILY.mistake(
    "smooth_l1_beta_vs_huber_delta",
    explanation=lambda case: (
        "The other function with the same parameter gives this: "
        + (
            f"smooth_l1_loss(beta={case.delta:g}), which is huber_loss / delta."
            if case.name == HUBER
            else f"huber_loss(delta={case.delta:g}), which is beta times smooth_l1_loss."
        )
    ),
    fix=lambda case: (
        f"Call {case.name}: huber_loss(delta=d) = d * smooth_l1_loss(beta=d); they agree only "
        "when the parameter is 1."
    ),
    losses=(HUBER, SMOOTH_L1),
    applies=lambda case: case.delta != 1.0 and case.delta > 0,
)
def smooth_l1_beta_vs_huber_delta(case: Case) -> float | None:
    per = _smooth_l1(case.d, case.delta) if case.name == HUBER else _huber(case.d, case.delta)
    return mean_of(per, per.size)
