"""ctc_loss's oracles: torch itself, Keras 3's ``ops.ctc_loss`` on the torch backend and optax's
``ctc_loss`` on JAX called here; transformers' Wav2Vec2ForCTC loss from the lines of its source
that compute it (transformers is not installed: its CTC heads need a whole model around the
loss), written here with torch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tests.conventions.oracles import Body, cases, mistake, row
from tests.conventions.oracles.libraries import jax, jnp, keras, optax
from tests.conventions.oracles.tools import assert_close, per

CTC = "ctc_loss"
_rng = np.random.default_rng(41)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    return np.asarray(torch.log_softmax(torch.tensor(z), dim=-1))


def _body(
    frames: int, classes: int, targets: list[list[int]], input_lengths: list[int], **extra: Any
) -> Body:
    """Normalised log_probs (T, N, C) and padded targets (padding 0)."""
    n = len(targets)
    width = max(1, max(len(t) for t in targets))
    padded = [t + [0] * (width - len(t)) for t in targets]
    return {
        "log_probs": _log_softmax(_rng.standard_normal((frames, n, classes)) * 1.5).tolist(),
        "targets": padded,
        "input_lengths": input_lengths,
        "target_lengths": [len(t) for t in targets],
    } | extra


_raw = _body(8, 5, [[1, 2, 3], [4, 4], [2]], [8, 7, 6])
_raw["log_probs"] = (_rng.standard_normal((8, 3, 5)) * 2).tolist()
_concat = _body(10, 5, [[1, 2, 1, 2], [2], [4, 1, 1]], [10, 9, 10], blank=3)
_concat["targets"] = [2, 0, 2, 0, 1, 4, 1, 1]  # blank 3: the labels avoid it
_concat["target_lengths"] = [4, 1, 3]
_unbatched = _body(9, 5, [[1, 3, 2]], [9])
_unbatched = {
    "log_probs": np.asarray(_unbatched["log_probs"])[:, 0].tolist(),
    "targets": [1, 3, 2],
    "input_lengths": 9,
    "target_lengths": 3,
}
CASES: dict[str, Body] = {
    "padded": _body(12, 5, [[1, 2, 3, 4], [2, 2], [3], [1, 4, 2]], [12, 10, 7, 9]),
    "one label each": _body(6, 5, [[1], [3], [2]], [6, 4, 5]),
    "concatenated, blank 3": _concat,
    "unbatched": _unbatched,
    "empty targets": _body(5, 5, [[], [1], []], [5, 3, 0]),
    "impossible alignments, zero_infinity": _body(
        4, 5, [[1, 1, 1], [2, 3], [1]], [4, 2, 0], zero_infinity=True
    ),
    "impossible alignment": _body(5, 5, [[1, 2, 2, 3], [2]], [4, 5]),
    "raw scores": _raw,
    "padding past the lengths": _body(7, 5, [[1, 2], [3]], [7, 6])
    | {"targets": [[1, 2, 99, -5], [3, 0, 7, 7]]},
}
cases(CTC, CASES)


class Sequences:
    """The body as the libraries take it: batch first, padded labels with their lengths."""

    def __init__(self, body: Body) -> None:
        lp = np.asarray(body["log_probs"], dtype=np.float64)
        self.lp = lp if lp.ndim == 3 else lp[:, None, :]
        self.il = np.asarray(body["input_lengths"]).reshape(-1)
        self.tl = np.asarray(body["target_lengths"]).reshape(-1)
        self.blank = body.get("blank", 0)
        targets = np.asarray(body["targets"])
        if targets.ndim == 1:  # concatenated: pad with blank
            width = int(self.tl.max()) if self.tl.size else 0
            self.labels = np.full((self.tl.size, width), self.blank, dtype=np.int64)
            starts = np.concatenate([[0], np.cumsum(self.tl)[:-1]])
            for i, (s, n) in enumerate(zip(starts, self.tl, strict=True)):
                self.labels[i, :n] = targets[s : s + n]
        else:
            self.labels = targets.reshape(self.tl.size, -1).astype(np.int64)
        self.zero_infinity = body.get("zero_infinity", False)


def _torch(body: Body, **overrides: Any) -> torch.Tensor:
    b = body | overrides
    lp = b["log_probs"]
    return F.ctc_loss(
        lp if isinstance(lp, torch.Tensor) else torch.tensor(lp, dtype=torch.float64),
        torch.tensor(b["targets"], dtype=torch.int64),
        torch.tensor(b["input_lengths"], dtype=torch.int64),
        torch.tensor(b["target_lengths"], dtype=torch.int64),
        blank=b.get("blank", 0),
        reduction=b.get("reduction", "mean"),
        zero_infinity=b.get("zero_infinity", False),
    )


@row(CTC, "torch")
def torch_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    assert_close(got["value"], _torch(body))
    assert_close(got["per_sample"], _torch(body, reduction="none"))


@row(CTC, "torch_sum")
def torch_sum_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    assert_close(got["value"], _torch(body, reduction="sum"))


@row(CTC, "per_sequence_mean")
def keras_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    """keras.ops.ctc_loss on the batch-first logits, then the mean (tf.nn.ctc_loss followed by
    tf.reduce_mean, and optax's mean, reduce the same way)."""
    s = Sequences(body)
    losses = keras.ops.ctc_loss(
        torch.tensor(s.labels),
        torch.tensor(np.moveaxis(s.lp, 0, 1)),
        torch.tensor(s.tl),
        torch.tensor(s.il),
        mask_index=s.blank,
    )
    # Keras casts the logits to result_type(dtype, "float32"), which is float32 on the torch
    # backend even for float64 tensors: the float32 default the README speaks of.
    assert losses.dtype == torch.float32
    want = np.asarray(losses, dtype=np.float64)
    assert_close(per(got), want, rel=1e-6)
    assert_close(got["value"], want.mean(), rel=1e-6)


@row(CTC, "hf_wav2vec2")
def hf_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    """Wav2Vec2ForCTC.forward's loss (transformers' modeling_wav2vec2.py), with the logits
    (B, T, C) and labels padded with -100:

        labels_mask = labels >= 0
        target_lengths = labels_mask.sum(-1)
        flattened_targets = labels.masked_select(labels_mask)
        log_probs = nn.functional.log_softmax(logits, dim=-1, dtype=torch.float32).transpose(0, 1)
        loss = nn.functional.ctc_loss(log_probs, flattened_targets, input_lengths,
            target_lengths, blank=self.config.pad_token_id,
            reduction=self.config.ctc_loss_reduction, zero_infinity=self.config.ctc_zero_infinity)

    with ctc_loss_reduction "sum" (its default), in float64 here (float32 there)."""
    s = Sequences(body)
    logits = torch.tensor(np.moveaxis(s.lp, 0, 1))
    within = np.arange(s.labels.shape[1])[None, :] < s.tl[:, None]
    labels = torch.tensor(np.where(within, s.labels, -100))
    labels_mask = labels >= 0
    log_probs = F.log_softmax(logits, dim=-1, dtype=torch.float64).transpose(0, 1)
    want = F.ctc_loss(
        log_probs,
        labels.masked_select(labels_mask),
        torch.tensor(s.il),
        labels_mask.sum(-1),
        blank=s.blank,
        reduction="sum",
        zero_infinity=s.zero_infinity,
    )
    assert_close(got["value"], want)


#: optax's ctc_loss compiled once per blank id; each case is padded to one shape (frames,
#: sequences and label columns marked as padding, which optax's paddings leave out of the
#: result), so that JAX compiles its scan once rather than once per case.
_optax_ctc = jax.jit(optax.ctc_loss, static_argnames=("blank_id",))
_BATCH, _FRAMES, _WIDTH = 4, 12, 4


@row(CTC, "optax")
def optax_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    s = Sequences(body)
    frames, batch, classes = s.lp.shape
    width = s.labels.shape[1]
    assert batch <= _BATCH, "grow the padded shape"
    assert frames <= _FRAMES, "grow the padded shape"
    assert width <= _WIDTH, "grow the padded shape"
    logits = np.zeros((_BATCH, _FRAMES, classes))
    logits[:batch, :frames] = np.moveaxis(s.lp, 0, 1)
    logit_paddings = np.ones((_BATCH, _FRAMES))
    logit_paddings[:batch] = np.arange(_FRAMES)[None, :] >= s.il[:, None]
    labels = np.full((_BATCH, _WIDTH), -1, dtype=np.int64)  # -1 repeats no label
    labels[:batch, :width] = s.labels
    label_paddings = np.ones((_BATCH, _WIDTH))
    label_paddings[:batch] = np.arange(_WIDTH)[None, :] >= s.tl[:, None]
    losses = _optax_ctc(
        jnp.asarray(logits),
        jnp.asarray(logit_paddings),
        jnp.asarray(labels),
        jnp.asarray(label_paddings),
        blank_id=s.blank,
    )
    assert losses.dtype == jnp.float64
    want = np.asarray(losses)[:batch]
    assert_close(per(got), want, rel=1e-10)
    assert_close(got["value"], want.mean(), rel=1e-10)


@mistake(CTC, "ctc_no_length_normalisation")
def per_sequence_average(loss: str, body: Body) -> float:
    return float(_torch(body, reduction="none").mean())


@mistake(CTC, "missing_log_softmax")
def log_softmax_first(loss: str, body: Body) -> float:
    lp = torch.log_softmax(torch.tensor(body["log_probs"], dtype=torch.float64), dim=-1)
    return float(_torch(body, log_probs=lp))


@row(CTC, "keras_ctc")
def keras_loss_oracle(loss: str, body: Body, got: dict[str, Any]) -> None:
    """keras.losses.CTC on the batch-first logits and the padded targets as they are (padded
    with 0 where concatenated). Where the blank is not 0, or a row's non-zero entries (which
    Keras counts as its labels) include padding that is not a class, or a 0 before a label,
    torch's CTC would read them as labels: the row refuses."""
    s = Sequences(body)
    targets = np.asarray(body["targets"])
    labels = targets.reshape(s.tl.size, -1) if targets.ndim == 2 else s.labels
    counted = (labels != 0).sum(axis=1)
    classes = s.lp.shape[-1]
    read = [row[:n] for row, n in zip(labels, counted, strict=True)]
    if s.blank != 0 or any(((r < 1) | (r >= classes)).any() for r in read):
        assert "error" in got, got
        return
    losses = keras.losses.CTC(reduction=None)(labels, np.moveaxis(s.lp, 0, 1))
    assert_close(per(got), np.asarray(losses, dtype=np.float64), rel=1e-6)  # float32, as above
    mean = keras.losses.CTC()(labels, np.moveaxis(s.lp, 0, 1))
    assert_close(got["value"], float(mean), rel=1e-6)
