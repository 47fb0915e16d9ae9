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
from service.losses import registry
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
    where torch sees no CUDA device. Tests of a loss the installed torch lacks (``make compat``
    on an older torch) are deselected, and said so: torch, their oracle, cannot run them;
    ``tests/api/test_torch_compat.py`` (marked ``torch_compat``) checks what the service
    answers for such a loss instead."""
    deselect_unavailable_losses(config, items)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; torch sees none")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


def unavailable_names() -> set[str]:
    """The functional and module names of the losses the installed torch lacks."""
    return {
        name
        for loss in registry.all_losses()
        if not loss.available
        for name in (loss.name, loss.module)
    }


def deselect_unavailable_losses(config: pytest.Config, items: list[pytest.Item]) -> None:
    names = unavailable_names()
    if not names:
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        about = item.get_closest_marker("torch_compat") is None and any(
            n in item.nodeid for n in names
        )
        (drop if about else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"torch {torch.__version__} lacks {', '.join(sorted(names))}: {len(drop)} tests "
                "of it deselected (tests/api/test_torch_compat.py checks its 501 answers)"
            )
