"""``POST /v1/diagnose/{name}``: which convention or which mistake produces the user's number.

The body is the loss's request plus ``observed`` (the number the user got elsewhere, finite)
and an optional ``rtol`` (default 1e-4, so that a float32 result matches). The loss's own
validation runs first, then torch on the request as ``POST /v1/losses/<name>`` runs it (its
value is the answer's ``torch``, and its refusals are the loss's), then the reduction rule of
the conventions, then ``observed`` and ``rtol``.

The candidates are the loss's convention rows that give a number (refusals are left out) and
its mistakes that apply to the request and change the number (a mistake whose number is
torch's explains nothing, one without a finite number produces nothing). Each candidate's
``relative_difference`` is ``|value - observed| / |observed|`` (0 or infinity for an observed
0). Values that agree to 12 significant digits are one number: such candidates share the first
one's relative difference and are listed the ``torch`` row first, then mistakes, then the other
conventions, each in declaration order, so the order is the same whatever the last bits.
``matches`` are those within ``rtol``; with none, ``message`` says that nothing explains the
number (the field is present only then).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from service.conventions.base import close
from service.conventions.compare import check_reduction, entry_of
from service.conventions.records import Convention, Mistake, Request, word
from service.errors import InvalidInput

if TYPE_CHECKING:
    from service.dataplane import Dataplane

DEFAULT_RTOL = 1e-4
#: Candidates whose values agree within this (relative) are one number.
SAME_NUMBER = 1e-12
#: Fields of the diagnose body beside the loss's keyword arguments.
FIELDS = ("observed", "rtol")

_MISSING: Any = object()
TORCH_FIX = "Nothing to change: this is the value torch computes for the request."


@dataclass
class Candidate:
    id: str
    kind: str
    value: float
    explanation: str
    fix: str
    rank: int
    """0 the torch row, 1 a mistake, 2 another convention: the order among equal numbers."""
    order: int
    relative_difference: float = math.inf

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "value": self.value,
            "relative_difference": self.relative_difference,
            "explanation": self.explanation,
            "fix": self.fix,
        }


def diagnose_json(dataplane: Dataplane, name: str, raw: bytes | bytearray) -> dict[str, Any]:
    """Parse a JSON body and diagnose; raises ``ServiceError`` on bad input."""
    loss, _ = entry_of(dataplane, name)
    body, may_hold_bools = dataplane.parse(loss, raw)
    return diagnose(dataplane, loss.name, body, may_hold_bools=may_hold_bools)


def diagnose(
    dataplane: Dataplane, name: str, body: Any, *, may_hold_bools: bool = True
) -> dict[str, Any]:
    loss, entry = entry_of(dataplane, name)
    observed_in: Any = _MISSING
    rtol_in: Any = _MISSING
    if isinstance(body, dict):
        body = dict(body)
        observed_in = body.pop("observed", _MISSING)
        rtol_in = body.pop("rtol", _MISSING)
    params = dataplane.validate(loss, body, may_hold_bools=may_hold_bools)
    torch_value = dataplane.torch_value(loss, params)
    check_reduction(entry, params)
    observed = _observed(observed_in)
    rtol = _rtol(rtol_in)
    prep = loss.prepare(params, "float64")
    with np.errstate(all="ignore"):
        ref = loss.reference(params, prep, frozenset())
        request = Request(loss, params, prep, ref)
        found = candidates(entry.conventions, entry.mistakes, request)
    ranked = rank(found, observed)
    matches = [c for c in ranked if c.relative_difference <= rtol]
    out: dict[str, Any] = {
        "name": loss.name,
        "observed": observed,
        "torch": torch_value,
        "matches": [c.as_dict() for c in matches],
        "candidates": [c.as_dict() for c in ranked],
    }
    if not matches:
        closest = f"; the closest is {ranked[0].id!r} ({_shown(ranked[0].value)})" if ranked else ""
        out["message"] = (
            f"No convention or known mistake explains {observed!r} within rtol {rtol:g} "
            f"(torch gives {_shown(float(torch_value))}{closest})."
        )
    return out


def candidates(conventions: Any, mistakes: Any, request: Request) -> list[Candidate]:
    out: list[Candidate] = []
    torch_value = request.torch_value
    for order, bound in enumerate(conventions):
        record: Convention[Any] = bound.record
        case = bound.case(request)
        if not record.applies(case):
            continue
        row = record.row(case)
        if row.error is not None:
            continue
        is_torch = row.id == "torch"
        explanation = row.why(close(row.value, torch_value))
        fix = TORCH_FIX if is_torch else (row.fix or word(record.fix, case))
        out.append(
            Candidate(
                row.id, "convention", row.value, explanation, fix, 0 if is_torch else 2, order
            )
        )
    for order, bound in enumerate(mistakes):
        mistake: Mistake[Any] = bound.record
        case = bound.case(request)
        if not mistake.applies(case):
            continue
        value = mistake.compute(case)
        if value is None or not math.isfinite(value) or _same(value, torch_value):
            continue
        out.append(
            Candidate(
                mistake.id,
                "mistake",
                float(value),
                word(mistake.explanation, case),
                word(mistake.fix, case),
                1,
                order,
            )
        )
    return out


def rank(found: list[Candidate], observed: float) -> list[Candidate]:
    """``found`` sorted by relative difference to ``observed``, equal numbers grouped."""
    by_value = sorted(found, key=lambda c: (not math.isfinite(c.value), c.value))
    group: list[Candidate] = []
    for c in by_value:
        if group and not _same(c.value, group[-1].value):
            _settle(group, observed)
            group = []
        group.append(c)
    _settle(group, observed)
    return sorted(found, key=lambda c: (c.relative_difference, c.rank, c.order))


def _settle(group: list[Candidate], observed: float) -> None:
    if not group:
        return
    first = min(group, key=lambda c: (c.rank, c.order))
    rd = _relative(first.value, observed)
    for c in group:
        c.relative_difference = rd


def _relative(value: float, observed: float) -> float:
    if not math.isfinite(value):
        return math.inf
    diff = abs(value - observed)
    if observed == 0:
        return 0.0 if diff == 0 else math.inf
    return diff / abs(observed)


def _same(a: float, b: float) -> bool:
    if not (math.isfinite(a) and math.isfinite(b)):
        return a == b or (math.isnan(a) and math.isnan(b))
    return abs(a - b) <= SAME_NUMBER * max(abs(a), abs(b))


def _shown(x: float) -> str:
    return f"{x:.6g}" if math.isfinite(x) else str(x)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        out = float(value)
    except OverflowError:
        return None
    return out if math.isfinite(out) else None


def _observed(value: Any) -> float:
    if value is _MISSING:
        raise InvalidInput.at(
            "observed", "missing: send the number you got elsewhere, to be explained"
        )
    out = _number(value)
    if out is None:
        raise InvalidInput.at(
            "observed", f"must be a finite number (the value you got), not {_kind(value)}"
        )
    return out


def _rtol(value: Any) -> float:
    if value is _MISSING:
        return DEFAULT_RTOL
    out = _number(value)
    if out is None or out < 0:
        what = _kind(value) if out is None else repr(value)
        raise InvalidInput.at("rtol", f"must be a non-negative finite number, not {what}")
    return out


def _kind(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return "an array" if isinstance(value, list) else "an object"
    return repr(value)
