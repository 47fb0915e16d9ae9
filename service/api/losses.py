"""``/v1/losses``: one POST route per registered loss, plus the catalogue.

Routes are generated from the registry, so adding a loss adds its route and its documented
request schema without touching this module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service import losses
from service.api.body import read_body
from service.api.problems import PROBLEM_MEDIA_TYPE
from service.api.schemas import LossList, LossResponse, LossSummary, Problem
from service.api.state import get_state
from service.dataplane import describe
from service.errors import NotFound
from service.jsonenc import dumps
from service.losses import registry
from service.losses.base import Loss

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": text}
    for code, text in {
        400: "The body is not valid JSON.",
        404: "No such loss.",
        413: "The body is larger than the configured limit.",
        408: "The body did not arrive within the configured time.",
        422: "A field is invalid or beyond a limit; 'field' and 'detail' say which and why.",
        503: "Overloaded (with Retry-After), out of memory, or the device failed.",
        504: "The computation ran past the per-request time limit.",
    }.items()
}


def json_response(content: bytes) -> Response:
    return Response(content, media_type="application/json")


async def compute(request: Request, name: str) -> Response:
    state = get_state(request)
    state.dataplane.loss(name)  # 404 before reading a body for a loss that does not exist
    raw = await read_body(request, state.settings.max_body_bytes)
    content = await state.run(lambda: dumps(state.dataplane.compute_json(name, raw)))
    return json_response(content)


def _endpoint(loss: Loss[Any]) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await compute(request, loss.name)

    endpoint.__name__ = f"compute_{loss.name}"
    endpoint.__doc__ = f"{loss.summary}\n\n`{loss.formula}`"
    return endpoint


def build_router() -> APIRouter:
    losses.load()
    router = APIRouter(prefix="/v1/losses", tags=["losses"])

    @router.get("", response_model=LossList)
    async def list_losses() -> Response:
        """Every loss with its inputs, parameters (types, defaults, ranges) and formula."""
        return json_response(dumps({"losses": [describe(loss) for loss in registry.all_losses()]}))

    @router.get("/{name}", response_model=LossSummary, responses={404: ERROR_RESPONSES[404]})
    async def get_loss(name: str) -> Response:
        """One loss, with an example body that works when posted."""
        loss = registry.get(name)
        if loss is None:
            raise NotFound(f"no loss named {name!r}; GET /v1/losses lists them")
        return json_response(dumps(describe(loss)))

    for loss in registry.all_losses():
        schema = loss.params_model.model_json_schema()
        router.add_api_route(
            f"/{loss.name}",
            _endpoint(loss),
            methods=["POST"],
            response_model=LossResponse,
            responses=ERROR_RESPONSES,
            summary=loss.summary,
            openapi_extra={
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": schema, "example": loss.example()}},
                }
            },
        )

    @router.post("/{name}", include_in_schema=False)
    async def unknown_loss(name: str) -> Response:
        raise NotFound(f"no loss named {name!r}; GET /v1/losses lists them")

    return router
