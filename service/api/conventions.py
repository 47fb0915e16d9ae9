"""``/v1/conventions`` and ``/v1/diagnose``: every library's reading of one request, and the
convention or mistake behind a number.

Parses, dispatches to ``service.conventions`` in a worker thread and serialises; the rows and
the diagnoses are computed there. One documented POST route per loss that has conventions (with
the loss's request schema), and one undocumented route per prefix for the ``torch.nn`` module
names, as ``/v1/losses`` has.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, create_model

from service import conventions
from service.api.body import read_body
from service.api.losses import ERROR_RESPONSES, LeanRoute, json_response
from service.api.openapi import json_body
from service.api.schemas import Number
from service.api.state import get_state
from service.conventions import registry as conventions_registry
from service.conventions.diagnose import DEFAULT_RTOL
from service.dataplane import Dataplane
from service.jsonenc import dumps
from service.losses import registry
from service.losses.base import LossParams
from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET

PREFIX = "/v1/conventions"
DIAGNOSE_PREFIX = "/v1/diagnose"


class ConventionRow(BaseModel):
    id: str = Field(description="Stable id of the convention ('torch', 'textbook', ...).")
    library: str
    call: str = Field(description="The call the row stands for, in the request's own names.")
    reads_input_as: str | None = Field(default=None, description="'logits' or 'probabilities'.")
    value: Any = Field(default=None, description="The value that library computes.")
    per_sample: Any = Field(
        default=None, description="Its per-sample losses (weighted), shaped like the batch."
    )
    agrees_with_torch: bool | None = None
    why: str | None = Field(default=None, description="Why it differs from torch, or that not.")
    error: str | None = Field(default=None, description="The library's refusal, in words.")


class ConventionsResponse(BaseModel):
    name: str
    conventions: list[ConventionRow]


class ConventionsEntry(BaseModel):
    name: str = Field(description="The functional name.")
    module: str = Field(description="Its torch.nn module name, accepted in place of the name.")
    reductions: list[str] = Field(description="The reductions its rows compare.")
    rows: list[str] = Field(
        description="The ids of its convention rows, in order ('hf_causal_lm' of "
        "cross_entropy only for sequence requests)."
    )
    mistakes: list[str] = Field(description="The ids of the mistakes POST /v1/diagnose knows.")


class ConventionsList(BaseModel):
    losses: list[ConventionsEntry]


class Candidate(BaseModel):
    id: str = Field(description="The convention row's id, or the mistake's.")
    kind: str = Field(description="'convention' or 'mistake'.")
    value: Number = Field(description="The number it produces for the request.")
    relative_difference: Number = Field(description="|value - observed| / |observed|.")
    explanation: str = Field(description="In one sentence, what produces that number.")
    fix: str = Field(description="What to change to get torch's number.")


class DiagnoseResponse(BaseModel):
    name: str
    observed: float = Field(description="The number to explain, as sent.")
    torch: Any = Field(description="What POST /v1/losses/{name} computes for the request.")
    matches: list[Candidate] = Field(description="The candidates within rtol, closest first.")
    candidates: list[Candidate] = Field(
        description="Every candidate computed, sorted by relative_difference."
    )
    message: str | None = Field(
        default=None,
        description="Present only when nothing matches: a sentence saying that no convention "
        "or known mistake explains the number.",
    )


EXAMPLES: dict[str, dict[str, Any]] = {
    "cross_entropy": {"input": ARTICLE_INPUT, "target": ARTICLE_TARGET},
}
DIAGNOSE_EXAMPLES: dict[str, dict[str, Any]] = {
    "cross_entropy": EXAMPLES["cross_entropy"] | {"observed": 3.947},
}


async def compare(request: Request, name: str) -> Response:
    state = get_state(request)
    conventions_registry.require(name)
    raw = await read_body(request, state.settings.max_body_bytes)
    return json_response(await state.run(partial(_compared, state.dataplane, name, raw)))


async def diagnose(request: Request, name: str) -> Response:
    state = get_state(request)
    conventions_registry.require(name)
    raw = await read_body(request, state.settings.max_body_bytes)
    return json_response(await state.run(partial(_diagnosed, state.dataplane, name, raw)))


def _compared(dataplane: Dataplane, name: str, raw: bytearray) -> bytes:
    return dumps(conventions.conventions_json(dataplane, name, raw))


def _diagnosed(dataplane: Dataplane, name: str, raw: bytearray) -> bytes:
    return dumps(conventions.diagnose_json(dataplane, name, raw))


Handler = Callable[[Request, str], Coroutine[Any, Any, Response]]


def _endpoint(handler: Handler, name: str) -> Callable[[Request], Coroutine[Any, Any, Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(request, name)

    return endpoint


@functools.cache
def diagnose_model(params_model: type[LossParams]) -> type[LossParams]:
    """The documented body of ``POST /v1/diagnose/{name}``: the loss's request model with
    ``observed`` and ``rtol`` beside its arguments (named ``Diagnose<Params>`` in the OpenAPI
    document). It documents; ``service.conventions.diagnose`` validates the two fields itself,
    with the loss's own checks first."""
    return create_model(
        f"Diagnose{params_model.__name__}",
        __base__=params_model,
        observed=(
            float,
            Field(description="The number you got elsewhere, to be explained (finite)."),
        ),
        rtol=(
            float,
            Field(
                default=DEFAULT_RTOL,
                ge=0,
                description="A candidate matches when |value - observed| <= rtol * |observed|.",
            ),
        ),
    )


def build_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["conventions"])

    @router.get("", response_model=ConventionsList)
    async def list_conventions() -> Response:
        """Every loss that has conventions, with the ids of its rows and of its mistakes."""
        return json_response(dumps(conventions.catalogue()))

    for name in conventions.names():
        loss = registry.require(name)
        endpoint = _endpoint(compare, name)
        endpoint.__name__ = f"conventions_{name}"
        endpoint.__doc__ = (
            f"`{name}` as torch and the other libraries read the same numbers. The body is that "
            f"of `POST /v1/losses/{name}`, with `reduction` "
            + " or ".join(f"'{r}'" for r in conventions_registry.require(name).reductions)
            + "."
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
    async def conventions_by_module_name(request: Request, name: str) -> Response:
        """A torch.nn module name (``CrossEntropyLoss``) answers as its functional name does;
        an unknown name is a 404 suggesting the closest, a loss without conventions a 404
        naming those that have them."""
        return await compare(request, registry.resolve(name).name)

    return router


def build_diagnose_router() -> APIRouter:
    router = APIRouter(prefix=DIAGNOSE_PREFIX, tags=["conventions"])
    for name in conventions.names():
        loss = registry.require(name)
        endpoint = _endpoint(diagnose, name)
        endpoint.__name__ = f"diagnose_{name}"
        endpoint.__doc__ = (
            f"Which convention or mistake gives the number you got for `{name}`. The body is "
            f"that of `POST /v1/losses/{name}` plus `observed` (the number) and optionally "
            "`rtol`; the answer lists every candidate by its distance to `observed`, and those "
            "within `rtol` as `matches`."
        )
        example = DIAGNOSE_EXAMPLES.get(name, loss.example() | {"observed": 1.0})
        router.add_api_route(
            f"/{name}",
            endpoint,
            methods=["POST"],
            response_model=DiagnoseResponse,
            responses=ERROR_RESPONSES,
            summary=f"Explain a number you got for {name}",
            route_class_override=LeanRoute,
            openapi_extra=json_body(diagnose_model(loss.params_model), example),
        )

    @router.post("/{name}", include_in_schema=False)
    async def diagnose_by_module_name(request: Request, name: str) -> Response:
        """A torch.nn module name answers as its functional name does (see conventions)."""
        return await diagnose(request, registry.resolve(name).name)

    return router
