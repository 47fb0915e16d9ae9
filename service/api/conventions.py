"""``POST /v1/conventions/{name}``: every library's reading of one request, side by side.

Parses, dispatches to ``service.conventions`` in a worker thread and serialises; the rows are
computed there.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from service import conventions
from service.api.body import read_body
from service.api.losses import ERROR_RESPONSES, LeanRoute, json_response
from service.api.openapi import json_body
from service.api.state import get_state
from service.dataplane import Dataplane
from service.errors import NotFound
from service.jsonenc import dumps
from service.losses import registry
from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET

PREFIX = "/v1/conventions"


class ConventionRow(BaseModel):
    id: str = Field(description="Stable id of the convention ('torch', 'textbook', ...).")
    library: str
    call: str = Field(description="The call the row stands for, in the request's own names.")
    reads_input_as: str | None = Field(default=None, description="'logits' or 'probabilities'.")
    value: Any = Field(default=None, description="The mean that library computes.")
    per_sample: Any = Field(
        default=None, description="Its per-sample losses (weighted), shaped like the batch."
    )
    agrees_with_torch: bool | None = None
    why: str | None = Field(default=None, description="Why it differs from torch, or that not.")
    error: str | None = Field(default=None, description="The library's refusal, in words.")


class ConventionsResponse(BaseModel):
    name: str
    conventions: list[ConventionRow]


EXAMPLES: dict[str, dict[str, Any]] = {
    "cross_entropy": {"input": ARTICLE_INPUT, "target": ARTICLE_TARGET},
}


async def compare(request: Request, name: str) -> Response:
    state = get_state(request)
    conventions.require_name(name)
    raw = await read_body(request, state.settings.max_body_bytes)
    return json_response(await state.run(partial(_dumped, state.dataplane, name, raw)))


def _dumped(dataplane: Dataplane, name: str, raw: bytearray) -> bytes:
    return dumps(conventions.conventions_json(dataplane, name, raw))


def _endpoint(name: str) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    async def endpoint(request: Request) -> Response:
        return await compare(request, name)

    return endpoint


def build_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["conventions"])
    for name in conventions.NAMES:
        loss = registry.require(name)

        endpoint = _endpoint(name)
        endpoint.__name__ = f"conventions_{name}"
        endpoint.__doc__ = (
            f"`{name}` as torch, the textbook, scikit-learn, Keras, optax and TensorFlow read "
            "the same numbers. The body is that of `POST /v1/losses/" + name + "`, with "
            "`reduction` 'mean' only."
        )
        router.add_api_route(
            f"/{name}",
            endpoint,
            methods=["POST"],
            response_model=ConventionsResponse,
            responses=ERROR_RESPONSES,
            summary=f"Every library's convention for {name}",
            route_class_override=LeanRoute,
            openapi_extra=json_body(loss.params_model, EXAMPLES.get(name, loss.example())),
        )

    @router.post("/{name}", include_in_schema=False)
    async def by_alias(request: Request, name: str) -> Response:
        """A torch.nn module name (``CrossEntropyLoss``) answers as its functional name does;
        anything else is a 404 naming the losses that have conventions."""
        loss = registry.get(name)
        if loss is None or loss.name not in conventions.NAMES:
            conventions.require_name(name)
            raise NotFound(f"no conventions for {name!r}")
        return await compare(request, loss.name)

    return router
