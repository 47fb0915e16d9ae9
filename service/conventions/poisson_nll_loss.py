"""poisson_nll_loss as each library reads the same rates and counts.

Rows, in this order: ``torch`` (the service's reference for the request), ``keras``,
``tf_nn_log_poisson``, ``exact_nll`` and ``sklearn_deviance``. Torch's loss drops the constant
log(k!) (or approximates it with Stirling's formula when ``full``); the rate is e^input with
``log_input`` (the default) and input itself otherwise, with eps inside the log. The rows pass
each library the rate, or the log-rate, in the form it takes.

The algorithms followed (see the README for the versions):
- Keras 3 ``Poisson``: mean over the last axis of rate - k·log(rate + 1e-7), then the mean over
  the batch; the shapes are first lined up as Keras lines them up (a trailing axis of 1 added to
  or squeezed from the rank-1 operand).
- ``tf.nn.log_poisson_loss(targets, log_input, compute_full_loss)``: exp(c) - k·c, plus
  k·log k - k + ½·log(2πk) where k is not in [0, 1] when ``compute_full_loss``; the shapes must
  be equal. The call takes the mean.
- ``torch.distributions.Poisson(rate).log_prob(k)``: xlogy(k, rate) - rate - lgamma(k + 1), the
  exact log-factorial; its argument validation refuses negative rates and counts that are not
  non-negative integers.
- scikit-learn ``mean_poisson_deviance``: 2·(xlogy(k, k/rate) - k + rate), averaged; it refuses
  negative counts and rates that are not > 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from service.conventions import shared
from service.conventions.base import F64, KERAS_EPSILON, Row, mean_of, xlogy
from service.conventions.records import Family, Request
from service.losses.poisson_nll_loss import PoissonNllLossParams

_lgamma = np.frompyfunc(math.lgamma, 1, 1)


def lgamma(a: F64) -> F64:
    """log Γ(a) element-wise (``math.lgamma``; NumPy has none)."""
    return np.asarray(_lgamma(a), dtype=np.float64).reshape(np.shape(a))


@dataclass
class Case:
    x: F64
    t: F64
    rate: F64
    log_input: bool
    full: bool
    eps: float
    request: Request

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.request.losses.shape)

    @property
    def counts(self) -> bool:
        """The targets are non-negative integers: counts, whose log-factorial is exact."""
        t = self.t
        return bool(np.isfinite(t).all() and (t >= 0).all() and (t == np.round(t)).all())

    @property
    def reads(self) -> str:
        return LOG_RATES if self.log_input else RATES

    @property
    def rate_name(self) -> str:
        return "torch.exp(input)" if self.log_input else "input"


LOG_RATES = "log-rates"
RATES = "rates"


def case_of(request: Request) -> Case:
    params: PoissonNllLossParams = request.params  # type: ignore[assignment]
    x = np.asarray(request.array("input"), dtype=np.float64)
    with np.errstate(over="ignore"):
        rate = np.exp(x) if params.log_input else x
    return Case(
        x=x,
        t=np.asarray(request.array("target"), dtype=np.float64),
        rate=rate,
        log_input=bool(params.log_input),
        full=bool(params.full),
        eps=float(params.eps),
        request=request,
    )


FAMILY: Family[Case] = Family(
    "poisson_nll_loss",
    case=case_of,
    shared=(
        shared.sum_instead_of_mean,
        shared.mean_over_batch_not_elements,
        shared.broadcast_n1_vs_n,
    ),
)

_SAME = "Nothing to change: this is torch's convention."


def _options(case: Case) -> str:
    out = "" if case.log_input else ", log_input=False"
    if case.full:
        out += ", full=True"
    if case.eps != 1e-8 and not case.log_input:
        out += f", eps={case.eps:g}"
    return out


@FAMILY.convention(
    "torch",
    "PyTorch",
    "torch.nn.functional.poisson_nll_loss(input, target)",
    reads=LOG_RATES,
    fix=_SAME,
)
def torch_row(case: Case, row: Row) -> None:
    row.call = f"torch.nn.functional.poisson_nll_loss(input, target{_options(case)})"
    row.reads_input_as = case.reads
    row.fill(case.request.torch_value, case.request.losses)
    formula = "exp(input) - target·input" if case.log_input else "input - target·log(input + eps)"
    row.same = f"The request itself: torch takes {formula}" + (
        ", plus Stirling's approximation of log(target!) where target > 1 (full=True)"
        if case.full
        else ", without the constant log(target!)"
    )


def _no_constant(case: Case, row: Row, who: str) -> None:
    if case.full:
        row.differences.append(
            f"{who} has no log(target!) term, so the Stirling term full=True adds is left out"
        )


def _keras_shapes(
    t: tuple[int, ...], x: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The shapes of y_true and y_pred once Keras lines them up (squeeze_or_expand_to_same_rank:
    where the ranks differ by one and the longer ends in 1, a rank-1 operand gains a trailing 1,
    else the 1 is squeezed), or None where they then do not broadcast."""
    if len(t) == len(x) + 1 and t[-1] == 1:
        if len(x) == 1:
            x = (*x, 1)
        else:
            t = t[:-1]
    elif len(x) == len(t) + 1 and x[-1] == 1:
        if len(t) == 1:
            t = (*t, 1)
        else:
            x = x[:-1]
    try:
        np.broadcast_shapes(t, x)
    except ValueError:
        return None
    return t, x


@FAMILY.convention(
    "keras",
    "Keras 3",
    "keras.losses.Poisson()(target, torch.exp(input))",
    reads=LOG_RATES,
    fix=lambda case: (
        "Keras adds 1e-7 to the rate inside its log, torch "
        + ("nothing (it takes input as the log-rate)" if case.log_input else "eps")
        + ": the two agree where the rates are large beside it."
        + (" Drop full=True, which Keras has no term for." if case.full else "")
    ),
)
def keras(case: Case, row: Row) -> None:
    row.call = f"keras.losses.Poisson()(target, {case.rate_name})"
    row.reads_input_as = case.reads
    shapes = _keras_shapes(case.t.shape, case.x.shape)
    if shapes is None:
        row.refuse(
            f"Keras lines up a trailing axis of 1 and then broadcasts: target "
            f"{list(case.t.shape)} and input {list(case.x.shape)} do not broadcast that way "
            "(torch pairs every input with every target)"
        )
        return
    t = case.t.reshape(shapes[0])
    rate = case.rate.reshape(shapes[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = rate - t * np.log(rate + KERAS_EPSILON)
    with np.errstate(invalid="ignore"):  # the mean over an empty last axis is NaN
        per = terms.sum(axis=-1) / terms.shape[-1] if terms.ndim else terms
    row.fill(mean_of(per, per.size) if per.ndim else float(per), per)
    row.same = (
        "Same convention as torch: Keras takes rate - target·log(rate + 1e-7), and the 1e-7 does "
        "not move the value beyond 1e-6"
    )
    row.reading = "Keras takes rate - target·log(rate + 1e-7), where torch takes " + (
        "the log-rate input as it is" if case.log_input else f"log(rate + {case.eps:g})"
    )
    _no_constant(case, row, "Keras's Poisson")
    if tuple(np.broadcast_shapes(t.shape, rate.shape)) != case.shape:
        row.differences.append(
            f"Keras lines the shapes up before the loss, giving {per.size} losses where torch "
            f"broadcasts target {list(case.t.shape)} against input {list(case.x.shape)}"
        )


def _tf_fix(case: Case) -> str:
    if case.full and bool((case.t < 0).any()):
        return (
            "tf.nn.log_poisson_loss adds Stirling's term also for negative targets (where it is "
            "NaN): keep the targets non-negative, as Poisson counts are."
        )
    if not case.log_input:
        return (
            "Pass tf.math.log(input + eps) as log_input: torch adds eps to the rate inside the log."
        )
    return _SAME


@FAMILY.convention(
    "tf_nn_log_poisson",
    "TensorFlow",
    "tf.reduce_mean(tf.nn.log_poisson_loss(target, input))",
    reads=LOG_RATES,
    fix=_tf_fix,
)
def tf_nn_log_poisson(case: Case, row: Row) -> None:
    log_input = "input" if case.log_input else "tf.math.log(input)"
    full = ", compute_full_loss=True" if case.full else ""
    row.call = f"tf.reduce_mean(tf.nn.log_poisson_loss(target, {log_input}{full}))"
    row.reads_input_as = case.reads
    if case.t.shape != case.x.shape:
        row.refuse(
            f"tf.nn.log_poisson_loss requires log_input and targets of the same shape; these are "
            f"{list(case.x.shape)} and {list(case.t.shape)}, which torch broadcasts"
        )
        return
    t = case.t
    with np.errstate(divide="ignore", invalid="ignore"):
        c = case.x if case.log_input else np.log(case.x)
        per = np.exp(c) - c * t
        if case.full:
            stirling = t * np.log(t) - t + 0.5 * np.log(2 * math.pi * t)
            per = per + np.where((t >= 0) & (t <= 1), 0.0, stirling)
    row.fill(mean_of(per, per.size), per)
    row.same = "Same convention as torch: tf.nn takes exp(c) - target·c of the log-rate c" + (
        ", plus Stirling's approximation where target > 1" if case.full else ""
    )
    row.reading = (
        "tf.nn takes exp(c) - target·c of the log-rate c = log(input), without torch's eps"
        if not case.log_input
        else "tf.nn takes exp(c) - target·c of the log-rate c"
    )
    if case.full and bool((t < 0).any()):
        row.differences.append(
            "with compute_full_loss, tf.nn adds Stirling's term wherever the target is not in "
            "[0, 1], negative targets included, where log of a negative count is NaN; torch adds "
            "it only where target > 1"
        )


@FAMILY.convention(
    "exact_nll",
    "PyTorch",
    "-torch.distributions.Poisson(torch.exp(input)).log_prob(target).mean()",
    reads=LOG_RATES,
    fix=lambda case: (
        "Subtract log(target!) from each loss"
        + (" and add Stirling's approximation of it where target > 1" if case.full else "")
        + ": torch's poisson_nll_loss "
        + ("approximates" if case.full else "drops")
        + " the log-factorial."
    ),
)
def exact_nll(case: Case, row: Row) -> None:
    row.call = f"-torch.distributions.Poisson({case.rate_name}).log_prob(target).mean()"
    row.reads_input_as = case.reads
    if not case.counts:
        bad = case.t[~((case.t >= 0) & (case.t == np.round(case.t)) & np.isfinite(case.t))]
        row.refuse(
            f"torch.distributions.Poisson refuses a target that is not a count (a non-negative "
            f"integer): target holds {float(bad.flat[0])!r}"
        )
        return
    if case.rate.size and bool((case.rate < 0).any()):
        row.refuse(
            "torch.distributions.Poisson refuses negative rates, and input holds "
            f"{float(case.rate[case.rate < 0].flat[0])!r}"
        )
        return
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_prob = xlogy(case.t, case.rate) - case.rate - lgamma(case.t + 1)
    per = np.broadcast_to(-log_prob, case.shape)
    row.fill(mean_of(per, per.size), per)
    row.reading = (
        "the exact Poisson negative log-likelihood: torch's loss plus log(target!) "
        + ("in place of Stirling's approximation" if case.full else "(which torch drops)")
        + ("" if case.log_input else ", without torch's eps")
    )


@FAMILY.convention(
    "sklearn_deviance",
    "scikit-learn",
    "sklearn.metrics.mean_poisson_deviance(target.reshape(-1), torch.exp(input).reshape(-1))",
    reads=LOG_RATES,
    fix="The deviance is twice the loss minus that of a perfect prediction (rate = target): "
    "halve it and add target - target·log(target) per element to get torch's loss.",
)
def sklearn_deviance(case: Case, row: Row) -> None:
    row.call = (
        f"sklearn.metrics.mean_poisson_deviance(target.reshape(-1), {case.rate_name}.reshape(-1))"
    )
    row.reads_input_as = case.reads
    if case.t.size != case.x.size:
        row.refuse(
            f"scikit-learn needs one prediction per target: input has {case.x.size} values and "
            f"target {case.t.size} (torch broadcasts them to {list(case.shape)})"
        )
        return
    if not case.t.size:
        row.refuse("scikit-learn refuses an empty input")
        return
    t, rate = case.t.reshape(-1), case.rate.reshape(-1)
    if not (np.isfinite(t).all() and np.isfinite(rate).all()):
        row.refuse("scikit-learn refuses infinite or NaN values (the rate overflows here)")
        return
    if bool((t < 0).any()) or bool((rate <= 0).any()):
        row.refuse(
            "scikit-learn's Poisson deviance can only be used on non-negative targets and "
            "strictly positive predicted rates"
        )
        return
    with np.errstate(divide="ignore", invalid="ignore"):
        dev = 2 * (xlogy(t, t / rate) - t + rate)
    row.fill(mean_of(dev, dev.size), dev.reshape(case.t.shape))
    row.reading = (
        "the Poisson deviance, 2·(target·log(target / rate) - target + rate): twice torch's "
        "loss minus that of the perfect prediction rate = target, 0 at best"
    )
    if case.t.shape != case.x.shape:
        row.differences.append(
            row.reading + f"; scikit-learn pairs the {t.size} values in order, where torch "
            f"broadcasts target {list(case.t.shape)} against input {list(case.x.shape)}"
        )


# -- mistakes ------------------------------------------------------------------------------------


def _flipped_explanation(case: Case) -> str:
    if case.log_input:
        return (
            "Reading 'input' as rates rather than log-rates (log_input=False) gives this: "
            "input - target·log(input + eps), where torch's default takes exp(input) as the rate."
        )
    return (
        "Reading 'input' as log-rates (log_input=True, torch's default) gives this: "
        "exp(input) - target·input, where the request's log_input=False takes input as the rate."
    )


@FAMILY.mistake(
    "poisson_log_input_flipped",
    explanation=_flipped_explanation,
    fix=lambda case: (
        f"Pass log_input={case.log_input} as the request does: with log_input=True 'input' is "
        "log λ (a model's raw output), with False it is λ itself."
    ),
)
def poisson_log_input_flipped(case: Case) -> float | None:
    return case.request.value_with(log_input=not case.log_input)


@FAMILY.mistake(
    "poisson_exact_factorial",
    explanation=lambda case: (
        "The exact log-factorial log(target!) added to each element's loss (the exact Poisson "
        "negative log-likelihood, as Poisson(rate).log_prob or scipy.stats.poisson.logpmf give "
        "it) gives this, where torch "
        + ("uses Stirling's approximation of it (full=True)." if case.full else "drops it.")
    ),
    fix=lambda case: (
        "Use Stirling's approximation k·log k - k + ½·log(2πk), only where k > 1, as torch's "
        "full=True does."
        if case.full
        else "Drop log(target!): torch's default leaves the constant out (full=True would add "
        "Stirling's approximation of it)."
    ),
    applies=lambda case: case.counts,
)
def poisson_exact_factorial(case: Case) -> float | None:
    ref = case.request.rerun(full=False)
    if ref is None:  # pragma: no cover - the request itself was accepted
        return None
    per = np.asarray(ref.losses, dtype=np.float64) + lgamma(case.t + 1)
    return mean_of(per, per.size)
