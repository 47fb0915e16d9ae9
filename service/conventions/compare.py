"""``POST /v1/conventions/{name}``: the request read as every library reads it.

The body is that of ``POST /v1/losses/<name>``, validated by the same model and the same checks
(so refused identically), then limited to the reductions the loss's rows compare (``mean``;
``kl_div`` also ``batchmean`` and ``sum``). The request is prepared in float64 on the numbers as
sent: the rows differ by convention, not by rounding. The ``torch`` row is the service's float64
reference for the request, the numbers ``POST /v1/losses/<name>`` reports beside torch's value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from service.conventions import registry
from service.conventions.base import Row
from service.conventions.records import Request
from service.conventions.registry import LossEntry
from service.errors import InvalidInput
from service.losses.base import LossParams

if TYPE_CHECKING:
    from service.dataplane import Dataplane
    from service.losses.base import Loss


def entry_of(dataplane: Dataplane, name: str) -> tuple[Loss[Any], LossEntry]:
    """The loss answering to ``name`` (functional or module name) and its conventions: a 404
    suggesting the closest names for an unknown loss, a 404 listing those that have
    conventions for a loss without them."""
    loss = dataplane.loss(name)
    return loss, registry.require(loss.name)


def check_reduction(entry: LossEntry, params: LossParams) -> None:
    reduction = getattr(params, "reduction", "mean")
    if reduction in entry.reductions:
        return
    allowed = entry.reductions
    if allowed == ("mean",):
        rule = "reduction must be 'mean'"
    else:
        rule = "reduction must be " + ", ".join(repr(r) for r in allowed[:-1])
        rule += f" or {allowed[-1]!r}"
    raise InvalidInput.at(
        "reduction", f"conventions compare reduced values: {rule}, got {reduction!r}"
    )


def request_of(
    dataplane: Dataplane,
    loss: Loss[Any],
    entry: LossEntry,
    params: LossParams,
) -> Request:
    """The validated request in float64, checked as the loss checks it, then for its
    reduction, with the service's reference (torch's convention) computed on it."""
    prep = loss.prepare(params, "float64")
    check_reduction(entry, params)
    with np.errstate(all="ignore"):
        ref = loss.reference(params, prep, frozenset())
    return Request(loss, params, prep, ref)


def rows(entry: LossEntry, request: Request) -> list[Row]:
    """Every convention row that exists for the request, in declaration order."""
    out: list[Row] = []
    with np.errstate(all="ignore"):
        for bound in entry.conventions:
            case = bound.case(request)
            if bound.record.applies(case):
                out.append(bound.record.row(case))  # type: ignore[union-attr]
    return out


def conventions_json(dataplane: Dataplane, name: str, raw: bytes | bytearray) -> dict[str, Any]:
    """Parse a JSON body and compare conventions; raises ``ServiceError`` on bad input."""
    loss, _ = entry_of(dataplane, name)
    body, may_hold_bools = dataplane.parse(loss, raw)
    return conventions(dataplane, loss.name, body, may_hold_bools=may_hold_bools)


def conventions(
    dataplane: Dataplane, name: str, body: Any, *, may_hold_bools: bool = True
) -> dict[str, Any]:
    loss, entry = entry_of(dataplane, name)
    params = dataplane.validate(loss, body, may_hold_bools=may_hold_bools)
    request = request_of(dataplane, loss, entry, params)
    torch_value = request.torch_value
    return {
        "name": loss.name,
        "conventions": [row.as_dict(torch_value) for row in rows(entry, request)],
    }


def catalogue() -> dict[str, Any]:
    """``GET /v1/conventions``: every loss that has conventions, with its rows' and mistakes'
    ids and the reductions its rows compare."""
    from service.losses import registry as losses

    out = []
    for name in registry.names():
        entry = registry.require(name)
        out.append(
            {
                "name": name,
                "module": losses.require(name).module,
                "reductions": list(entry.reductions),
                "rows": entry.row_ids,
                "mistakes": entry.mistake_ids,
            }
        )
    return {"losses": out}
