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


def _loaded() -> dict[str, Loss[Any]]:
    """The registry after every loss module has been imported (lookups never see half of it)."""
    from service import losses

    losses.load()
    return _REGISTRY


def get(name: str) -> Loss[Any] | None:
    return _loaded().get(name)


def require(name: str) -> Loss[Any]:
    """The loss named ``name``; a KeyError when there is none (for code that knows it exists)."""
    return _loaded()[name]


def names() -> list[str]:
    return sorted(_loaded())


def all_losses() -> Iterator[Loss[Any]]:
    registry = _loaded()
    for name in sorted(registry):
        yield registry[name]
