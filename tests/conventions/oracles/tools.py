"""What the oracles share: the request's tensors built from the body (never by the service's
own ``prepare``), torch's loss on them, and one float64 comparison."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

F64 = npt.NDArray[np.float64]


def assert_close(got: Any, want: Any, rel: float = 1e-12, what: str = "") -> None:
    """float64 agreement; NaN equals NaN, and infinities equal themselves."""
    got_a = np.asarray(got, dtype=np.float64)
    want_a = np.asarray(want, dtype=np.float64)
    np.testing.assert_allclose(got_a, want_a, rtol=rel, atol=1e-12, equal_nan=True, err_msg=what)


def per(row: dict[str, Any]) -> F64:
    return np.asarray(row["per_sample"], dtype=np.float64).reshape(-1)


def tensor(value: Any, *, integer: bool = False) -> torch.Tensor:
    """A body's list as torch takes it: float64, or int64 for class indices and lengths."""
    arr = np.asarray(value)
    if integer:
        return torch.tensor(arr.astype(np.int64))
    return torch.tensor(arr.astype(np.float64))


#: Arguments of each loss that torch takes as integer tensors.
INTEGER_ARGUMENTS = frozenset({"input_lengths", "target_lengths"})
TENSOR_ARGUMENTS = frozenset(
    {
        "input",
        "target",
        "weight",
        "pos_weight",
        "var",
        "input1",
        "input2",
        "anchor",
        "positive",
        "negative",
        "log_probs",
        "targets",
        "input_lengths",
        "target_lengths",
    }
)


def torch_kwargs(loss: str, body: dict[str, Any]) -> dict[str, Any]:
    """The body as torch's keyword arguments (class indices as int64, the rest float64)."""
    out: dict[str, Any] = {}
    x = np.asarray(body.get("input", 0.0))
    for key, value in body.items():
        if key in ("dtype", "reference", "include"):
            continue
        if key in TENSOR_ARGUMENTS and value is not None:
            integer = key in INTEGER_ARGUMENTS
            if key in ("target", "targets") and loss in ("cross_entropy", "nll_loss", "ctc_loss"):
                integer = np.asarray(value).shape != x.shape or loss == "ctc_loss"
            if key == "target" and loss in ("multi_margin_loss", "multilabel_margin_loss"):
                integer = True
            out[key] = tensor(value, integer=integer)
        else:
            out[key] = value
    return out


def torch_loss(loss: str, body: dict[str, Any], **overrides: Any) -> float:
    """``torch.nn.functional.<loss>`` on the body, in float64, with ``overrides`` applied
    (tensors given as lists or arrays are converted like the body's)."""
    kwargs = torch_kwargs(loss, body | overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl_div's 'mean', shapes that broadcast
        return float(getattr(F, loss)(**kwargs))
