"""The malloc arena cap is applied where the C library is glibc, and is a no-op elsewhere; after
large requests, freed memory is given back once the service is idle, and never for small ones."""

from __future__ import annotations

import asyncio
import ctypes
import sys
import threading

import httpx
import numpy as np
import orjson
import pytest
from fastapi import FastAPI

from service.api.state import ServiceState
from service.app import create_app
from service.memory import IdleTrim, limit_malloc_arenas, malloc_trim
from tests.conftest import cpu_settings

SERIALIZE_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def glibc() -> bool:
    return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "gnu_get_libc_version")


def test_zero_leaves_the_default() -> None:
    assert limit_malloc_arenas(0) is False


@pytest.mark.skipif(not glibc(), reason="needs glibc")
def test_applied_on_glibc() -> None:
    assert limit_malloc_arenas(2) is True


# -- IdleTrim: freed memory back to the system once idle after large requests -------------------


class Counting:
    """A stand-in for ``malloc_trim`` that counts calls (and a switch saying whether busy)."""

    def __init__(self) -> None:
        self.calls = 0
        self.is_busy = False
        self.done = threading.Event()

    def trim(self) -> bool:
        self.calls += 1
        self.done.set()
        return True

    def busy(self) -> bool:
        return self.is_busy


def idle_trim(counting: Counting, delay: float = 0.05) -> IdleTrim:
    return IdleTrim(counting.busy, delay=delay, trim=counting.trim)


async def settle(counting: Counting, seconds: float = 0.3) -> None:
    await asyncio.sleep(seconds)
    await asyncio.to_thread(counting.done.wait, 1.0)


@pytest.mark.anyio
async def test_idle_after_a_large_request_trims_once_off_the_loop() -> None:
    counting = Counting()
    trim = idle_trim(counting)
    trim.large()
    trim.idle()
    trim.idle()  # one timer however many idle moments
    assert counting.calls == 0  # later, never on the request's way out
    await settle(counting)
    assert counting.calls == 1
    assert trim.trims == 1
    trim.idle()  # nothing large since: nothing to give back
    await asyncio.sleep(0.2)
    assert counting.calls == 1


@pytest.mark.anyio
async def test_idle_after_small_requests_never_trims() -> None:
    counting = Counting()
    trim = idle_trim(counting)
    for _ in range(100):
        trim.idle()
    await asyncio.sleep(0.2)
    assert counting.calls == 0


@pytest.mark.anyio
async def test_busy_when_the_timer_fires_waits_for_the_next_idle_moment() -> None:
    counting = Counting()
    trim = idle_trim(counting)
    trim.large()
    counting.is_busy = True
    trim.idle()
    await asyncio.sleep(0.2)
    assert counting.calls == 0
    counting.is_busy = False
    trim.idle()
    await settle(counting)
    assert counting.calls == 1


@pytest.mark.skipif(not glibc(), reason="needs glibc")
def test_malloc_trim_runs_on_glibc() -> None:
    assert isinstance(malloc_trim(), bool)


def app_with(counting: Counting, **settings: object) -> FastAPI:
    app = create_app(cpu_settings(**settings))
    state: ServiceState = app.state.service
    state.trim.trim = counting.trim
    state.trim.delay = 0.05
    return app


def large_json_body() -> bytes:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 500))
    body = orjson.dumps({"input": x, "target": rng.integers(0, 500, 300)}, option=SERIALIZE_NUMPY)
    assert len(body) >= 1 << 20
    return body


@pytest.mark.anyio
@pytest.mark.parametrize("large", [True, False], ids=["large", "small"])
async def test_the_app_trims_after_large_bodies_only(large: bool) -> None:
    counting = Counting()
    app = app_with(counting)
    body = large_json_body() if large else b'{"input": [[1.0, 2.0]], "target": [1]}'
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for _ in range(3):
            response = await client.post(
                "/v1/losses/cross_entropy",
                content=body,
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 200, response.text
        await asyncio.sleep(0.3)
        if large:
            await asyncio.to_thread(counting.done.wait, 1.0)
    # at least once after large ones (once per idle moment at most), never after small ones
    assert (counting.calls >= 1) if large else (counting.calls == 0)


@pytest.mark.anyio
async def test_a_negative_delay_turns_the_trim_off() -> None:
    counting = Counting()
    app = create_app(cpu_settings(malloc_trim_delay=-1))
    state: ServiceState = app.state.service
    state.trim.trim = counting.trim
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(
            "/v1/losses/cross_entropy",
            content=large_json_body(),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200
        await asyncio.sleep(0.3)
    assert counting.calls == 0
