"""The registry of losses: one instance per name, duplicates refused.

Loss modules register themselves with ``@register`` when imported; ``service.losses`` imports
every module of the package, so adding a loss is adding a module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

from service.losses.base import Loss

_REGISTRY: dict[str, Loss[Any]] = {}

L = TypeVar("L", bound=type[Loss[Any]])


class DuplicateLoss(RuntimeError):
    pass


def register(cls: L) -> L:
    """Class decorator: instantiate and register ``cls`` under ``cls.name``."""
    add(cls())
    return cls


def add(loss: Loss[Any]) -> None:
    if loss.name in _REGISTRY:
        raise DuplicateLoss(f"a loss named {loss.name!r} is already registered")
    _REGISTRY[loss.name] = loss


def get(name: str) -> Loss[Any] | None:
    return _REGISTRY.get(name)


def names() -> list[str]:
    return sorted(_REGISTRY)


def all_losses() -> Iterator[Loss[Any]]:
    for name in names():
        yield _REGISTRY[name]
