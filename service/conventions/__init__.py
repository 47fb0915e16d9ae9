"""Every library's convention for the same request, side by side (``POST /v1/conventions``).

The request is the body of ``POST /v1/losses/<name>``, validated by the same models and checks,
with ``reduction`` limited to ``mean``: the rows compare means. Each row is computed here in
NumPy float64 from the library's own algorithm (``cross_entropy`` and ``binary`` hold them);
no library is imported at run time. The ``torch`` row is the service's own float64 reference
for the request, the same numbers ``POST /v1/losses/<name>`` reports beside torch's value.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.conventions import binary, cross_entropy
from service.conventions.base import Row
from service.dataplane import Dataplane
from service.errors import InvalidInput, NotFound
from service.losses.cross_entropy import CrossEntropyParams

NAMES: tuple[str, ...] = (
    "cross_entropy",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
)


def conventions_json(dataplane: Dataplane, name: str, raw: bytes | bytearray) -> dict[str, Any]:
    """Parse a JSON body and compare conventions; raises ``ServiceError`` on bad input."""
    require_name(name)
    loss = dataplane.loss(name)
    body, may_hold_bools = dataplane.parse(loss, raw)
    return conventions(dataplane, name, body, may_hold_bools=may_hold_bools)


def require_name(name: str) -> None:
    if name not in NAMES:
        raise NotFound(f"no conventions for {name!r}; they exist for {', '.join(NAMES)}")


def conventions(
    dataplane: Dataplane, name: str, body: Any, *, may_hold_bools: bool = True
) -> dict[str, Any]:
    require_name(name)
    loss = dataplane.loss(name)
    params = dataplane.validate(loss, body, may_hold_bools=may_hold_bools)
    reduction = getattr(params, "reduction", "mean")
    if reduction != "mean":
        raise InvalidInput.at(
            "reduction",
            f"conventions compare means: reduction must be 'mean', got {reduction!r}",
        )
    # float64 on the numbers as sent: the rows differ by convention, not by rounding.
    prep = loss.prepare(params, "float64")
    with np.errstate(all="ignore"):
        ref = loss.reference(params, prep, frozenset())
        torch_value = float(ref.value)
        found: list[Row]
        if isinstance(params, CrossEntropyParams):
            found = cross_entropy.rows(params, prep, ref.losses, torch_value)
        else:
            found = binary.rows(name, params, prep, ref.losses, torch_value)
        return {"name": name, "conventions": [row.as_dict(torch_value) for row in found]}
