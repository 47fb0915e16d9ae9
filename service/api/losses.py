"""``/v1/losses``: one POST route per registered loss, plus the catalogue.

Routes are generated from the registry, so adding a loss adds its route and its documented
request schema without touching this module.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from service import losses
from service.api.body import read_body
from service.api.openapi import json_body
from service.api.problems import PROBLEM_MEDIA_TYPE, problem_body
from service.api.schemas import (
    BatchRequest,
    BatchResponse,
    LossList,
    LossResponse,
    LossSummary,
    Problem,
)
from service.api.state import get_state
from service.batch import run_batch
from service.dataplane import Dataplane, describe
from service.errors import ServiceError
from service.jsonenc import dumps
from service.losses import registry
from service.losses.base import Loss

BATCH_PATH = "/v1/losses:batch"

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": text}
    for code, text in {
        400: "The body is not valid JSON.",
        404: "No such loss.",
        413: "The body is larger than the configured limit.",
        408: "The body did not arrive within the configured time.",
        422: "A field is invalid or beyond a limit; 'field' and 'detail' say which and why.",
        501: "The installed torch lacks what this loss needs (GET /v1/losses/{name} says "
        "'available' and 'torch_required'); 'detail' names both versions.",
        503: "Overloaded (with Retry-After), out of memory, or the device failed.",
        504: "The computation ran past the per-request time limit.",
    }.items()
}


def json_response(content: bytes) -> Response:
    return Response(content, media_type="application/json")


class LeanRoute(APIRoute):
    """An ``APIRoute`` whose endpoint takes the ``Request`` and returns the ``Response`` itself.

    FastAPI's own handler solves dependencies, reads and validates the body and serialises the
    result: about as much time as a small loss takes to compute. These routes read the body
    themselves and answer orjson bytes, so the handler has nothing to do; the route still carries
    its documented request and response schemas into OpenAPI, and the app's middleware and
    exception handlers still apply.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return cast(Callable[[Request], Coroutine[Any, Any, Response]], self.endpoint)


async def compute(request: Request, name: str) -> Response:
    state = get_state(request)
    dataplane = state.dataplane
    dataplane.loss(name)  # 404 before reading a body for a loss that does not exist
    raw = await read_body(request, state.settings.max_body_bytes)
    # Small bodies rarely get here: service.api.inline answers them before routing.
    return json_response(await state.run(partial(_compute_dumped, dataplane, name, raw)))


def _compute_dumped(dataplane: Dataplane, name: str, raw: bytearray) -> bytes:
    return dumps(dataplane.compute_json(name, raw))


async def compute_batch(request: Request) -> Response:
    """Several losses in one request; each item succeeds or fails on its own.

    The body is `{"items": [{"loss": "<name>", "args": {...}}, ...]}`, `args` being the body
    `POST /v1/losses/<name>` takes. Each result is that endpoint's answer (`status` 200,
    `result`) or its problem (`status`, `problem` with `detail` and the `field`, relative to the
    item). Only a malformed envelope, or more than `max_batch_items` items, fails the batch."""
    state = get_state(request)
    raw = await read_body(request, state.settings.max_body_bytes)
    observe = state.metrics.batch_item if state.metrics is not None else None
    work = partial(
        run_batch, state.dataplane, raw, state.settings.max_batch_items, _item_problem, observe
    )
    return json_response(await state.run(lambda: dumps(work())))


def _item_problem(exc: ServiceError, index: int) -> dict[str, Any]:
    return problem_body(
        exc.status, exc.code, exc.title, exc.detail, exc.errors, f"{BATCH_PATH}#/items/{index}"
    )


def _endpoint(loss: Loss[Any]) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    async def endpoint(request: Request) -> Response:
        return await compute(request, loss.name)

    endpoint.__name__ = f"compute_{loss.name}"
    endpoint.__doc__ = f"{loss.summary}\n\n`{loss.formula}`"
    return endpoint


def _describe_endpoint(loss: Loss[Any]) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    async def endpoint(request: Request) -> Response:
        return json_response(dumps(describe(loss)))

    endpoint.__name__ = f"describe_{loss.name}"
    endpoint.__doc__ = f"{loss.name}: its inputs, parameters, warning codes and a working example."
    return endpoint


def build_router() -> APIRouter:
    losses.load()
    router = APIRouter(prefix="/v1/losses", tags=["losses"])

    @router.get("", response_model=LossList)
    async def list_losses() -> Response:
        """Every loss with its inputs, parameters (types, defaults, ranges) and formula."""
        return json_response(dumps({"losses": [describe(loss) for loss in registry.all_losses()]}))

    @router.get("/{name}", response_model=LossSummary, responses={404: ERROR_RESPONSES[404]})
    async def describe_loss(name: str) -> Response:
        """One loss, with an example body that works when posted."""
        return json_response(dumps(describe(registry.resolve(name))))

    for loss in registry.all_losses():
        # Documented beside the POST, because the path serves both: a 405 there lists them in
        # Allow, and the document must list what Allow says.
        router.add_api_route(
            f"/{loss.name}",
            _describe_endpoint(loss),
            methods=["GET"],
            response_model=LossSummary,
            summary=f"Describe {loss.name}",
            route_class_override=LeanRoute,
        )
        router.add_api_route(
            f"/{loss.name}",
            _endpoint(loss),
            methods=["POST"],
            response_model=LossResponse,
            responses=ERROR_RESPONSES,
            summary=loss.summary,
            route_class_override=LeanRoute,
            openapi_extra=json_body(loss.params_model, loss.example()),
        )

    some = list(registry.all_losses())[:2]
    batch_example = {
        "items": [{"loss": loss.name, "args": loss.example()} for loss in some]
        + [{"loss": some[0].name, "args": {}}]  # this one fails alone: its inputs are missing
    }
    router.add_api_route(
        ":batch",
        compute_batch,
        methods=["POST"],
        response_model=BatchResponse,
        responses={k: v for k, v in ERROR_RESPONSES.items() if k not in (404, 501)},
        summary="Several losses in one request, each succeeding or failing on its own",
        route_class_override=LeanRoute,
        openapi_extra=json_body(BatchRequest, batch_example),
    )

    @router.post(
        "/{name}",
        response_model=LossResponse,
        responses=ERROR_RESPONSES,
        summary="A loss under its torch.nn module name",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def compute_by_module_name(request: Request, name: str) -> Response:
        """A loss under its `torch.nn` module name (`CrossEntropyLoss`): the body and the answer
        are those of its functional name's route (`POST /v1/losses/cross_entropy`), whose
        `name` the answer carries. Any other name is a 404 suggesting the closest known names.
        One route for every alias, so the document keeps one route per loss."""
        return await compute(request, registry.resolve(name).name)

    return router
