"""The application factory: ``create_app(settings)`` builds a fresh app with no module globals."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI

from service import __version__
from service.api import health, problems, v2
from service.api.losses import build_router
from service.api.state import ServiceState
from service.dataplane import Dataplane
from service.device import resolve_device
from service.settings import Settings, get_settings

log = logging.getLogger("service")

DESCRIPTION = """\
PyTorch losses over HTTP. The body of `POST /v1/losses/<name>` holds the keyword arguments of
`torch.nn.functional.<name>` (same names, defaults and meaning); the answer carries torch's
value, an independent NumPy float64 reference beside it, a per-element breakdown and warnings
where the input looks like a mistake (probabilities passed as logits, and the like).
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Raises ``DeviceUnavailable`` when the configured device does not exist."""
    settings = settings or get_settings()
    device = resolve_device(settings.device)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    state = ServiceState(settings=settings, dataplane=Dataplane(settings, device))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.ensure_ready()
        log.info("loss-service ready on %s", device)
        yield

    app = FastAPI(
        title="loss-service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.service = state
    problems.install(app)
    app.include_router(health.router)
    app.include_router(build_router())
    app.include_router(v2.build_router())
    return app
