"""Helpers for the loss-specific tests: does the service refuse what torch refuses?

Torch in-process is the oracle. ``torch_refuses`` runs the functional call and reports whether
torch raised; ``service_refuses`` runs the data plane and reports the field it named (None when
it computed). A shape rule mirrors torch when the two agree on every case.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

from service.dataplane import Dataplane
from service.errors import InvalidInput
from service.losses import registry
from service.losses.base import Loss

#: (input shape, another tensor's shape): equal, broadcasting into the input, enlarging it,
#: not broadcasting, and empty, for the losses whose tensors must fit the input's shape.
SHAPE_PAIRS: list[tuple[tuple[int, ...], tuple[int, ...]]] = [
    ((2, 3), (2, 3)),
    ((2, 3), (3,)),
    ((2, 3), (2, 1)),
    ((2, 3), (1, 3)),
    ((2, 3), ()),
    ((2, 3), (1,)),
    ((2, 3), (2,)),
    ((2, 3), (1, 2, 3)),
    ((2, 3), (3, 1)),
    ((3,), (2, 3)),
    ((), (1,)),
    ((), (3,)),
    ((2, 0), (1,)),
    ((2, 0), (2, 1)),
    ((2, 3), (6,)),
    ((2, 1, 3), (4, 3)),
]


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


def assert_refuses_as_torch_does(
    dataplane: Dataplane, loss: Loss[Any], tensors: dict[str, torch.Tensor], field: str
) -> None:
    """The service refuses ``tensors`` exactly when torch does, and then names ``field``."""
    refused = service_refuses(dataplane, loss, {k: v.tolist() for k, v in tensors.items()})
    fn = getattr(torch.nn.functional, loss.name)
    assert (refused is not None) == torch_refuses(lambda: fn(**tensors))
    assert refused in (None, field)


def assert_both_refuse(
    dataplane: Dataplane,
    name: str,
    body: dict[str, Any],
    field: str,
    torch_call: Callable[[], object],
    torch_raises: type[Exception] | tuple[type[Exception], ...] = (RuntimeError, ValueError),
) -> None:
    """The service refuses ``body`` for the loss ``name`` naming ``field``, and torch (called by
    ``torch_call`` on the same body) raises ``torch_raises``."""
    with pytest.raises(InvalidInput) as info:
        compute(dataplane, name, body)
    assert info.value.field == field
    with pytest.raises(torch_raises):
        torch_call()


def codes(out: dict[str, Any]) -> set[str]:
    return {w["code"] for w in out["warnings"]}


def warning(out: dict[str, Any], code: str) -> dict[str, Any]:
    (found,) = [w for w in out["warnings"] if w["code"] == code]
    result: dict[str, Any] = found
    return result


def f64(values: Any) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)
