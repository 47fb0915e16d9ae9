"""Overload and time limits through HTTP: refusals are immediate, documented and recoverable.

The data plane of a fresh app is wrapped so that computations block until the test releases
them; the requests themselves are real (parsed, computed, compared with torch)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.api.problems import PROBLEM_MEDIA_TYPE
from service.api.state import ServiceState
from tests.robustness.conftest import ARTICLE, asgi_client, assert_article_ok, small_app
from tests.robustness.test_admission import LONG, until

pytestmark = pytest.mark.anyio

CE = "/v1/losses/cross_entropy"


class Held:
    """Wraps ``compute_json`` so that each computation waits for ``release``."""

    def __init__(self, state: ServiceState) -> None:
        self.release = threading.Event()
        self.started = 0
        self._compute: Callable[[str, bytes], dict[str, Any]] = state.dataplane.compute_json

    def __call__(self, name: str, raw: bytes) -> dict[str, Any]:
        self.started += 1
        assert self.release.wait(LONG)
        return self._compute(name, raw)


def state_of(app: FastAPI) -> ServiceState:
    state: ServiceState = app.state.service
    return state


async def held_app(monkeypatch: pytest.MonkeyPatch, **settings: Any) -> tuple[FastAPI, Held]:
    # inline_max_bytes=0: held computations must run in worker threads, under admission, as
    # large ones do; tiny bodies would otherwise be computed on the event loop, blocking it.
    app = small_app(inline_max_bytes=0, **settings)
    held = Held(state_of(app))
    monkeypatch.setattr(state_of(app).dataplane, "compute_json", held)
    return app, held


def assert_overloaded(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.headers["retry-after"] == "1"
    assert response.json()["type"].endswith("/overloaded")


@pytest.fixture
async def release_after() -> AsyncIterator[list[Held]]:
    helds: list[Held] = []
    yield helds
    for held in helds:
        held.release.set()


@pytest.mark.parametrize("max_queue", [0, 2], ids=["no-queue", "queue-of-2"])
async def test_past_slots_and_queue_the_answer_is_503_at_once(
    monkeypatch: pytest.MonkeyPatch, release_after: list[Held], max_queue: int
) -> None:
    """The gate refuses before reading the body once slots and queue are taken."""
    app, held = await held_app(monkeypatch, max_concurrency=1, max_queue=max_queue)
    release_after.append(held)
    state = state_of(app)
    async with asgi_client(app) as client:
        admitted = [
            asyncio.create_task(client.post(CE, json=ARTICLE)) for _ in range(1 + max_queue)
        ]
        await until(lambda: held.started == 1 and state.admission.waiting == max_queue)
        assert_overloaded(await client.post(CE, json=ARTICLE))
        # bodiless requests are never gated
        assert (await client.get("/v1/losses")).status_code == 200
        assert (await client.get("/v2/health/ready")).status_code == 200
        held.release.set()
        for response in await asyncio.gather(*admitted):
            assert_article_ok(response)
        assert_article_ok(await client.post(CE, json=ARTICLE))
    assert (state.admission.busy, state.admission.admitted) == (0, 0)


async def test_a_queued_request_never_waits_past_the_time_limit(
    monkeypatch: pytest.MonkeyPatch, release_after: list[Held]
) -> None:
    app, held = await held_app(monkeypatch, max_concurrency=1, max_queue=4, request_timeout=0.3)
    release_after.append(held)
    async with asgi_client(app) as client:
        first = asyncio.create_task(client.post(CE, json=ARTICLE))
        await until(lambda: held.started == 1)
        queued = await client.post(CE, json=ARTICLE)
        assert_overloaded(queued)
        assert "no computation slot became free" in queued.json()["detail"]
        timed_out = await first
        assert timed_out.status_code == 504
        assert timed_out.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert timed_out.json()["type"].endswith("/timed-out")
        assert held.started == 1
        held.release.set()
        await until(lambda: state_of(app).admission.busy == 0)
        assert_article_ok(await client.post(CE, json=ARTICLE))


async def test_a_timed_out_computation_still_holds_its_slot(
    monkeypatch: pytest.MonkeyPatch, release_after: list[Held]
) -> None:
    app, held = await held_app(monkeypatch, max_concurrency=1, max_queue=0, request_timeout=0.3)
    release_after.append(held)
    async with asgi_client(app) as client:
        assert (await client.post(CE, json=ARTICLE)).status_code == 504
        assert state_of(app).admission.busy == 1
        assert_overloaded(await client.post(CE, json=ARTICLE))
        held.release.set()
        await until(lambda: state_of(app).admission.busy == 0)
        assert_article_ok(await client.post(CE, json=ARTICLE))


async def test_a_body_that_stalls_is_refused_with_408() -> None:
    never = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield b'{"input": [[1.0, 2.0'
        await never.wait()

    app = small_app(body_timeout=0.2)
    async with asgi_client(app) as client:
        response = await client.post(CE, content=stalled())
        assert response.status_code == 408
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert response.json()["type"].endswith("/body-timeout")
        assert state_of(app).admission.admitted == 0
        assert_article_ok(await client.post(CE, json=ARTICLE))
