"""A bounded load test on loopback against a real server process.

More clients than the server may compute and queue: every response is either the right answer
(compared with torch in-process) or the documented overload refusal, none is lost, the server's
books balance afterwards (a burst of exactly its capacity all succeeds), and its resident memory
returns near its baseline. Computations are slowed by a fixed delay (a test hook in the server)
so that the overload happens however fast or loaded this machine is.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from service.api.problems import PROBLEM_MEDIA_TYPE
from tests.robustness.conftest import QUEUE, SLOTS
from tests.server import LiveServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for memory"),
]

CLIENTS = 16  # well above SLOTS + QUEUE
PER_CLIENT = 12
TOTAL = CLIENTS * PER_CLIENT
CE = "/v1/losses/cross_entropy"
MiB = 1024 * 1024


def rss(server: LiveServer) -> int:
    """The server process's resident memory in bytes."""
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@dataclass(frozen=True)
class Call:
    body: dict[str, Any]
    expected: float


def make_call(i: int) -> Call:
    """A distinct request per index, so that a mixed-up answer cannot pass for a right one."""
    rng = np.random.default_rng(i)
    n, c = (256, 200) if i % 16 == 0 else (32, 20)  # now and then a larger body (~1 MB)
    x = rng.normal(scale=3.0, size=(n, c))
    y = rng.integers(0, c, size=n)
    body = {"input": x.tolist(), "target": y.tolist(), "reference": i % 2 == 0}
    expected = torch.nn.functional.cross_entropy(
        torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    )
    return Call(body, float(expected))


def check(response: httpx.Response, call: Call) -> str:
    if response.status_code == 200:
        value = response.json()["value"]
        assert abs(value - call.expected) <= 1e-5 * max(1.0, abs(call.expected)), (value, call)
        return "ok"
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.headers["retry-after"] == "2"
    assert response.json()["type"].endswith("/overloaded")
    return "overloaded"


async def hammer(url: str, calls: list[Call]) -> list[str]:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def one_client(k: int) -> list[str]:
            out = []
            for j in range(PER_CLIENT):
                call = calls[k * PER_CLIENT + j]
                out.append(check(await client.post(CE, json=call.body), call))
            return out

        per_client = await asyncio.gather(*(one_client(k) for k in range(CLIENTS)))
    return [outcome for outcomes in per_client for outcome in outcomes]


async def burst(url: str, calls: list[Call]) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        responses = await asyncio.gather(*(client.post(CE, json=c.body) for c in calls))
    return [check(r, c) for r, c in zip(responses, calls, strict=True)]


def test_overload_is_refused_cleanly_and_nothing_is_lost(hooked_server: LiveServer) -> None:
    server = hooked_server
    calls = [make_call(i) for i in range(TOTAL)]
    warm = [make_call(TOTAL + i) for i in range(16)]
    for call in warm:  # let allocators and caches reach their working size first
        assert check(httpx.post(server.url + CE, json=call.body, timeout=60), call) == "ok"
    baseline = rss(server)

    started = time.monotonic()
    outcomes = asyncio.run(hammer(server.url, calls))
    elapsed = time.monotonic() - started

    assert len(outcomes) == TOTAL
    assert outcomes.count("ok") + outcomes.count("overloaded") == TOTAL
    assert outcomes.count("ok") >= SLOTS
    assert outcomes.count("overloaded") > 0
    assert elapsed < 60

    # The books balance: exactly the capacity at once is all computed, none refused.
    assert asyncio.run(burst(server.url, warm[: SLOTS + QUEUE])) == ["ok"] * (SLOTS + QUEUE)
    assert httpx.get(server.url + "/v2/health/ready").json() == {"ready": True}

    after = rss(server)
    assert after <= baseline + 64 * MiB, (baseline / MiB, after / MiB)
