"""The families of conventions, assembled per loss.

Each family module constructs one ``Family`` when imported; ``load`` imports every module of the
package that is not infrastructure, as ``service.losses`` does for the losses. ``entry(name)``
assembles what one loss has: its reductions, its convention rows and its mistakes (its family's
and the shared ones it takes), in declaration order, refusing two records with one id.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any

from service.conventions.records import Convention, Family, Mistake, Request
from service.errors import NotFound

#: Modules of the package that hold machinery, not families.
INFRASTRUCTURE = frozenset({"base", "records", "registry", "compare", "diagnose", "shared"})

_FAMILIES: list[Family[Any]] = []
_loaded = False


class DuplicateRecord(RuntimeError):
    pass


def add(family: Family[Any]) -> None:
    _FAMILIES.append(family)
    entry.cache_clear()


def load() -> None:
    """Import every family module of the package (idempotent)."""
    global _loaded
    if _loaded:
        return
    from service import conventions

    for info in sorted(pkgutil.iter_modules(conventions.__path__), key=lambda m: m.name):
        if info.name not in INFRASTRUCTURE and not info.name.startswith("_"):
            importlib.import_module(f"{conventions.__name__}.{info.name}")
    _loaded = True


@dataclass(frozen=True)
class Bound:
    """A record with the family that computes it."""

    family: Family[Any]
    record: Convention[Any] | Mistake[Any]
    shared: bool = False
    """A shared mistake: computed on the ``Request`` rather than the family's case."""

    @property
    def id(self) -> str:
        return self.record.id

    def case(self, request: Request) -> Any:
        return request if self.shared else request.case(self.family.case)

    def applies(self, request: Request) -> Any:
        case = self.case(request)
        return case if self.record.applies(case) else None


@dataclass(frozen=True)
class LossEntry:
    """Everything one loss has: what ``/v1/conventions`` and ``/v1/diagnose`` compute."""

    name: str
    reductions: tuple[str, ...]
    conventions: tuple[Bound, ...]
    mistakes: tuple[Bound, ...]

    @property
    def row_ids(self) -> list[str]:
        return [b.id for b in self.conventions]

    @property
    def mistake_ids(self) -> list[str]:
        return [b.id for b in self.mistakes]


def _covers(record: Convention[Any] | Mistake[Any], name: str) -> bool:
    return record.losses is None or name in record.losses


@functools.cache
def entry(name: str) -> LossEntry | None:
    """What the loss ``name`` (functional name) has, or None when it has no conventions."""
    load()
    families = [f for f in _FAMILIES if name in f.losses]
    conventions = tuple(Bound(f, r) for f in families for r in f.conventions if _covers(r, name))
    if not conventions:
        return None
    mistakes = tuple(Bound(f, r) for f in families for r in f.mistakes if _covers(r, name))
    mistakes += tuple(
        Bound(f, r, shared=True) for f in families for r in f.shared if _covers(r, name)
    )
    seen: set[str] = set()
    for bound in conventions + mistakes:
        if bound.id in seen:
            raise DuplicateRecord(f"{name}: two records with the id {bound.id!r}")
        seen.add(bound.id)
    reductions = {f.reductions for f in families if f.conventions}
    if len(reductions) != 1:
        raise DuplicateRecord(f"{name}: its families disagree on the reductions {reductions}")
    return LossEntry(name, reductions.pop(), conventions, mistakes)


def names() -> list[str]:
    """Every loss that has conventions, sorted."""
    load()
    return sorted({n for f in _FAMILIES for n in f.losses if entry(n) is not None})


def has(name: str) -> bool:
    return entry(name) is not None


def require(name: str) -> LossEntry:
    """The entry of the functional name ``name``; a 404 naming those that have one."""
    found = entry(name)
    if found is None:
        raise NotFound(f"no conventions for {name!r}; they exist for {', '.join(names())}")
    return found
