"""Connectionist temporal classification: ``torch.nn.functional.ctc_loss``.

``log_probs`` (T, N, C), or (T, C) for one sequence, holds log-probabilities over C classes
(``blank`` among them) for each of T frames; sample b uses its first ``input_lengths[b]`` frames
and its label sequence l of ``target_lengths[b]`` labels. With the extended sequence
l' = (blank, l_1, blank, l_2, ..., l_L, blank) of length 2L + 1, the forward variables

    α_0(0) = y_0(blank),  α_0(1) = y_0(l_1),
    α_t(s) = y_t(l'_s) · (α_{t-1}(s) + α_{t-1}(s-1) + k_s·α_{t-1}(s-2)),
    k_s = [l'_s ≠ blank and l'_s ≠ l'_{s-2}]

(y = exp(log_probs), computed in log space) give the likelihood of all alignments,
p(l | x) = α_{T_b-1}(2L) + α_{T_b-1}(2L-1), and the loss is -log p(l | x). A target that needs
more frames than it has (L plus one blank between each pair of repeated labels) has no alignment
and an infinite loss; ``zero_infinity`` replaces those losses (and their gradients) by 0. An
input of length 0 has loss 0 for an empty target and ∞ otherwise.

``targets`` comes in torch's two layouts: padded (N, S) with S >= max target length (entries past
each length are ignored), or 1-D concatenated, of length sum(target_lengths). Torch checks the
shapes, lengths and ``blank``, but not the labels: a label outside [0, C) reads memory outside
the tensor and one equal to ``blank`` gives a number that is not a CTC loss, so the service
refuses both. Torch's CTC kernels exist for float32 and float64 only.

Reductions: ``none`` gives the N losses (a 0-dim value for unbatched input); ``sum`` their sum;
``mean`` divides each loss by its target length clamped to >= 1, then averages over the batch,
which is not a sum over one denominator (the response's ``denominator`` is null; the breakdown's
``mean_term`` holds each averaged term).

Gradient: with the backward variables β (defined symmetrically, both including y_t) and the
posterior occupancy γ_t(c) = Σ_{s: l'_s = c} α_t(s)·β_t(s) / (y_t(c)·p(l | x)), the derivative
of -log p with respect to log_probs[t, c] is -γ_t(c). Torch's autograd returns
exp(log_probs[t, c]) - γ_t(c) instead (Graves et al. 2006, eq. 16: the gradient with respect to
the logits of a log_softmax, which gives the same end result when log_probs does come from
log_softmax, since each row of exp(log_probs) then sums to 1); the reference reproduces torch's
convention, scaled by the reduction's weight, and 0 for frames past the input length. The
optional extra ``posterior`` returns γ itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field

from service.dtypes import LOW_PRECISION
from service.errors import InvalidInput, LimitExceeded
from service.losses.base import (
    F64,
    I64,
    ErrorSample,
    Loss,
    LossParams,
    LossWarning,
    Prepared,
    Reduction,
    Reference,
    Sample,
    Tensor,
)
from service.losses.common import floating, integral, logsumexp, require_rank, scale_of, shape_str
from service.losses.reduction import REDUCTIONS, reduce
from service.losses.registry import register

NEG_INF = -np.inf

#: How far a row's log Σ exp may stray from 0 before log_probs is called unnormalised.
NORMALISATION_TOL = 1e-3

#: Most frames T: the reference's recursions step through frames in Python, some 20 to 40 µs a
#: frame for the forward pass and three times that with the gradient, so 50,000 frames (over
#: eight minutes of audio at 10 ms a frame) cost seconds, not minutes.
MAX_FRAMES = 50_000


class CTCParams(LossParams):
    log_probs: Tensor = Field(
        description="Log-probabilities (log_softmax over classes), shape (T, N, C) or (T, C)."
    )
    targets: Tensor = Field(
        description="Labels in [0, C), none equal to blank: padded (N, S) or concatenated "
        "(sum(target_lengths))."
    )
    input_lengths: Tensor = Field(description="Frames used by each sample, (N) or (), <= T.")
    target_lengths: Tensor = Field(description="Labels in each target, (N) or (), >= 0.")
    blank: int = Field(default=0, ge=0, description="Index of the blank class, < C.")
    reduction: Reduction = "mean"
    zero_infinity: bool = Field(
        default=False,
        description="Replace infinite losses (no alignment) and their gradients by 0.",
    )


@dataclass(frozen=True)
class _Batch:
    """The request in one layout: (T, N, C) log-probabilities and padded labels."""

    log_probs: F64
    labels: I64
    input_lengths: I64
    target_lengths: I64


@register
class CTCLoss(Loss[CTCParams]):
    name = "ctc_loss"
    module = "CTCLoss"
    warning_codes = frozenset(
        {
            "infinite_loss",
            "infinite_losses_zeroed",
            "log_probs_not_normalised",
        }
    )
    summary = "Negative log-likelihood of a label sequence over all its CTC alignments."
    formula = "loss = -log Σ_{alignments π of l} Π_t y_t(π_t)  (forward algorithm in log space)"
    params_model = CTCParams
    tensor_inputs = ("log_probs", "targets", "input_lengths", "target_lengths")
    differentiable = ("log_probs",)
    extras = ("posterior",)

    def prepare(self, params: CTCParams, dtype: str) -> Prepared:
        if dtype in LOW_PRECISION:
            raise InvalidInput.at(
                "dtype", f"torch has no {dtype} CTC kernel; use float32 or float64"
            )
        lp = params.log_probs
        require_rank(lp, "log_probs", "(T, N, C) or (T, C)", lp.ndim in (2, 3))
        if lp.size == 0:
            raise InvalidInput.at("log_probs", f"must not be empty (shape {shape_str(lp.shape)})")
        frames, batch, classes = lp.shape if lp.ndim == 3 else (lp.shape[0], 1, lp.shape[1])
        if frames > MAX_FRAMES:
            raise InvalidInput.at(
                "log_probs", f"{frames} frames; the service computes at most {MAX_FRAMES}"
            )
        if params.blank >= classes:
            raise InvalidInput.at(
                "blank", f"{params.blank} is not a class index: log_probs has {classes} classes"
            )
        lengths = {}
        for field, upper in (("input_lengths", frames), ("target_lengths", None)):
            arr = integral(getattr(params, field), field, "lengths")
            if arr.size != batch:
                raise InvalidInput.at(
                    field, f"{arr.size} lengths for a batch of {batch} (log_probs' dimension 1)"
                )
            flat = arr.ravel()
            if flat.size and flat.min() < 0:
                raise InvalidInput.at(field, f"length {int(flat.min())} is negative")
            if upper is not None and flat.size and flat.max() > upper:
                raise InvalidInput.at(
                    field, f"length {int(flat.max())} exceeds the {upper} frames of log_probs"
                )
            lengths[field] = arr
        tl = lengths["target_lengths"].ravel()
        states = 2 * (int(tl.max()) if tl.size else 0) + 1
        # Torch's CTC allocates every cell T·N·(2·max target length + 1) of the lattice (and the
        # reference as many for a gradient) whatever the size of the body: one tensor's worth.
        lattice_limit = params.limits.max_elements
        if frames * batch * states > lattice_limit:
            raise LimitExceeded.at(
                "target_lengths",
                f"the CTC lattice of {frames} frames x {batch} samples x {states} states (twice "
                f"the longest target, plus one) has more than {lattice_limit} cells; torch "
                "allocates it whole",
            )
        targets = integral(params.targets, "targets", "labels")
        if targets.ndim == 1:
            layout = "concatenated"
            if targets.size != int(tl.sum()):
                raise InvalidInput.at(
                    "targets",
                    f"1-D (concatenated) targets hold {targets.size} labels but target_lengths "
                    f"sum to {int(tl.sum())}",
                )
            valid = targets
        elif targets.ndim == 2:
            layout = "padded"
            longest = int(tl.max()) if tl.size else 0
            if targets.shape[0] != batch or targets.shape[1] < longest:
                raise InvalidInput.at(
                    "targets",
                    f"padded targets of shape {shape_str(targets.shape)} need {batch} rows of at "
                    f"least {longest} labels (the batch size and the longest target length)",
                )
            valid = targets[np.arange(targets.shape[1]) < tl[:, None]]
        else:
            raise InvalidInput.at(
                "targets",
                f"rank {targets.ndim} (shape {shape_str(targets.shape)}); expected padded (N, S) "
                "or concatenated 1-D targets",
            )
        bad = (valid < 0) | (valid >= classes)
        if bad.any():
            raise InvalidInput.at(
                "targets",
                f"label {int(valid[bad][0])} is outside [0, {classes}) (torch does not check and "
                "reads outside log_probs)",
            )
        if (valid == params.blank).any():
            raise InvalidInput.at(
                "targets",
                f"label {params.blank} is the blank; a target sequence holds non-blank labels "
                "only (torch does not check and returns a value that is not a CTC loss)",
            )
        arrays: dict[str, npt.NDArray[Any]] = {
            "log_probs": floating(lp, dtype),
            "targets": targets,
            **lengths,
        }
        return Prepared(
            arrays=arrays,
            floating=frozenset({"log_probs"}),
            facts={"target_layout": layout},
            scale=_path_scale(arrays["log_probs"], lengths["input_lengths"].ravel()),
        )

    def reference(self, params: CTCParams, prep: Prepared, include: frozenset[str]) -> Reference:
        b = _batch(prep, params.blank)
        lat = _Lattice.of(b, params.blank)
        want_lattice = bool(include & {"grad", "posterior"})
        ll, alphas = _forward(b, lat, keep=want_lattice)
        nll = -ll
        zeroed = (nll == np.inf) & params.zero_infinity
        per_sample = np.where(zeroed, 0.0, nll)
        divisor = np.maximum(b.target_lengths, 1).astype(np.float64)
        mean_term = per_sample / divisor
        batched = prep.arrays["log_probs"].ndim == 3
        shape = per_sample.shape if batched else ()
        if params.reduction == "mean":
            value = reduce(mean_term, "mean")
        else:
            value = reduce(per_sample.reshape(shape), params.reduction)
        breakdown: dict[str, Any] = {
            "log_likelihood": ll,
            "input_length": b.input_lengths,
            "target_length": b.target_lengths,
            "min_input_length": _min_frames(b),
            "mean_term": mean_term,
        }
        if params.zero_infinity:
            breakdown["zeroed"] = zeroed
        ref = Reference(
            value=value,
            losses=per_sample.reshape(shape),
            denominator=None,
            breakdown={k: np.asarray(v).reshape(shape) for k, v in breakdown.items()},
        )
        if alphas is not None:
            posterior = _posterior(b, lat, alphas, nll)
            if "posterior" in include:
                ref.extras["posterior"] = _layout(posterior, batched)
            if "grad" in include:
                weight = {
                    "mean": 1.0 / (divisor * max(divisor.size, 1)),
                    "sum": np.ones_like(divisor),
                    "none": np.ones_like(divisor),
                }[params.reduction]
                grad = (np.exp(b.log_probs) - posterior) * weight[None, :, None]
                frames = np.arange(b.log_probs.shape[0])[:, None] < b.input_lengths[None, :]
                # Torch: NaN where the loss is infinite, 0 past the input and where zeroed.
                grad = np.where((nll == np.inf)[None, :, None], np.nan, grad)
                grad = np.where((frames & ~zeroed[None, :])[..., None], grad, 0.0)
                ref.grads["log_probs"] = _layout(grad, batched)
        return ref

    def warnings(self, params: CTCParams, prep: Prepared) -> list[LossWarning]:
        out: list[LossWarning] = []
        b = _batch(prep, params.blank)
        used = np.arange(b.log_probs.shape[0])[:, None] < b.input_lengths[None, :]
        rows = logsumexp(b.log_probs, axis=-1)[used]
        off = np.abs(rows) > NORMALISATION_TOL
        if off.any():
            lp = b.log_probs[used]
            looks = (
                "probabilities (all in [0, 1])"
                if lp.min() >= 0 and lp.max() <= 1
                else "logits"
                if lp.max() > 0
                else "unnormalised log-scores"
            )
            out.append(
                LossWarning(
                    "log_probs_not_normalised",
                    f"{int(off.sum())} of {rows.size} frames of log_probs do not log-sum-exp to 0 "
                    f"over the classes (worst: {float(rows[np.argmax(np.abs(rows))]):.4g}); they "
                    f"look like {looks}. ctc_loss expects log_softmax output: otherwise the value "
                    "is not a negative log-likelihood (it can be negative), and torch's gradient, "
                    "exp(log_probs) - posterior, is not the derivative of the value.",
                    {"frames": int(off.sum())},
                )
            )
        need = _min_frames(b)
        short = np.flatnonzero(need > b.input_lengths)
        if short.size:
            shown = ", ".join(
                f"sample {int(i)} needs {int(need[i])} frames, has {int(b.input_lengths[i])}"
                for i in short[:5]
            )
            if params.zero_infinity:
                out.append(
                    LossWarning(
                        "infinite_losses_zeroed",
                        f"{short.size} target(s) cannot be aligned to their input ({shown}); "
                        "zero_infinity set their losses and gradients to 0, and they still count "
                        "in the batch for 'mean'.",
                        {"samples": short.tolist()},
                    )
                )
            else:
                out.append(
                    LossWarning(
                        "infinite_loss",
                        f"{short.size} target(s) cannot be aligned to their input ({shown}: each "
                        "label needs a frame, and repeated labels a blank between them), so "
                        "their loss is infinite, and so is a 'sum' or 'mean'. Check "
                        "input_lengths and target_lengths, or pass zero_infinity=true to zero "
                        "these losses.",
                        {"samples": short.tolist()},
                    )
                )
        return out

    def example(self) -> dict[str, Any]:
        rng = np.random.default_rng(0)
        logits = rng.standard_normal((5, 2, 4)).round(3)
        return {
            "log_probs": _log_softmax(logits).round(6).tolist(),
            "targets": [[1, 2], [3, 0]],
            "input_lengths": [5, 4],
            "target_lengths": [2, 1],
        }

    def samples(self, rng: np.random.Generator) -> Iterator[Sample]:
        yield Sample(self.example(), "example")
        for reduction in REDUCTIONS:
            for layout in ("padded", "concatenated"):
                for blank in (0, 4):
                    case = _random_case(rng, frames=12, batch=4, classes=5, blank=blank)
                    yield Sample(
                        _body(case, layout) | {"blank": blank, "reduction": reduction},
                        f"{layout} blank={blank} {reduction}",
                    )
            case = _random_case(rng, frames=9, batch=1, classes=4, blank=0)
            yield Sample(
                _body(case, "concatenated", unbatched=True) | {"reduction": reduction},
                f"unbatched {reduction}",
            )
            yield Sample(
                _body(case, "padded", unbatched=True) | {"reduction": reduction},
                f"unbatched, padded (1, S) targets {reduction}",
            )
            case = _random_case(rng, frames=10, batch=3, classes=4, blank=0)
            case["targets"][:] = 0
            case["target_lengths"][:] = 0
            yield Sample(
                _body(case, "padded", width=0) | {"reduction": reduction},
                f"empty targets {reduction}",
            )
            yield Sample(
                _body(case, "concatenated") | {"reduction": reduction},
                f"empty concatenated targets {reduction}",
            )
            case = _random_case(rng, frames=6, batch=5, classes=4, blank=0)
            case["targets"] = np.array(
                [[2, 2, 2, 0], [1, 3, 0, 0], [1, 2, 0, 0], [1, 1, 2, 2], [3, 0, 0, 0]]
            )
            case["target_lengths"] = np.array([3, 2, 0, 4, 1])
            # 0: needs 5 frames, has 3; 2: empty input, empty target; 3: needs 6, has 5;
            # 4: empty input, one label.
            case["input_lengths"] = np.array([3, 6, 0, 5, 0])
            yield Sample(
                _body(case, "padded") | {"zero_infinity": True, "reduction": reduction},
                f"impossible alignments zeroed, zero-length inputs {reduction}",
            )
            yield Sample(
                _body(case, "concatenated") | {"zero_infinity": True, "reduction": reduction},
                f"impossible alignments zeroed, concatenated {reduction}",
            )
            case = _random_case(rng, frames=5, batch=2, classes=3, blank=0)
            case["targets"] = np.array([[1, 1, 1], [2, 1, 2]])
            case["target_lengths"] = np.array([3, 3])
            case["input_lengths"] = np.array([5, 3])
            yield Sample(
                _body(case, "padded") | {"reduction": reduction},
                f"tight: just enough frames {reduction}",
            )
        case = _random_case(rng, frames=40, batch=3, classes=6, blank=0, scale=3.0)
        yield Sample(_body(case, "padded"), "longer sequences, peaked distributions")
        case = _random_case(rng, frames=8, batch=3, classes=5, blank=2)
        yield Sample(
            _body(case, "padded") | {"zero_infinity": True, "blank": 2},
            "zero_infinity with every alignment possible, blank 2",
        )
        case = _random_case(rng, frames=8, batch=2, classes=4, blank=0)
        unnormalised = (case["log_probs"] + rng.uniform(-1.0, 1.5, (8, 2, 1))).tolist()
        yield Sample(
            _body(case, "padded") | {"log_probs": unnormalised, "reduction": "none"},
            "unnormalised log_probs (warned; torch's gradient convention)",
        )
        probs = np.exp(case["log_probs"]).tolist()
        yield Sample(_body(case, "padded") | {"log_probs": probs}, "probabilities passed (warned)")
        yield Sample(
            _body(case, "padded")
            | {"input_lengths": np.asarray(case["input_lengths"]).reshape(1, 2).tolist()},
            "input_lengths of shape (1, N), as torch accepts",
        )
        wide = _body(case, "padded", width=7)
        wide["targets"] = [[*row, 99, -5, 0, 7] for row in wide["targets"]]
        yield Sample(wide, "padding past the lengths is ignored, whatever it holds")

    def error_samples(self) -> Iterator[ErrorSample]:
        ok = self.example()
        yield ErrorSample(ok | {"targets": [[1, 4], [3, 0]]}, "targets", "label = C")
        yield ErrorSample(ok | {"targets": [[1, -2], [3, 0]]}, "targets", "negative label")
        yield ErrorSample(ok | {"targets": [[1, 0], [3, 0]]}, "targets", "label = blank")
        yield ErrorSample(
            ok | {"targets": [1, 2, 3], "blank": 3}, "targets", "label = non-zero blank"
        )
        yield ErrorSample(ok | {"targets": [[1.5, 2], [3, 0]]}, "targets", "fractional label")
        yield ErrorSample(ok | {"targets": [1, 2]}, "targets", "concatenated too short")
        yield ErrorSample(ok | {"targets": [1, 2, 3, 1]}, "targets", "concatenated too long")
        yield ErrorSample(ok | {"targets": [[1], [3]]}, "targets", "padded narrower than a length")
        yield ErrorSample(ok | {"targets": [[1, 2]]}, "targets", "padded rows != batch")
        yield ErrorSample(ok | {"targets": [[[1, 2], [3, 0]]]}, "targets", "3-D targets")
        yield ErrorSample(ok | {"input_lengths": [6, 4]}, "input_lengths", "longer than T")
        yield ErrorSample(ok | {"input_lengths": [-1, 4]}, "input_lengths", "negative")
        yield ErrorSample(ok | {"input_lengths": [5]}, "input_lengths", "one length for two")
        yield ErrorSample(ok | {"input_lengths": [5, 4.5]}, "input_lengths", "fractional")
        yield ErrorSample(ok | {"target_lengths": [2, -1]}, "target_lengths", "negative")
        yield ErrorSample(ok | {"target_lengths": [2, 1, 0]}, "target_lengths", "three for two")
        yield ErrorSample(ok | {"blank": 4}, "blank", "blank = C")
        yield ErrorSample(ok | {"blank": -1}, "blank", "negative blank")
        yield ErrorSample(ok | {"blank": 0.0}, "blank", "float blank")
        yield ErrorSample(ok | {"zero_infinity": "true"}, "zero_infinity", "string flag")
        yield ErrorSample(ok | {"reduction": "batchmean"}, "reduction", "unknown reduction")
        yield ErrorSample(ok | {"log_probs": [0.1, 0.2]}, "log_probs", "1-D log_probs")
        yield ErrorSample(ok | {"log_probs": [[[]]]}, "log_probs", "no classes")
        yield ErrorSample(ok | {"dtype": "float16"}, "dtype", "no half-precision kernel")
        yield ErrorSample(ok | {"include": ["alignment"]}, "include", "unknown extra")
        yield ErrorSample({"log_probs": ok["log_probs"]}, "targets", "missing targets")


def _path_scale(log_probs: F64, input_lengths: I64) -> float:
    """The absolute scale of the comparison: the largest Σ_t max_c |log_probs[t, c]| of a sample.

    It bounds the magnitude of any partial path's log-probability, which is what a float32 CTC
    rounds: torch's float32 gradient of a 500-frame sequence differs from its own float64 one by
    about 1e-3, that is eps32 times the log-likelihoods involved, not eps32 times one input."""
    lp3 = log_probs if log_probs.ndim == 3 else log_probs[:, None, :]
    used = np.arange(lp3.shape[0])[:, None] < input_lengths[None, :]
    per_sample = np.where(used, np.abs(lp3).max(axis=-1), 0.0).sum(axis=0)
    return max(scale_of(log_probs), float(per_sample.max()))


def _batch(prep: Prepared, blank: int) -> _Batch:
    """The request as (T, N, C) log-probabilities and (N, L_max) labels padded with ``blank``."""
    lp = prep.arrays["log_probs"]
    lp3 = lp if lp.ndim == 3 else lp[:, None, :]
    il = prep.arrays["input_lengths"].ravel()
    tl = prep.arrays["target_lengths"].ravel()
    targets = prep.arrays["targets"]
    longest = int(tl.max()) if tl.size else 0
    within = np.arange(longest)[None, :] < tl[:, None]
    labels = np.full((tl.size, longest), blank, dtype=np.int64)
    if targets.ndim == 1:
        labels[within] = targets
    else:
        labels[within] = targets[:, :longest][within]
    return _Batch(lp3, labels, il, tl)


@dataclass(frozen=True)
class _Lattice:
    """The extended label sequences l' (padded with blanks to 2L_max + 1 states), which of
    their states exist, and where the skip s-2 -> s is allowed (a label differing from the
    label two states back)."""

    ext: I64
    exists: npt.NDArray[np.bool_]
    skip: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, b: _Batch, blank: int) -> _Lattice:
        n, longest = b.labels.shape
        ext = np.full((n, 2 * longest + 1), blank, dtype=np.int64)
        ext[:, 1::2] = b.labels
        exists = np.arange(ext.shape[1])[None, :] < (2 * b.target_lengths + 1)[:, None]
        skip = np.zeros(ext.shape, dtype=bool)
        skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
        return cls(ext, exists, skip)

    def emit(self, b: _Batch, t: int) -> F64:
        """log y_t(l'_s) for every sample and state (N, S'); -inf for states that do not exist."""
        rows = np.arange(self.ext.shape[0])[:, None]
        out: F64 = np.where(self.exists, b.log_probs[t][rows, self.ext], NEG_INF)
        return out


def _shift(x: F64, by: int) -> F64:
    """``x`` moved ``by`` states along the last axis (right for by > 0), filled with -inf."""
    out = np.full_like(x, NEG_INF)
    if by > 0:
        out[:, by:] = x[:, :-by]
    else:
        out[:, :by] = x[:, -by:]
    return out


def _logsumexp3(a: F64, b: F64, c: F64) -> F64:
    """log(e^a + e^b + e^c) element-wise, shifted by the maximum (-inf where all are -inf);
    one log and three exps, a third of the cost of two nested ``np.logaddexp``."""
    m = np.maximum(np.maximum(a, b), c)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out: F64 = np.log(np.exp(a - m) + np.exp(b - m) + np.exp(c - m)) + m
    return out


def _forward(b: _Batch, lat: _Lattice, keep: bool) -> tuple[F64, F64 | None]:
    """log p(l | x) per sample by the forward recursion, and with ``keep`` every α_t (T, N, S').

    Samples advance together, one past its input length staying put; without ``keep`` the
    memory is one (N, S') array per step (torch's own CTC holds the whole (N, T, S') lattice)."""
    frames = b.log_probs.shape[0]
    alpha = np.full(lat.ext.shape, NEG_INF)
    first = lat.emit(b, 0)
    alpha[:, :2] = first[:, :2]
    alphas = np.full((frames, *alpha.shape), NEG_INF) if keep else None
    if alphas is not None:
        alphas[0] = alpha
    for t in range(1, frames):
        step = _logsumexp3(alpha, _shift(alpha, 1), np.where(lat.skip, _shift(alpha, 2), NEG_INF))
        alpha = np.where(np.greater(b.input_lengths, t)[:, None], step + lat.emit(b, t), alpha)
        if alphas is not None:
            alphas[t] = alpha
    rows = np.arange(b.log_probs.shape[1])
    last = 2 * b.target_lengths
    ll = alpha[rows, last]
    ll = np.where(b.target_lengths > 0, np.logaddexp(ll, alpha[rows, np.maximum(last - 1, 0)]), ll)
    ll = np.where(b.input_lengths > 0, ll, np.where(b.target_lengths == 0, 0.0, NEG_INF))
    return ll, alphas


def _posterior(b: _Batch, lat: _Lattice, alphas: F64, nll: F64) -> F64:
    """γ_t(c), the probability that frame t emits class c given the target (T, N, C), from the
    backward recursion run alongside the stored α: γ_t(c) = Σ_{s: l'_s = c} α_t(s)·β_t(s) /
    (y_t(c)·p). 0 past each input length, NaN where the target has no alignment."""
    frames, n, classes = b.log_probs.shape
    rows = np.arange(n)
    last = 2 * b.target_lengths
    with_labels = np.flatnonzero(b.target_lengths > 0)
    ends = b.input_lengths - 1
    skip_next = np.zeros_like(lat.skip)  # may state s+2 follow state s?
    skip_next[:, :-2] = lat.skip[:, 2:]
    # Flat (b, class) indices for summing the states of each class with one bincount per frame.
    cells = (rows[:, None] * classes + lat.ext).ravel()
    out = np.zeros((frames, n, classes))
    beta = np.full(lat.ext.shape, NEG_INF)
    for t in range(frames - 1, -1, -1):
        emit = lat.emit(b, t)
        start = np.full(lat.ext.shape, NEG_INF)  # β at each sample's last frame
        start[rows, last] = emit[rows, last]
        start[with_labels, last[with_labels] - 1] = emit[with_labels, last[with_labels] - 1]
        step = _logsumexp3(beta, _shift(beta, -1), np.where(skip_next, _shift(beta, -2), NEG_INF))
        beta = np.where(
            np.equal(ends, t)[:, None],
            start,
            np.where(np.greater(ends, t)[:, None], step + emit, NEG_INF),
        )
        with np.errstate(invalid="ignore"):
            occupancy = np.exp(alphas[t] + beta - emit + nll[:, None])
        occupancy = np.where(np.isnan(occupancy), 0.0, occupancy)
        out[t] = np.bincount(cells, occupancy.ravel(), n * classes).reshape(n, classes)
    out = np.where((nll == np.inf)[None, :, None], np.nan, out)
    used = np.arange(frames)[:, None] < b.input_lengths[None, :]
    result: F64 = np.where(used[..., None], out, 0.0)
    return result


def _layout(per_frame: F64, batched: bool) -> F64:
    """A (T, N, C) array in the request's layout: (T, C) for unbatched log_probs."""
    return per_frame if batched else per_frame[:, 0]


def _min_frames(b: _Batch) -> I64:
    """Frames a target needs: one per label plus a blank between equal neighbours."""
    within = np.arange(b.labels.shape[1])[None, 1:] < b.target_lengths[:, None]
    repeats = ((b.labels[:, 1:] == b.labels[:, :-1]) & within).sum(axis=1)
    need: I64 = b.target_lengths + repeats
    return need


def _log_softmax(x: F64) -> F64:
    shifted = x - x.max(axis=-1, keepdims=True)
    out: F64 = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return out


def _random_case(
    rng: np.random.Generator,
    *,
    frames: int,
    batch: int,
    classes: int,
    blank: int,
    scale: float = 1.0,
) -> dict[str, Any]:
    """Normalised log_probs and targets that can all be aligned (checked by _min_frames)."""
    log_probs = _log_softmax(rng.standard_normal((frames, batch, classes)) * scale)
    labels = [c for c in range(classes) if c != blank]
    input_lengths = rng.integers(frames // 2, frames + 1, batch)
    input_lengths[0] = frames
    width = max(1, frames // 3)
    targets = rng.choice(labels, size=(batch, width))
    target_lengths = rng.integers(0, width + 1, batch)
    target_lengths[0] = width
    for i in range(batch):
        while True:
            row = targets[i, : target_lengths[i]]
            need = target_lengths[i] + int((row[1:] == row[:-1]).sum())
            if need <= input_lengths[i]:
                break
            target_lengths[i] -= 1
    return {
        "log_probs": log_probs,
        "targets": targets,
        "input_lengths": input_lengths,
        "target_lengths": target_lengths,
    }


def _body(
    case: dict[str, Any], layout: str, *, unbatched: bool = False, width: int | None = None
) -> dict[str, Any]:
    lp = case["log_probs"]
    targets = case["targets"]
    tl = case["target_lengths"]
    if width is not None:
        targets = targets[:, :width]
    if layout == "concatenated":
        targets = np.concatenate([row[:n] for row, n in zip(targets, tl, strict=True)])
    body: dict[str, Any] = {
        "log_probs": (lp[:, 0] if unbatched else lp).tolist(),
        "targets": targets.tolist(),
        "input_lengths": case["input_lengths"].tolist(),
        "target_lengths": tl.tolist(),
    }
    if unbatched:
        body["input_lengths"] = int(case["input_lengths"][0])
        body["target_lengths"] = int(tl[0])
    return body
