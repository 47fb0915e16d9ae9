"""ctc_loss as each library reduces (and normalises) the same sequences.

Rows, in this order: ``torch`` (the service's reference for the request), ``torch_sum``,
``per_sequence_mean``, ``keras_ctc``, ``hf_wav2vec2`` and ``optax``. Every library computes the
same per-sequence negative log-likelihood -log p(target | frames) by the CTC forward recursion;
they differ in how they reduce the batch, in whether they apply log_softmax to their input, in
which lengths they use, and in what an impossible alignment gives:

- torch ``reduction='mean'``: each sequence's loss divided by its target length (clamped to 1),
  then the mean over the batch; ``zero_infinity`` replaces infinite losses by 0.
- Keras 3 ``keras.ops.ctc_loss``, ``tf.nn.ctc_loss`` and optax take logits, apply log_softmax
  themselves, and return per-sequence losses, which their users average (Keras's default
  reduction, ``tf.reduce_mean``, ``.mean()``): no length division.
- Keras 3 ``keras.losses.CTC()(y_true, y_pred)`` has no lengths: it scores every frame and
  takes as each label length the number of non-zero entries of its row of y_true (0 is its
  blank, fixed), then the mean over the batch.
- transformers' ``Wav2Vec2ForCTC`` (and the other CTC heads): log_softmax of the logits (in
  float32), then torch's ctc_loss with ``reduction=config.ctc_loss_reduction``, "sum" by
  default, ``blank=config.pad_token_id`` and ``zero_infinity=config.ctc_zero_infinity``.
- optax ``ctc_loss(logits, logit_paddings, labels, label_paddings, blank_id)``: its own forward
  recursion over blank and label states, where log 0 is ``log_epsilon = -1e5``: an impossible
  alignment costs about 1e5 per missing frame instead of infinity. Ported here step for step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from service.conventions.base import F64, LOGITS, Row, mean_of
from service.conventions.records import Family, Request
from service.dtypes import LOW_PRECISION
from service.losses.base import I64
from service.losses.common import log_softmax, logsumexp
from service.losses.ctc_loss import NORMALISATION_TOL, CTCParams

LOG_PROBABILITIES = "log-probabilities"
#: optax's stand-in for log 0 (its ``log_epsilon`` default).
OPTAX_LOG_EPSILON = -1e5


@dataclass
class Case:
    log_probs: F64
    """(T, N, C), unbatched requests given a batch of one."""
    labels: I64
    """(N, L) the targets padded with blank, L the longest target length."""
    input_lengths: I64
    target_lengths: I64
    blank: int
    zero_infinity: bool
    unbatched: bool
    padded: bool
    """The request's targets are padded (N, S) (else concatenated)."""
    request: Request
    _per_sequence: dict[tuple[bool, bool], F64 | None] = field(default_factory=dict, repr=False)

    @property
    def losses(self) -> F64:
        """torch's per-sequence losses (N,)."""
        return self.request.losses.reshape(-1)

    @property
    def impossible(self) -> np.ndarray:
        """(N,) the sequences whose target needs more frames than they have (one per label and
        a blank between repeated labels): no alignment, an infinite loss in torch."""
        within = np.arange(self.labels.shape[1])[None, 1:] < self.target_lengths[:, None]
        repeats = ((self.labels[:, 1:] == self.labels[:, :-1]) & within).sum(axis=1)
        out: np.ndarray = self.target_lengths + repeats > self.input_lengths
        return out

    @property
    def normalised(self) -> bool:
        used = np.arange(self.log_probs.shape[0])[:, None] < self.input_lengths[None, :]
        rows = logsumexp(self.log_probs, axis=-1)[used]
        return not rows.size or bool(np.abs(rows).max() <= NORMALISATION_TOL)

    def per_sequence(self, *, normalise: bool, zero_infinity: bool) -> F64 | None:
        """torch's per-sequence losses with log_softmax applied first (``normalise``), as the
        libraries that take logits do, and ``zero_infinity`` as given (computed once per
        request: several rows read them)."""
        key = (normalise, zero_infinity)
        if key not in self._per_sequence:
            lp = self.request.array("log_probs")
            if normalise:
                lp = log_softmax(np.asarray(lp, dtype=np.float64), axis=-1)
            ref = self.request.rerun(log_probs=lp, reduction="none", zero_infinity=zero_infinity)
            self._per_sequence[key] = (
                None if ref is None else np.asarray(ref.losses, dtype=np.float64).reshape(-1)
            )
        return self._per_sequence[key]

    def shaped(self, per: F64) -> F64:
        return per.reshape(self.request.losses.shape)


def case_of(request: Request) -> Case:
    params: CTCParams = request.params  # type: ignore[assignment]
    if params.dtype in LOW_PRECISION:
        # The rows are computed in float64 on the numbers as sent, which skips the loss's own
        # refusal of the dtypes torch has no CTC kernel for: ask the loss, so that the request
        # is refused as POST /v1/losses refuses it.
        request.loss.prepare(params, params.dtype)
    lp = np.asarray(request.array("log_probs"), dtype=np.float64)
    lp3 = lp if lp.ndim == 3 else lp[:, None, :]
    il = np.asarray(request.prep.arrays["input_lengths"]).reshape(-1)
    tl = np.asarray(request.prep.arrays["target_lengths"]).reshape(-1)
    targets = np.asarray(request.prep.arrays["targets"])
    longest = int(tl.max()) if tl.size else 0
    within = np.arange(longest)[None, :] < tl[:, None]
    labels = np.full((tl.size, longest), params.blank, dtype=np.int64)
    if targets.ndim == 1:
        labels[within] = targets
    else:
        labels[within] = targets.reshape(tl.size, -1)[:, :longest][within]
    return Case(
        log_probs=lp3,
        labels=labels,
        input_lengths=il,
        target_lengths=tl,
        blank=params.blank,
        zero_infinity=params.zero_infinity,
        unbatched=lp.ndim == 2,
        padded=request.prep.facts["target_layout"] == "padded",
        request=request,
    )


FAMILY: Family[Case] = Family("ctc_loss", case=case_of)

_SAME = "Nothing to change: this is torch's convention."


def _options(case: Case) -> str:
    out = f", blank={case.blank}" if case.blank else ""
    return out + (", zero_infinity=True" if case.zero_infinity else "")


@FAMILY.convention(
    "torch",
    "PyTorch",
    "torch.nn.functional.ctc_loss(log_probs, targets, input_lengths, target_lengths)",
    reads=LOG_PROBABILITIES,
    fix=_SAME,
)
def torch_row(case: Case, row: Row) -> None:
    row.call = (
        "torch.nn.functional.ctc_loss(log_probs, targets, input_lengths, target_lengths"
        f"{_options(case)})"
    )
    row.fill(case.request.torch_value, case.request.losses)
    row.same = (
        "The request itself: torch divides each sequence's loss by its target length (clamped "
        "to 1), then averages over the batch"
    )


@FAMILY.convention(
    "torch_sum",
    "PyTorch",
    "torch.nn.functional.ctc_loss(log_probs, targets, input_lengths, target_lengths, "
    "reduction='sum')",
    reads=LOG_PROBABILITIES,
    fix=lambda case: (
        f"Divide each sequence's loss by its target length and the total by the batch size "
        f"({case.losses.size}): torch's reduction='mean' does both."
    ),
)
def torch_sum(case: Case, row: Row) -> None:
    row.call = (
        "torch.nn.functional.ctc_loss(log_probs, targets, input_lengths, target_lengths"
        f"{_options(case)}, reduction='sum')"
    )
    value = case.request.value_with(reduction="sum")
    if value is None:  # pragma: no cover - the request itself was accepted
        row.refuse("torch refuses these inputs")
        return
    row.fill(value, case.request.losses)
    row.same = "Same number as torch: every target has one label and the batch one sequence"
    row.reading = (
        "the per-sequence losses added up (reduction='sum'), where torch's mean divides each by "
        "its target length and then by the batch size"
    )


def _takes_logits(case: Case, row: Row, who: str) -> None:
    if not case.normalised:
        row.differences.append(
            f"{who} applies log_softmax to its input (it takes logits), and 'log_probs' is not "
            "normalised here (its frames do not log-sum-exp to 0), so the two read different "
            "numbers"
        )


def _keras_call(case: Case) -> str:
    targets = "targets" if case.padded else "padded_targets"
    lp = "log_probs[:, None]" if case.unbatched else "log_probs"
    lengths = "input_lengths, target_lengths"
    if case.unbatched:
        targets = f"{targets}[None]" if case.padded else targets
        lengths = "[input_lengths], [target_lengths]"
    il, tl = lengths.split(", ")
    return (
        f"keras.ops.ctc_loss({targets}, moveaxis({lp}, 0, 1), {tl}, {il}, "
        f"mask_index={case.blank}).mean()"
    )


@FAMILY.convention(
    "per_sequence_mean",
    "Keras 3 / tf.nn",
    "keras.ops.ctc_loss(targets, moveaxis(log_probs, 0, 1), target_lengths, input_lengths, "
    "mask_index=blank).mean()",
    reads=LOGITS,
    fix="Divide each sequence's loss by its target length before the mean, as torch's "
    "reduction='mean' does (Keras, tf.nn and optax average the per-sequence losses as they are).",
)
def per_sequence_mean(case: Case, row: Row) -> None:
    row.call = _keras_call(case) + "  # tf.reduce_mean(tf.nn.ctc_loss(...)) alike"
    per = case.per_sequence(normalise=True, zero_infinity=False)
    if per is None:  # pragma: no cover - the request itself was accepted
        row.refuse("torch refuses these inputs")
        return
    row.fill(mean_of(per, per.size), case.shaped(per))
    row.same = (
        "Same number as torch: every target has one label, so dividing by the target lengths "
        "changes nothing"
    )
    row.reading = (
        "Keras 3, tf.nn and optax average the per-sequence losses as they are, where torch's mean "
        "divides each by its target length first"
    )
    _takes_logits(case, row, "Keras (and tf.nn)")
    if case.zero_infinity and bool(np.isinf(per).any()):
        row.differences.append(
            "Keras and tf.nn have no zero_infinity: a sequence that cannot be aligned keeps its "
            "infinite loss"
        )
    if row.differences:
        row.differences.insert(0, row.reading)


def _keras_labels(case: Case) -> I64:
    """The (N, S) labels the call passes: the padded targets as sent, or the concatenated ones
    padded with 0 (Keras's mask)."""
    targets = np.asarray(case.request.prep.arrays["targets"])
    if case.padded:
        return targets.reshape(case.target_lengths.size, -1)
    return case.labels


@FAMILY.convention(
    "keras_ctc",
    "Keras 3",
    "keras.losses.CTC()(targets, moveaxis(log_probs, 0, 1))",
    reads=LOGITS,
    fix="keras.losses.CTC scores every frame and counts the non-zero labels: give "
    "keras.ops.ctc_loss the input and target lengths (mask_index=blank), and divide each loss by "
    "its target length before the mean, as torch's reduction='mean' does.",
)
def keras_ctc(case: Case, row: Row) -> None:
    targets = "targets" if case.padded else "padded_targets"
    lp = "log_probs[:, None]" if case.unbatched else "log_probs"
    if case.unbatched and case.padded:
        targets += "[None]"
    row.call = f"keras.losses.CTC()({targets}, moveaxis({lp}, 0, 1))"
    if case.blank != 0:
        row.refuse(
            f"keras.losses.CTC takes class 0 as the blank (its mask_index is fixed at 0); this "
            f"request's blank is {case.blank}"
        )
        return
    labels = _keras_labels(case)
    counted = (labels != 0).sum(axis=1)
    frames = case.log_probs.shape[0]
    lp_all = np.asarray(case.request.array("log_probs"), dtype=np.float64)
    batch = case.target_lengths.size
    ref = case.request.rerun(
        log_probs=log_softmax(lp_all, axis=-1),
        targets=labels,
        input_lengths=np.full(batch, frames) if not case.unbatched else np.asarray(frames),
        target_lengths=counted if not case.unbatched else np.asarray(counted[0]),
        zero_infinity=False,
        reduction="none",
    )
    if ref is None:
        row.refuse(
            "keras.losses.CTC counts every non-zero entry of a row of targets as a label, padding "
            "included, and these rows then hold entries that are not labels (a class outside "
            "[1, C), or the blank 0 before a non-zero one)"
        )
        return
    per = np.asarray(ref.losses, dtype=np.float64).reshape(-1)
    row.fill(mean_of(per, per.size), case.shaped(per))
    row.reading = (
        "no lengths in keras.losses.CTC: it scores every frame of each sequence, counts the "
        "non-zero labels of each row of targets, and averages the per-sequence losses, where "
        "torch's mean divides each by its target length first"
    )
    row.same = (
        "Same number as torch: every sequence uses all its frames and has one label, so the "
        "conventions meet"
    )
    short = int(np.count_nonzero(case.input_lengths < frames))
    if short:
        row.differences.append(
            f"it has no input lengths: {short} sequence(s) shorter than the {frames} frames are "
            "scored over all of them"
        )
    if not np.array_equal(counted, case.target_lengths):
        row.differences.append(
            "it takes the number of non-zero entries of each row of targets as its length, which "
            "differs from target_lengths here"
        )
    _takes_logits(case, row, "Keras")
    if case.zero_infinity and bool(np.isinf(per).any()):
        row.differences.append(
            "Keras has no zero_infinity: a sequence that cannot be aligned keeps its infinite loss"
        )
    if row.differences:
        row.differences.insert(0, row.reading)


@FAMILY.convention(
    "hf_wav2vec2",
    "transformers",
    "transformers.Wav2Vec2ForCTC(config)(input_values, labels=labels).loss",
    reads=LOGITS,
    fix=lambda case: (
        "Set config.ctc_loss_reduction = 'mean' (torch's mean, which divides by the target "
        "lengths), or divide this sum by the batch size and each loss by its target length."
    ),
)
def hf_wav2vec2(case: Case, row: Row) -> None:
    zi = ", ctc_zero_infinity=True" if case.zero_infinity else ""
    row.call = (
        f"transformers.Wav2Vec2ForCTC(config)(input_values, labels=labels).loss  # logits = "
        f"log_probs, config.ctc_loss_reduction='sum' (the default), "
        f"pad_token_id={case.blank}{zi}, labels padded with -100"
    )
    per = case.per_sequence(normalise=True, zero_infinity=case.zero_infinity)
    if per is None:  # pragma: no cover - the request itself was accepted
        row.refuse("torch refuses these inputs")
        return
    row.fill(float(np.float64(per.sum())), case.shaped(per))
    row.reading = (
        "transformers' CTC heads apply log_softmax to the logits (in float32) and pass "
        "ctc_loss_reduction, 'sum' by default, to torch's ctc_loss: the per-sequence losses "
        "added up, without the division by target length and batch size of torch's mean"
    )
    _takes_logits(case, row, "transformers")
    if row.differences:
        row.differences.insert(0, row.reading)


def optax_ctc(
    logits: F64,
    logit_paddings: F64,
    labels: I64,
    label_paddings: F64,
    blank_id: int,
    log_epsilon: float = OPTAX_LOG_EPSILON,
) -> F64:
    """optax's ``ctc_loss_with_forward_probs`` in NumPy: logits (B, T, K), paddings 1.0 where
    padded; per-sequence losses (B,). Blank states φ(n) (n labels emitted) and label states
    e(n) (emitting label n) advance frame by frame; log 0 is ``log_epsilon``."""
    batch, frames, classes = logits.shape
    width = labels.shape[1]
    logprobs = log_softmax(logits, axis=-1)
    labellens = width - label_paddings.sum(axis=1).astype(np.int64)
    repeat = np.zeros((batch, width))
    if width > 1:
        repeat[:, :-1] = labels[:, :-1] == labels[:, 1:]
    phi_lp = logprobs[:, :, blank_id : blank_id + 1]  # (B, T, 1)
    valid = (labels >= 0) & (labels < classes)  # one_hot of an outside label is all zeros
    picked = np.take_along_axis(logprobs, np.clip(labels, 0, classes - 1)[:, None, :], axis=2)
    emit_lp = np.where(valid[:, None, :], picked, 0.0)  # (B, T, N)

    def update(phi: F64, added: F64) -> F64:
        out = phi.copy()
        out[:, 1:] = np.logaddexp(phi[:, 1:], added)
        return out

    phi = np.full((batch, width + 1), log_epsilon)
    phi[:, 0] = 0.0
    emit = np.full((batch, width), log_epsilon)
    for t in range(frames):
        prev_phi_orig = phi
        prev_phi = update(phi, emit + log_epsilon * repeat)
        next_emit = np.logaddexp(prev_phi[:, :-1] + emit_lp[:, t], emit + emit_lp[:, t])
        next_phi = prev_phi + phi_lp[:, t]
        next_phi = update(next_phi, emit + phi_lp[:, t] + log_epsilon * (1.0 - repeat))
        pad = logit_paddings[:, t : t + 1]
        emit = pad * emit + (1.0 - pad) * next_emit
        phi = pad * prev_phi_orig + (1.0 - pad) * next_phi
    last = update(phi, emit)
    out: F64 = -last[np.arange(batch), labellens]
    return out


def _optax_labels(case: Case) -> tuple[I64, F64]:
    """The labels as the call passes them (the padded targets as sent, or the concatenated ones
    padded with blank) and their paddings."""
    targets = np.asarray(case.request.prep.arrays["targets"])
    labels = targets.reshape(case.target_lengths.size, -1) if case.padded else case.labels
    paddings = (np.arange(labels.shape[1])[None, :] >= case.target_lengths[:, None]).astype(
        np.float64
    )
    return labels, paddings


@FAMILY.convention(
    "optax",
    "optax",
    "optax.ctc_loss(logits, logit_paddings, labels, label_paddings, blank_id=blank).mean()",
    reads=LOGITS,
    fix=lambda case: (
        "Divide each sequence's loss by its label length before the mean, as torch's "
        "reduction='mean' does"
        + (
            "; optax's log_epsilon of -1e5 makes an impossible alignment cost about 1e5 per "
            "missing frame, where torch gives infinity (0 with zero_infinity)."
            if bool(case.impossible.any())
            else "."
        )
    ),
)
def optax(case: Case, row: Row) -> None:
    logits = "log_probs[:, None]" if case.unbatched else "log_probs"
    labels_name = "targets" if case.padded else "padded_targets"
    if case.unbatched and case.padded:
        labels_name += "[None]"
    row.call = (
        f"optax.ctc_loss(moveaxis({logits}, 0, 1), logit_paddings, {labels_name}, "
        f"label_paddings, blank_id={case.blank}).mean()  # paddings: 1.0 past each length"
    )
    labels, label_paddings = _optax_labels(case)
    frames = case.log_probs.shape[0]
    logit_paddings = (np.arange(frames)[None, :] >= case.input_lengths[:, None]).astype(np.float64)
    per = optax_ctc(
        np.moveaxis(case.log_probs, 0, 1), logit_paddings, labels, label_paddings, case.blank
    )
    row.fill(mean_of(per, per.size), case.shaped(per))
    row.same = (
        "Same number as torch: every target has one label, so dividing by the target lengths "
        "changes nothing"
    )
    row.reading = (
        "optax averages the per-sequence losses as they are, where torch's mean divides each by "
        "its target length first"
    )
    _takes_logits(case, row, "optax")
    impossible = int(case.impossible.sum())
    if impossible:
        row.differences.append(
            f"{impossible} sequence(s) cannot be aligned: optax's log_epsilon of -1e5 "
            "stands for log 0, so each costs about 1e5 per missing frame, where torch gives "
            "infinity" + (" (0 with zero_infinity)" if case.zero_infinity else "")
        )
    if row.differences:
        row.differences.insert(0, row.reading)


# -- mistakes ------------------------------------------------------------------------------------


@FAMILY.mistake(
    "ctc_no_length_normalisation",
    explanation="Averaging the per-sequence losses without dividing each by its target length "
    "(what Keras, tf.nn and optax return, or reduction='sum' divided by the batch size) gives "
    "this; torch's mean divides each loss by its target length first.",
    fix="Divide each sequence's loss by its target length (clamped to 1) before averaging, as "
    "torch's reduction='mean' does.",
)
def ctc_no_length_normalisation(case: Case) -> float:
    return mean_of(case.losses, case.losses.size)


@FAMILY.mistake(
    "missing_log_softmax",
    explanation="'log_probs' is not normalised (its frames do not log-sum-exp to 0): torch's "
    "number is ctc_loss on these raw scores, and ctc_loss on log_softmax(log_probs), what the "
    "libraries that take logits compute, is this.",
    fix="Apply log_softmax(logits, dim=-1) before ctc_loss: it expects log-probabilities, and on "
    "raw scores its value is not a negative log-likelihood.",
    applies=lambda case: not case.normalised,
)
def missing_log_softmax(case: Case) -> float | None:
    lp = np.asarray(case.request.array("log_probs"), dtype=np.float64)
    return case.request.value_with(log_probs=log_softmax(lp, axis=-1))
