"""Graceful shutdown of a real server process: on SIGTERM it stops accepting, lets the requests
in flight finish within the grace period, and exits 0.

Requests are held inside the computation by a test hook (see ``hooked_service``) until the test
releases them, so "in flight" is a fact the test observes, not a timing guess."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service.api.problems import PROBLEM_MEDIA_TYPE
from tests.robustness.conftest import torch_cross_entropy
from tests.server import LiveServer, live_server

pytestmark = pytest.mark.slow

CE = "/v1/losses/cross_entropy"
IN_FLIGHT = 3


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def refuses_connections(server: LiveServer) -> bool:
    try:
        httpx.get(server.url + "/v2/health/live", timeout=1.0)
    except httpx.TransportError:
        return True
    return False


def body(i: int) -> dict[str, list[float] | list[list[float]] | list[int]]:
    return {"input": [[float(i), 1.0, -1.0], [0.5, float(-i), 2.0]], "target": [0, 2]}


def start_requests(pool: ThreadPoolExecutor, server: LiveServer) -> list[Future[httpx.Response]]:
    return [
        pool.submit(httpx.post, server.url + CE, json=body(i), timeout=60) for i in range(IN_FLIGHT)
    ]


def hooked(hold: Path, grace: int) -> dict[str, str]:
    return {
        "LOSS_SERVICE_TEST_HOLD_DIR": str(hold),
        "LOSS_SERVICE_SHUTDOWN_GRACE": str(grace),
        "LOSS_SERVICE_MAX_CONCURRENCY": str(IN_FLIGHT),
        "LOSS_SERVICE_LOG_LEVEL": "warning",
    }


def started(hold: Path) -> int:
    return len(list(hold.glob("started-*")))


def test_sigterm_lets_in_flight_requests_finish_then_exits_0(tmp_path: Path) -> None:
    with (
        live_server(env=hooked(tmp_path, 30), module="tests.robustness.hooked_service") as server,
        ThreadPoolExecutor(IN_FLIGHT) as pool,
    ):
        futures = start_requests(pool, server)
        wait_for(lambda: started(tmp_path) == IN_FLIGHT)
        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: refuses_connections(server))
        assert server.process.poll() is None  # still finishing the requests in flight
        (tmp_path / "release").touch()
        for i, future in enumerate(futures):
            response = future.result(timeout=60)
            assert response.status_code == 200, response.text
            assert abs(response.json()["value"] - torch_cross_entropy(body(i))) < 1e-6
        assert server.process.wait(timeout=30) == 0


def test_past_the_grace_period_requests_get_503_and_the_server_exits_0(tmp_path: Path) -> None:
    with (
        live_server(env=hooked(tmp_path, 1), module="tests.robustness.hooked_service") as server,
        ThreadPoolExecutor(IN_FLIGHT) as pool,
    ):
        futures = start_requests(pool, server)
        wait_for(lambda: started(tmp_path) == IN_FLIGHT)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0  # never released: the grace period ends it
        assert time.monotonic() - signalled < 20
        for future in futures:  # answered, though not computed
            response = future.result(timeout=30)
            assert response.status_code == 503
            assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
            assert "retry-after" in response.headers
