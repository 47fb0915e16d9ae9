"""gaussian_nll_loss as each library reads the same means, targets and variances.

Rows, in this order: ``torch`` (the service's reference for the request), ``torch_full``,
``normal_log_prob`` and ``scipy``. Torch's loss is ½·(log max(var, eps) + (input - target)² /
max(var, eps)), with the constant ½·log(2π) only when ``full``; the Gaussian log-densities of
torch.distributions and SciPy always include the constant and never clamp the variance.

The algorithms followed (see the README for the versions):
- ``torch.distributions.Normal(loc, scale).log_prob(value)``:
  -(value - loc)² / (2·scale²) - log(scale) - log(sqrt(2π)); with its argument validation (on
  by default) it refuses a scale that is not > 0.
- ``scipy.stats.norm.logpdf(x, loc, scale)``: -y²/2 - log(2π)/2 - log(scale), y = (x - loc) /
  scale; a scale of 0 gives NaN (SciPy's answer for arguments outside the domain).
Both take the standard deviation, so the calls pass sqrt(var), with a trailing axis of 1 where
the request gives one variance per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from service.conventions import shared
from service.conventions.base import F64, Row, mean_of
from service.conventions.records import Family, Request
from service.losses.gaussian_nll_loss import HALF_LOG_2PI, GaussianNllLossParams

MEANS = "means"


@dataclass
class Case:
    x: F64
    t: F64
    var: F64
    """The variances as torch uses them (a trailing axis of 1 for one per row)."""
    var_form: str
    eps: float
    full: bool
    request: Request

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.request.losses.shape)

    @property
    def clamped(self) -> int:
        return int(np.count_nonzero(np.broadcast_to(self.var, self.shape) < self.eps))

    @property
    def scale_name(self) -> str:
        if self.var_form == "scalar":
            return "math.sqrt(var)"
        return "var[..., None].sqrt()" if self.var_form == "per_row" else "var.sqrt()"


def case_of(request: Request) -> Case:
    params: GaussianNllLossParams = request.params  # type: ignore[assignment]
    x = np.asarray(request.array("input"), dtype=np.float64)
    var = np.asarray(request.array("var"), dtype=np.float64)
    form = str(request.prep.facts["var_form"])
    if form == "per_row":
        var = var[..., None]
    return Case(
        x=x,
        t=np.asarray(request.array("target"), dtype=np.float64),
        var=var,
        var_form=form,
        eps=float(params.eps),
        full=bool(params.full),
        request=request,
    )


FAMILY: Family[Case] = Family(
    "gaussian_nll_loss",
    case=case_of,
    shared=(
        shared.sum_instead_of_mean,
        shared.mean_over_batch_not_elements,
        shared.broadcast_n1_vs_n,
    ),
)

_SAME = "Nothing to change: this is torch's convention."
_CONSTANT = f"½·log(2π) = {HALF_LOG_2PI:.4f}"


def _options(case: Case, full: bool) -> str:
    out = ", full=True" if full else ""
    if case.eps != 1e-6:
        out += f", eps={case.eps:g}"
    return out


@FAMILY.convention(
    "torch",
    "PyTorch",
    "torch.nn.functional.gaussian_nll_loss(input, target, var)",
    reads=MEANS,
    fix=_SAME,
)
def torch_row(case: Case, row: Row) -> None:
    row.call = (
        f"torch.nn.functional.gaussian_nll_loss(input, target, var{_options(case, case.full)})"
    )
    row.fill(case.request.torch_value, case.request.losses)
    row.same = (
        "The request itself: torch takes ½·(log var + (input - target)² / var) with var clamped "
        "from below at eps"
        + (f", plus {_CONSTANT} (full=True)" if case.full else ", without the constant ½·log(2π)")
    )


@FAMILY.convention(
    "torch_full",
    "PyTorch",
    "torch.nn.functional.gaussian_nll_loss(input, target, var, full=True)",
    reads=MEANS,
    fix=f"Pass full=False (torch's default), or subtract {_CONSTANT} from this number: "
    "full=True adds the constant to every element.",
)
def torch_full(case: Case, row: Row) -> None:
    row.call = f"torch.nn.functional.gaussian_nll_loss(input, target, var{_options(case, True)})"
    ref = case.request.rerun(full=True)
    if ref is None:  # pragma: no cover - the request itself was accepted
        row.refuse("torch refuses these inputs")
        return
    row.fill(float(ref.value), np.asarray(ref.losses, dtype=np.float64))
    row.same = "Same number as torch: the request already asks for full=True"
    row.reading = (
        f"the constant {_CONSTANT} added to every element's loss by full=True: the Gaussian's "
        "whole negative log-density, which torch's default leaves out"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _density_fix(case: Case) -> str:
    parts = []
    if not case.full:
        parts.append(f"subtract {_CONSTANT} (torch's default full=False leaves it out)")
    if case.clamped:
        parts.append(f"raise the variances below eps ({case.eps:g}) to eps, as torch does")
    if not parts:
        return _SAME
    return "To get torch's number, " + " and ".join(parts) + "."


def _density_clauses(case: Case, row: Row, who: str) -> None:
    row.reading = (
        f"the Gaussian's whole negative log-density ({who}): torch's loss with the constant "
        f"{_CONSTANT} and without torch's clamp of var at eps"
    )
    row.same = (
        f"Same convention as torch with full=True: the Gaussian's negative log-density ({who}), "
        "and torch's clamp of var at eps does not bind"
    )
    if not case.full:
        row.differences.append(
            f"the constant {_CONSTANT} is included ({who}), where torch adds it only with full=True"
        )
    if case.clamped:
        row.differences.append(
            f"no clamp: {_count(case.clamped, 'variance')} below eps ({case.eps:g}) used as "
            "they are, where torch raises them to eps"
        )


@FAMILY.convention(
    "normal_log_prob",
    "PyTorch",
    "-torch.distributions.Normal(input, var.sqrt()).log_prob(target).mean()",
    reads=MEANS,
    fix=_density_fix,
)
def normal_log_prob(case: Case, row: Row) -> None:
    row.call = f"-torch.distributions.Normal(input, {case.scale_name}).log_prob(target).mean()"
    if case.var.size and not bool((case.var > 0).all()):
        row.refuse(
            "torch.distributions.Normal refuses a scale that is not > 0 (its argument "
            "validation, on by default), and var holds 0"
        )
        return
    scale = np.sqrt(case.var)
    log_prob = (
        -((case.t - case.x) ** 2) / (2 * scale**2)
        - np.log(scale)
        - math.log(math.sqrt(2 * math.pi))
    )
    per = np.broadcast_to(-log_prob, case.shape)
    row.fill(mean_of(per, per.size), per)
    _density_clauses(case, row, "Normal.log_prob")


@FAMILY.convention(
    "scipy",
    "SciPy",
    "-scipy.stats.norm.logpdf(target, input, numpy.sqrt(var)).mean()",
    reads=MEANS,
    fix=_density_fix,
)
def scipy(case: Case, row: Row) -> None:
    scale_name = {
        "scalar": "math.sqrt(var)",
        "per_row": "numpy.sqrt(var)[..., None]",
    }.get(case.var_form, "numpy.sqrt(var)")
    row.call = f"-scipy.stats.norm.logpdf(target, input, {scale_name}).mean()"
    scale = np.sqrt(case.var)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = (case.t - case.x) / scale
        logpdf = -(y**2) / 2.0 - math.log(2 * math.pi) / 2.0 - np.log(scale)
    logpdf = np.where(scale > 0, logpdf, np.nan)
    per = np.broadcast_to(-logpdf, case.shape)
    row.fill(mean_of(per, per.size), per)
    _density_clauses(case, row, "norm.logpdf")
    zeros = int(np.count_nonzero(np.broadcast_to(case.var, case.shape) == 0))
    if zeros:
        row.differences.append(
            f"SciPy answers NaN for a scale of 0, and {_count(zeros, 'variance')} of 0 (torch "
            "raises them to eps)"
        )


# -- mistakes ------------------------------------------------------------------------------------


@FAMILY.mistake(
    "gaussian_std_as_var",
    explanation="The standard deviations sqrt(var) passed where gaussian_nll_loss takes the "
    "variances give this: the loss reads each standard deviation σ as a variance.",
    fix="Pass the variance σ² (std ** 2, or exp of a predicted log-variance) as var, not the "
    "standard deviation.",
)
def gaussian_std_as_var(case: Case) -> float | None:
    var = case.request.params.var  # type: ignore[attr-defined]
    return case.request.value_with(var=np.sqrt(np.asarray(var, dtype=np.float64)))


def _constant_explanation(case: Case) -> str:
    if case.full:
        return (
            f"The loss without the constant {_CONSTANT} per element (full=False, torch's "
            "default) gives this, where the request asks for full=True."
        )
    return (
        f"The constant {_CONSTANT} added to each element's loss (full=True, as the Gaussian "
        "log-densities of SciPy and torch.distributions include it) gives this."
    )


@FAMILY.mistake(
    "gaussian_full_constant",
    explanation=_constant_explanation,
    fix=lambda case: (
        f"Add {_CONSTANT} (or pass full=True) to get torch's number for this request."
        if case.full
        else f"Subtract {_CONSTANT}, or pass full=False (torch's default), to get torch's number."
    ),
)
def gaussian_full_constant(case: Case) -> float | None:
    return case.request.value_with(full=not case.full)
