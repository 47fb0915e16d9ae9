"""Fixtures for the robustness tests: apps with small limits, run with their lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from fastapi import FastAPI

from service.app import create_app
from service.losses.cross_entropy import ARTICLE_INPUT, ARTICLE_TARGET
from tests.conftest import cpu_settings
from tests.server import LiveServer, live_server

#: Small limits, so that each can be crossed with a small request.
SMALL_LIMITS: dict[str, Any] = {
    "max_body_bytes": 64 * 1024,
    "max_depth": 8,
    "max_rank": 4,
    "max_dim": 512,
    "max_elements": 4096,
    "max_batch_items": 8,
}

ARTICLE = {"input": ARTICLE_INPUT, "target": ARTICLE_TARGET}


def small_app(**overrides: Any) -> FastAPI:
    return create_app(cpu_settings(**{**SMALL_LIMITS, **overrides}))


@asynccontextmanager
async def asgi_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client over ASGI with the app's lifespan (warm-up, then shutdown) around it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


def torch_cross_entropy(body: dict[str, Any]) -> float:
    """The oracle: torch in-process, in float32 as the service computes by default."""
    value = torch.nn.functional.cross_entropy(
        torch.tensor(body["input"], dtype=torch.float32), torch.tensor(body["target"])
    )
    return float(value)


def assert_article_ok(response: httpx.Response) -> None:
    """The service computed the article's case, and computed it right."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    got = response.json()["value"]
    assert np.float32(got) == np.float32(torch_cross_entropy(ARTICLE))


SLOTS, QUEUE = 2, 4


@pytest.fixture(scope="session")
def hooked_server() -> Iterator[LiveServer]:
    """A real server process with few slots, a short queue, a short body time limit and each
    computation slowed by 40 ms (see ``hooked_service``), shared by the socket-level tests."""
    env = {
        "LOSS_SERVICE_MAX_CONCURRENCY": str(SLOTS),
        "LOSS_SERVICE_MAX_QUEUE": str(QUEUE),
        "LOSS_SERVICE_REQUEST_TIMEOUT": "60",
        "LOSS_SERVICE_BODY_TIMEOUT": "1",
        "LOSS_SERVICE_MAX_BODY_BYTES": str(8 * 1024 * 1024),
        "LOSS_SERVICE_RETRY_AFTER": "2",
        "LOSS_SERVICE_TEST_DELAY": "0.04",
        "LOSS_SERVICE_LOG_LEVEL": "warning",
    }
    with live_server(env=env, module="tests.robustness.hooked_service") as server:
        yield server
