"""Shared fixtures: a CPU app, an httpx client over ASGI, and a deterministic Hypothesis."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import torch
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from service.app import create_app
from service.dataplane import Dataplane
from service.settings import Settings
from tests.server import LiveServer, live_server

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=40,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def cpu_settings(**overrides: object) -> Settings:
    return Settings(device="cpu", **overrides)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def app() -> FastAPI:
    return create_app(cpu_settings())


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client over ASGI, with the app's lifespan (warm-up) run first."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


@pytest.fixture(scope="session")
def dataplane() -> Dataplane:
    return Dataplane(cpu_settings(), torch.device("cpu"))


@pytest.fixture(scope="session")
def server() -> Iterator[LiveServer]:
    """One real uvicorn process for the session (tests that need a socket)."""
    with live_server() as s:
        yield s


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GPU tests (the marker, not a parameter id such as an overlay named gpu) skip cleanly
    where torch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; torch sees none")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
