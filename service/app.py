"""The application factory: ``create_app(settings)`` builds a fresh app with no module globals."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from service import __version__
from service.api import conventions, docs, health, openapi, page, problems, v2
from service.api.inline import InlineSmallLosses, SmallFront
from service.api.losses import build_router
from service.api.middleware import (
    HEALTH_PREFIX,
    AdmissionGate,
    AnswerCancelled,
    ApiKeys,
    BodyLimit,
    RequestId,
    RequestIds,
)
from service.api.state import ServiceState
from service.dataplane import Dataplane
from service.device import resolve_device
from service.losses import registry
from service.memory import limit_malloc_arenas
from service.observability.access import AccessLog
from service.observability.metrics import Metrics
from service.observability.requests import METRICS_PATH, ObserveRequests, RouteLabels
from service.settings import Settings, get_settings

log = logging.getLogger("service")

DESCRIPTION = """\
PyTorch losses over HTTP. The body of `POST /v1/losses/<name>` holds the keyword arguments of
`torch.nn.functional.<name>` (same names, defaults and meaning); the answer carries torch's
value, an independent NumPy float64 reference beside it, a per-element breakdown and warnings
where the input looks like a mistake (probabilities passed as logits, and the like).
"""


class ServiceApp(FastAPI):
    """FastAPI, with the small loss requests answered by ``front`` before its middleware stack
    (``service.api.inline.SmallFront``); everything else goes through the stack as usual.
    ``observe`` (``service.observability.requests.ObserveRequests``) wraps both, so that every
    answer is counted and logged in one place."""

    front: SmallFront | None = None
    observe: ObserveRequests | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        observe = self.observe
        if observe is not None:
            await observe(scope, receive, send)
        else:
            await self.dispatch(scope, receive, send)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The front for the requests it takes, the middleware stack for the rest."""
        front = self.front
        if front is not None:
            name = front.takes(scope)
            if name is not None:
                await front.answer(name, scope, receive, send, super().__call__)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Raises ``DeviceUnavailable`` when the configured device does not exist."""
    settings = settings or get_settings()
    device = resolve_device(settings.device)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    limit_malloc_arenas(settings.malloc_arenas)
    metrics = Metrics(device, registry.names()) if settings.metrics else None
    state = ServiceState(settings=settings, dataplane=Dataplane(settings, device), metrics=metrics)
    access = AccessLog()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.ensure_ready()
        access.start()
        log.info("loss-service ready on %s", device)
        try:
            yield
        finally:
            state.close()
            access.stop()

    app = ServiceApp(
        title="loss-service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by service.api.docs, from the service's own files
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id,
    )
    app.state.service = state
    problems.install(app)
    app.include_router(health.router)
    app.include_router(build_router())
    app.include_router(v2.build_router())
    app.include_router(conventions.build_router())
    app.include_router(conventions.build_diagnose_router())
    page.install(app)
    docs.install(app)
    openapi.install(app, settings.max_rank)
    if metrics is not None:
        install_metrics(app, metrics)
    # Innermost, so added first: the middleware installed after it (request ids, API keys,
    # body limit, admission gate) wraps it and sees every request it answers.
    app.add_middleware(InlineSmallLosses, state=state)
    ids = RequestIds()
    install_middleware(app, settings, state, ids)
    keys = [key.get_secret_value() for key in settings.api_keys]
    checker = ApiKeys(None, keys, settings.open_docs) if keys else None
    app.front = SmallFront(state, ids, checker, enabled=not settings.cors_origins)
    # Around the front and the stack alike: it sees every answer, the refusals, the inline ones
    # and those of the front included.
    labels = RouteLabels(lambda: app.router.routes)
    app.observe = ObserveRequests(
        app.dispatch,
        labels=labels,
        metrics=metrics,
        log_probes=settings.log_probes,
        access=access,
    )
    return app


def install_metrics(app: FastAPI, metrics: Metrics) -> None:
    """``GET /metrics``: the Prometheus exposition, open like health when API keys are set. A
    plain function, so FastAPI runs it in a thread: merging several workers' files takes time."""

    @app.get(METRICS_PATH, include_in_schema=False)
    def scrape(request: Request) -> Response:
        content, content_type = metrics.render(request.headers.get("accept"))
        return Response(content, headers={"Content-Type": content_type})


def install_middleware(
    app: FastAPI, settings: Settings, state: ServiceState, ids: RequestIds | None = None
) -> None:
    """Outermost first: request id, answer to cancelled requests, CORS, API keys, body limit,
    admission gate. Each ``add_middleware`` wraps the ones added before it, hence the reverse
    order here."""
    # The idle trim hears of large bodies from the body limit and of idleness from the gate.
    trim = state.trim if state.trim.enabled else None
    app.add_middleware(
        AdmissionGate, admission=state.admission, on_idle=trim.idle if trim else None
    )
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        timeout=settings.body_timeout,
        on_large=trim.large if trim else None,
        large_bytes=trim.large_bytes if trim else 1 << 20,
    )
    keys = [key.get_secret_value() for key in settings.api_keys]
    if keys:
        app.add_middleware(ApiKeys, keys=keys, open_docs=settings.open_docs)
        document_api_keys(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-API-Key",
                "X-Request-ID",
                "Inference-Header-Content-Length",
            ],
            expose_headers=["X-Request-ID", "Retry-After", "Inference-Header-Content-Length"],
            max_age=600,
        )
    app.add_middleware(AnswerCancelled, retry_after=settings.retry_after)
    app.add_middleware(RequestId, ids=ids)


def document_api_keys(app: FastAPI) -> None:
    """Declare the two ways of sending a key in the OpenAPI document (and a 401 on every
    operation but health), so that /docs offers an Authorize button."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        schema["security"] = [{"bearer": []}, {"apiKey": []}]
        unauthorised = {
            "description": "No valid API key.",
            "content": {
                problems.PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if path.startswith(HEALTH_PREFIX):
                    operation["security"] = []
                else:
                    operation.setdefault("responses", {})["401"] = unauthorised
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
