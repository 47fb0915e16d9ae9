"""The oracles of the convention rows and the mistakes, found by importing this package.

Each module here holds one family's oracles, independent of the service's code: its request
bodies (``cases``), for each row id a function that checks the row the service computed
against the library it stands for, called in-process (``@row``), and for each mistake id a
function that produces the user's number the way the mistake does, with torch or the library
(``@mistake``). ``tests/conventions/test_records.py`` generates the tests from the service's
records and looks the oracles up here: a record without its oracle fails there, so there is no
list of ids to keep in step.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

Body = dict[str, Any]
RowOracle = Callable[[str, Body, dict[str, Any]], None]
"""(loss, body, the service's row) -> None; asserts that the row is the library's answer."""
MistakeOracle = Callable[[str, Body], float]
"""(loss, body) -> the number the mistake produces for the request, computed independently."""

CASES: dict[str, list[tuple[str, Body]]] = {}
ROWS: dict[tuple[str, str], RowOracle] = {}
MISTAKES: dict[tuple[str, str], MistakeOracle] = {}
SHARED_MISTAKES: dict[str, MistakeOracle] = {}

_INFRASTRUCTURE = frozenset({"libraries", "tools"})
_loaded = False


def cases(loss: str, bodies: dict[str, Body]) -> None:
    """Request bodies of ``loss`` that every oracle of the loss runs on."""
    CASES.setdefault(loss, []).extend(bodies.items())


def _names(losses: str | tuple[str, ...]) -> tuple[str, ...]:
    return (losses,) if isinstance(losses, str) else losses


def row(losses: str | tuple[str, ...], id: str) -> Callable[[RowOracle], RowOracle]:
    def add(fn: RowOracle) -> RowOracle:
        for loss in _names(losses):
            assert (loss, id) not in ROWS, f"two oracles for {loss}'s row {id}"
            ROWS[loss, id] = fn
        return fn

    return add


def mistake(losses: str | tuple[str, ...], id: str) -> Callable[[MistakeOracle], MistakeOracle]:
    def add(fn: MistakeOracle) -> MistakeOracle:
        for loss in _names(losses):
            assert (loss, id) not in MISTAKES, f"two oracles for {loss}'s mistake {id}"
            MISTAKES[loss, id] = fn
        return fn

    return add


def shared_mistake(id: str) -> Callable[[MistakeOracle], MistakeOracle]:
    """The oracle of a mistake of ``service.conventions.shared``, for every loss taking it."""

    def add(fn: MistakeOracle) -> MistakeOracle:
        SHARED_MISTAKES[id] = fn
        return fn

    return add


def mistake_oracle(loss: str, id: str) -> MistakeOracle | None:
    return MISTAKES.get((loss, id)) or SHARED_MISTAKES.get(id)


def load() -> None:
    global _loaded
    if _loaded:
        return
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name not in _INFRASTRUCTURE:
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True
