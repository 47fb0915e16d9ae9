"""Many small loss computations in one request, each answered on its own.

The body is ``{"items": [{"loss": "<name>", "args": {...}}, ...]}``, ``args`` being exactly the
body of ``POST /v1/losses/<name>``. Each item becomes either that endpoint's result or a problem
object (its status, detail and the field at fault, relative to the item: ``loss``, ``args`` or
``args.<field>``); one bad item never fails the others. Only the envelope itself (not JSON, not
an object, ``items`` missing, not a list, or longer than ``max_batch_items``) fails the whole
request. The items run one after another in the caller's thread: one hop off the event loop
for the whole batch, which is the point of batching small computations.

Nothing here knows about HTTP; the caller says how a ``ServiceError`` becomes a problem object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.dataplane import Dataplane, parse_json
from service.errors import FieldError, InvalidInput, NotFound, NotImplementedByTorch, ServiceError
from service.losses import registry

ITEM_KEYS = frozenset({"loss", "args"})

Problem = Callable[[ServiceError, int], dict[str, Any]]
"""Renders item ``i``'s error as a problem object (the HTTP layer's RFC 9457 body)."""

ItemObserver = Callable[[str, int], None]
"""Told ``(loss, status)`` of each item: the loss's name when it is registered, else empty."""


def run_batch(
    dataplane: Dataplane,
    raw: bytes | bytearray,
    max_items: int,
    problem: Problem,
    observe: ItemObserver | None = None,
) -> dict[str, Any]:
    """``{"results": [...], "succeeded": n, "failed": m}``, one result per item, in order.

    Each result is ``{"status": 200, "result": <the loss's response>}`` or
    ``{"status": <4xx/5xx>, "problem": <problem object>}``."""
    body = parse_json(raw, dataplane.limits)
    may_hold_bools = b"true" in raw or b"false" in raw
    items = _items(body, max_items)
    results: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            loss, args = _item(dataplane, item)
            try:
                result = dataplane.compute(loss, args, may_hold_bools=may_hold_bools, parsed=True)
            except ServiceError as exc:
                raise _under(exc, "args") from None
        except ServiceError as exc:
            results.append({"status": exc.status, "problem": problem(exc, index)})
        else:
            results.append({"status": 200, "result": result})
        if observe is not None:
            observe(_loss_label(item), results[-1]["status"])
    failed = sum(r["status"] != 200 for r in results)
    return {"results": results, "succeeded": len(results) - failed, "failed": failed}


def _loss_label(item: Any) -> str:
    name = item.get("loss") if isinstance(item, dict) else None
    return name if isinstance(name, str) and registry.get(name) is not None else ""


def _items(body: Any, max_items: int) -> list[Any]:
    if not isinstance(body, dict):
        raise InvalidInput.at("", 'the body must be a JSON object: {"items": [...]}')
    unknown = sorted(set(body) - {"items"})
    if unknown:
        raise InvalidInput.at(unknown[0], "unknown field (the body holds 'items' only)")
    if "items" not in body:
        raise InvalidInput.at("items", "field required")
    items = body["items"]
    if not isinstance(items, list):
        raise InvalidInput.at("items", 'must be a list of {"loss": ..., "args": {...}} objects')
    if len(items) > max_items:
        raise InvalidInput.at(
            "items", f"{len(items)} items exceed the maximum of {max_items} per batch"
        )
    return items


def _item(dataplane: Dataplane, item: Any) -> tuple[Any, dict[str, Any]]:
    if not isinstance(item, dict):
        raise InvalidInput.at("", 'an item must be an object: {"loss": ..., "args": {...}}')
    unknown = sorted(set(item) - ITEM_KEYS)
    if unknown:
        raise InvalidInput.at(unknown[0], "unknown field (an item holds 'loss' and 'args')")
    name = item.get("loss")
    if not isinstance(name, str):
        raise InvalidInput.at("loss", "the name of a loss (a string) is required")
    try:
        loss = dataplane.loss(name)
    except NotFound as exc:
        raise NotFound(exc.detail, errors=[FieldError("loss", exc.detail)]) from None
    except NotImplementedByTorch as exc:
        raise NotImplementedByTorch(exc.detail, errors=[FieldError("loss", exc.detail)]) from None
    args = item.get("args", {})
    if not isinstance(args, dict):
        raise InvalidInput.at("args", "the loss's keyword arguments, as an object")
    return loss, args


def _under(exc: ServiceError, prefix: str) -> ServiceError:
    """``exc`` with its fields named under ``prefix`` (``input`` becomes ``args.input``)."""
    if not exc.errors:
        exc.errors = (FieldError(prefix, exc.detail),)
        return exc
    exc.errors = tuple(
        FieldError(f"{prefix}.{e.field}" if e.field else prefix, e.message) for e in exc.errors
    )
    exc.detail = "; ".join(f"'{e.field}': {e.message}" for e in exc.errors)
    return exc
