"""The reference-vs-torch harness every loss's tests share.

Torch is the oracle: ``oracle`` calls ``torch.nn.functional.<name>`` in-process with the
request's tensors and keyword arguments, independently of the service's own torch call.
Tolerances come from the loss (the per-dtype table with the loss's overrides), never from
if-chains in test bodies.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from service import losses
from service.dataplane import Dataplane
from service.dtypes import TORCH_DTYPES
from service.losses import registry
from service.losses.base import Loss, LossParams, Prepared, Sample, Tolerance

losses.load()

SEED = 20261127

#: Keyword arguments whose JSON form is not the value torch takes.
TRANSLATED = frozenset({"distance_function", "options"})


def all_samples() -> Iterator[tuple[Loss[Any], int, Sample]]:
    for loss in registry.all_losses():
        rng = np.random.default_rng(SEED)
        for i, sample in enumerate(loss.samples(rng)):
            yield loss, i, sample


def sample_id(loss: Loss[Any], i: int, sample: Sample) -> str:
    return f"{loss.name}-{i}-{sample.note}".replace(" ", "_")


def prepared(
    dataplane: Dataplane, loss: Loss[Any], body: dict[str, Any], dtype: str
) -> tuple[LossParams, Prepared]:
    params = dataplane.validate(loss, body | {"dtype": dtype})
    return params, loss.prepare(params, dtype)


def torch_inputs(prep: Prepared, dtype: str, grad: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    out = {}
    for name, arr in prep.arrays.items():
        t = torch.from_numpy(np.array(arr))
        t = t.to(TORCH_DTYPES[dtype] if name in prep.floating else torch.int64)
        if name in grad and name in prep.floating:
            t.requires_grad_(True)
        out[name] = t
    return out


def oracle(loss: Loss[Any], params: LossParams, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """``torch.nn.functional.<name>(**tensors, **kwargs)``, called here, not by the service."""
    fn = getattr(torch.nn.functional, loss.name)
    kwargs = {
        k: getattr(params, k)
        for k in type(params).model_fields
        if k not in {"dtype", "reference", "include"}
        and k not in tensors
        and k not in loss.tensor_inputs
    }
    # JSON carries a distance function or an options record by name; torch takes the callable
    # or the dataclass the loss builds from it (the only part of the call taken from the service).
    kwargs |= {k: v for k, v in loss.torch_options(params).items() if k in TRANSLATED}
    with warnings.catch_warnings():
        # Torch's own UserWarnings (shapes that broadcast, ...) are for the service to report, and
        # the losses' own tests check that it does; the oracle only computes.
        warnings.simplefilter("ignore", UserWarning)
        result: torch.Tensor = fn(**tensors, **kwargs)
    return result


def as_f64(t: torch.Tensor) -> npt.NDArray[np.float64]:
    return t.detach().to(torch.float64).numpy()


def assert_agrees(
    got: npt.NDArray[Any], want: npt.NDArray[Any], tol: Tolerance, scale: float, what: str
) -> None:
    """NaN and infinities must sit at the same places; finite values within the tolerance."""
    a = np.asarray(got, dtype=np.float64)
    b = np.asarray(want, dtype=np.float64)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{what}: NaN positions")
    finite = np.isfinite(a) & np.isfinite(b)
    np.testing.assert_array_equal(a[~finite & ~np.isnan(a)], b[~finite & ~np.isnan(b)])
    np.testing.assert_allclose(
        a[finite], b[finite], rtol=tol.rtol, atol=tol.atol * scale, err_msg=what
    )
