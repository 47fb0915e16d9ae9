"""JSON schemas of the request models: the tensor schema, and the models made self-contained.

A tensor is a number or nested lists of numbers. Its schema is a fixed-depth union (a number, a
list of numbers, a list of lists of numbers, ... up to a maximum rank) rather than a recursive
one: client generators (openapi-python-client, OpenAPI Generator) build a typed union from it,
and refuse, or mistype, an ``array`` whose ``items`` are left open. The schema documents;
Pydantic (``service.arrays.to_array``) still decides, and refuses ragged lists and ranks over
the configured limit with the same 422 whatever the schema says.

Pydantic writes a nested model (``linear_cross_entropy``'s ``options``, a distance function) as a
``#/$defs/...`` pointer beside the schema; embedded in a catalogue entry, that pointer would
resolve against the wrong document, so ``inline_defs`` puts the definitions in place. The OpenAPI
document names them instead (``service.api.openapi``).
"""

from __future__ import annotations

from typing import Any

from service.arrays import DEFAULT_LIMITS

TENSOR_DESCRIPTION = "A number, or nested lists of numbers (row-major, rectangular)."


def tensor_alternatives(max_rank: int) -> list[dict[str, Any]]:
    """``number``, ``number[]``, ``number[][]``, ... : one schema per rank from 0 to
    ``max_rank``."""
    out: list[dict[str, Any]] = []
    node: dict[str, Any] = {"type": "number"}
    for _ in range(max_rank + 1):
        out.append(node)
        node = {"type": "array", "items": node}
    return out


#: The alternatives of the request models' tensor fields, written for the default maximum rank
#: (``LOSS_SERVICE_MAX_RANK``, 8); ``service.api.openapi`` finds them by this value.
TENSOR_ANY_OF: list[dict[str, Any]] = tensor_alternatives(DEFAULT_LIMITS.max_rank)

TENSOR_SCHEMA: dict[str, Any] = {"description": TENSOR_DESCRIPTION, "anyOf": TENSOR_ANY_OF}
"""A tensor field's JSON schema, as the request models write it."""


def tensor_component(max_rank: int) -> dict[str, Any]:
    """The OpenAPI component ``Tensor`` for a server whose maximum rank is ``max_rank``."""
    return {
        "title": "Tensor",
        "description": f"{TENSOR_DESCRIPTION} Rank 0 (a number) to {max_rank}, this server's "
        "maximum (LOSS_SERVICE_MAX_RANK); integers where the loss takes class indices. Ragged "
        "lists, booleans, NaN and infinities are refused with 422.",
        "anyOf": tensor_alternatives(max_rank),
    }


def inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` substituted in place: a ``#/$defs/...`` pointer
    would resolve against the whole document once embedded in another."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
