"""JSON schemas of the request models, made self-contained.

Pydantic writes a nested model (``linear_cross_entropy``'s ``options``, a distance function) as a
``#/$defs/...`` pointer beside the schema; embedded in the OpenAPI document or in a catalogue
entry, that pointer would resolve against the wrong document, so the definitions go in place.
"""

from __future__ import annotations

from typing import Any


def inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its ``$defs`` substituted in place: a ``#/$defs/...`` pointer
    would resolve against the whole OpenAPI document once embedded in it."""
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
