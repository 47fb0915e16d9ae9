"""Helpers for the loss-specific tests: does the service refuse what torch refuses?

Torch in-process is the oracle. ``torch_refuses`` runs the functional call and reports whether
torch raised; ``service_refuses`` runs the data plane and reports the field it named (None when
it computed). A shape rule mirrors torch when the two agree on every case.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from service.dataplane import Dataplane
from service.errors import InvalidInput
from service.losses import registry
from service.losses.base import Loss


def torch_refuses(call: Callable[[], torch.Tensor]) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            call()
        except (RuntimeError, ValueError, IndexError, TypeError):
            return True
    return False


def service_refuses(dataplane: Dataplane, loss: Loss[Any], body: dict[str, Any]) -> str | None:
    try:
        dataplane.compute(loss, body)
    except InvalidInput as exc:
        return exc.field
    return None


def compute(
    dataplane: Dataplane, name: str, body: dict[str, Any], dtype: str = "float64"
) -> dict[str, Any]:
    """The service's response to ``body`` for the loss called ``name``, computed in ``dtype``."""
    return dataplane.compute(registry.require(name), body | {"dtype": dtype})


def codes(out: dict[str, Any]) -> set[str]:
    return {w["code"] for w in out["warnings"]}


def warning(out: dict[str, Any], code: str) -> dict[str, Any]:
    (found,) = [w for w in out["warnings"] if w["code"] == code]
    result: dict[str, Any] = found
    return result


def f64(values: Any) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)
