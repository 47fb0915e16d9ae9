"""What every convention row is made of, and how a row is compared with torch's.

A row stands for one library's call on the request's numbers. It is computed here in NumPy
float64 from that library's own algorithm (its clips, renormalisation, smoothing and the
division its mean makes), never by importing the library: the service stays small, and the
tests import the real libraries to check each row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

#: ``keras.backend.epsilon()``: Keras clips probabilities to [1e-7, 1 - 1e-7].
KERAS_EPSILON = 1e-7
#: scikit-learn's clip since 1.5 (``log_loss`` dropped its ``eps`` argument): the machine
#: epsilon of the predictions' dtype, float64 here.
SKLEARN_EPSILON = float(np.finfo(np.float64).eps)
#: Rows agree with torch within this: the libraries' float32 defaults alone move a value by
#: about 1e-7 relative, so a closer match would call the same convention different.
AGREEMENT_RTOL = 1e-6
AGREEMENT_ATOL = 1e-9

#: Names that begin a sentence in lower case, as their projects write them.
_LOWERCASE_NAMES = frozenset({"scikit-learn", "optax", "tf.nn", "nll_loss", "log_loss"})

PROBABILITIES = "probabilities"
LOGITS = "logits"


@dataclass
class Row:
    """One convention: a value and its per-sample losses, or the library's refusal."""

    id: str
    library: str
    call: str
    reads_input_as: str = LOGITS
    value: float = math.nan
    per_sample: F64 | None = None
    differences: list[str] = field(default_factory=list)
    """Why the value differs from torch's, one clause each (options mapped or left out)."""
    reading: str = ""
    """The clause saying how the row reads the input, used when nothing else differs."""
    same: str = ""
    """The sentence used when the row agrees with torch and nothing differs."""
    error: str | None = None
    fix: str = ""
    """What to change in that library to get torch's number, where the record's own ``fix``
    does not say it for this request."""

    def refuse(self, reason: str) -> None:
        """The library would refuse these inputs: the row says why and has no value."""
        self.error = reason

    def fill(self, value: float, per_sample: F64 | None) -> None:
        self.value = value
        self.per_sample = per_sample

    def as_dict(self, torch_value: float) -> dict[str, Any]:
        if self.error is not None:
            return {"id": self.id, "library": self.library, "call": self.call, "error": self.error}
        agrees = close(self.value, torch_value)
        return {
            "id": self.id,
            "library": self.library,
            "call": self.call,
            "reads_input_as": self.reads_input_as,
            "value": self.value,
            "per_sample": self.per_sample,
            "agrees_with_torch": agrees,
            "why": self.why(agrees),
        }

    def why(self, agrees: bool) -> str:
        """One sentence: the differences, or the reading, or that it is torch's convention."""
        if self.differences:
            text = "; ".join(self.differences)
        elif agrees and self.same:
            text = self.same
        else:
            text = self.reading or self.same
        if not text:
            return ""
        if text.split(" ", 1)[0] not in _LOWERCASE_NAMES:
            text = text[0].upper() + text[1:]
        return text if text.endswith(".") else text + "."


def close(a: float, b: float) -> bool:
    """Agreement of two float64 values; NaN and infinities agree only with themselves."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= AGREEMENT_ATOL + AGREEMENT_RTOL * abs(b)


def mean_of(values: F64, count: float) -> float:
    """``sum / count`` in float64, NaN over nothing (torch's mean of an empty set)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(values.sum()) / np.float64(count))


def xlogy(x: F64, y: F64) -> F64:
    """x·log y with 0·log 0 = 0 (scipy's ``xlogy``, which scikit-learn uses)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out: F64 = np.where(x == 0, 0.0, x * np.log(y))
    return out


def outside_unit_interval(x: F64) -> float | None:
    """The first value of ``x`` outside [0, 1], or None."""
    bad = x[(x < 0) | (x > 1)]
    return float(bad.flat[0]) if bad.size else None


def softplus(z: F64) -> F64:
    """log(1 + e^z), without overflow."""
    out: F64 = np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
    return out
